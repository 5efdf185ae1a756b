/**
 * JWT-SVID authentication on the wire (docs/spike-api.md §2.1, docs/spiffe.md §6, hostile rows
 * 44–46 of §8): a real Nexus app behind the real transport with `clientCertificate: 'optional'`,
 * JWT bundles streamed from the Workload API double (FetchJWTBundles, rotated mid-test), tokens
 * minted by the double's FetchJWTSVID and fetched with the production `fetchJwtSvid`. Callers are
 * plain HTTPS clients without a client certificate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { generateRootKey } from '../src/core/crypto/keys.ts';
import type { TrustRoots } from '../src/core/policy/engine.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { createNexusApp } from '../src/nexus/app.ts';
import { createJwtAuth } from '../src/nexus/jwt-auth.ts';
import { MutableRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore } from '../src/nexus/store/index.ts';
import { createMtlsServer, type MtlsServer } from '../src/runtime/tls/server.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { fetchJwtSvid } from '../src/runtime/workload/fetch.ts';
import {
  createJwtBundleSource,
  type JwtBundleSource,
} from '../src/runtime/workload/jwt-bundles.ts';
import { createClient, type SpikeClient } from '../src/sdk/client.ts';
import { createTestPki, toPem } from './support/cert-factory.ts';
import { startWorkloadDouble, type WorkloadDouble } from './support/workload-double.ts';

const TD = 'spike.ist';
const TRUST: TrustRoots = {
  nexus: [TD],
  keeper: [TD],
  bootstrap: [TD],
  superuser: [TD],
  recover: [TD],
  restore: [TD],
  'lite-workload': [TD],
};
const AUD = 'spike-nexus';
const SUB = `spiffe://${TD}/workload/edge`;
const SILENT = { info: () => {}, warn: () => {}, error: () => {} };

let dir: string;
let issuer: DevIssuer;
let double: WorkloadDouble;
let source: X509Source;
let bundles: JwtBundleSource;
let store: NexusStore;
let server: MtlsServer;
let pilot: SpikeClient;
let url: string;
let ca: string;
const audit: string[] = [];
let key1: CryptoKey;
let key2: CryptoKey;
let otherKey: CryptoKey;

async function jwks(kid: string, key: CryptoKey): Promise<JWK> {
  return { ...(await exportJWK(key)), kid, alg: 'ES256' };
}

async function pushKeys(keys: JWK[]): Promise<void> {
  double.pushJwtBundles({
    [`spiffe://${TD}`]: new TextEncoder().encode(JSON.stringify({ keys })),
  });
}

interface Claims {
  sub?: unknown;
  aud?: unknown;
  exp?: number;
  iat?: number;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

async function sign(
  claims: Claims = {},
  header: Record<string, unknown> = {},
  key: CryptoKey = key1,
): Promise<string> {
  const payload: Claims = { sub: SUB, aud: [AUD], iat: now(), exp: now() + 120, ...claims };
  for (const name of Object.keys(payload) as (keyof Claims)[]) {
    if (payload[name] === undefined) delete payload[name];
  }
  return new SignJWT(payload as Record<string, unknown>)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT', ...header } as { alg: string })
    .sign(key);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function getSecret(token: string | undefined, secretPath = 'apps/edge/db') {
  const response = await fetch(`${url}/v1/store/secrets?action=get`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ path: secretPath }),
    tls: { ca },
  } as RequestInit);
  return { status: response.status, body: await response.text() };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spk-jwt-'));
  issuer = await startDevIssuer({
    dir: path.join(dir, 'sock'),
    keepers: 0,
    ttlSeconds: 3600,
    logger: { info: () => {}, warn: () => {} },
  });
  ca = Buffer.from(toPem(issuer.rootCertificate)).toString();
  double = await startWorkloadDouble();
  key1 = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  key2 = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  otherKey = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  const pub1 = await jwks('k1', key1);
  delete pub1.d;
  await pushKeys([pub1]);
  double.jwtSvids = (audience, spiffeId) => [
    { spiffeId: spiffeId || SUB, svid: `pending:${audience.join(',')}` },
  ];

  store = await openStore({ backend: 'memory' });
  const keys = new MutableRootKeyProvider();
  const rootKey = generateRootKey();
  await keys.install(rootKey);
  source = createX509Source({ address: issuer.addressFor('nexus'), logger: SILENT });
  bundles = createJwtBundleSource({ address: double.address, logger: SILENT });
  await bundles.ready();
  const jwt = createJwtAuth({ audience: AUD, maxTtlMs: 300_000, bundles: () => bundles.current() });
  const peerOf = (request: Request) => server.peerOf(request) ?? jwt.peerOf(request);
  const app = createNexusApp({
    secrets: store.secrets(keys),
    policies: store.policies(keys),
    keys,
    backend: 'memory',
    trustRoots: TRUST,
    maxBodyBytes: 1 << 20,
    maxCipherBytes: 65536,
    audit: (line) => audit.push(line),
    peerOf,
  });
  server = createMtlsServer({
    source,
    authorizer: authorizeAny(),
    clientCertificate: 'optional',
    handler: async (request) => {
      if (server.peerOf(request) === undefined) await jwt.authenticate(request);
      return app.handle(request);
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  url = `https://127.0.0.1:${port}`;
  pilot = await createClient({
    socket: issuer.addressFor('pilot'),
    apiUrl: url,
    nexusTrustDomains: [TD],
    retry: false,
  });
  await pilot.putSecret('apps/edge/db', { pass: 'edge-secret' });
  await pilot.putSecret('apps/other/db', { pass: 'not-yours' });
  await pilot.putSecret('tenants/acme/db/creds', { user: 'app', password: 'pw-edge' });
  await pilot.putPolicy({
    name: 'edge-reads-acme',
    spiffeIdPattern: '^spiffe://spike\\.ist/workload/edge$',
    pathPattern: '^tenants/acme/db/',
    permissions: ['read'],
  });
  await pilot.putPolicy({
    name: 'edge-read',
    spiffeIdPattern: '^spiffe://spike\\.ist/workload/edge$',
    pathPattern: '^apps/edge/',
    permissions: ['read'],
  });
}, 60_000);

afterAll(async () => {
  await pilot?.close();
  await server?.close();
  await bundles?.close();
  await source?.close();
  await store?.close();
  await double?.stop();
  await issuer?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('JWT-SVID bearer authentication', () => {
  it('reads a secret with a valid JWT-SVID over server-authenticated TLS', async () => {
    const res = await getSecret(await sign());
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).data).toEqual({ pass: 'edge-secret' });
    expect(audit.at(-1)).toContain(SUB);
  });

  it('authorises the sub by the same policies', async () => {
    expect((await getSecret(await sign(), 'apps/other/db')).status).toBe(401);
  });

  it('refuses a request with no identity at all', async () => {
    expect((await getSecret(undefined)).status).toBe(401);
  });

  it('a token minted through FetchJWTSVID (the production client) is accepted', async () => {
    const token = await sign();
    double.jwtSvids = (audience) => [{ spiffeId: SUB, svid: audience[0] === AUD ? token : '' }];
    const svids = await fetchJwtSvid({ address: double.address, audience: [AUD] });
    expect(svids[0]?.spiffeId).toBe(SUB);
    expect((await getSecret(svids[0]?.svid)).status).toBe(200);
  });

  const hostile: [string, () => Promise<string>][] = [
    [
      'alg none',
      async () =>
        `${b64url({ alg: 'none', kid: 'k1' })}.${b64url({ sub: SUB, aud: [AUD], exp: now() + 60 })}.`,
    ],
    [
      'HS256',
      async () =>
        new SignJWT({ sub: SUB, aud: [AUD], exp: now() + 60 })
          .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
          .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!')),
    ],
    ['no kid', () => sign({}, { kid: undefined })],
    ['unknown kid', () => sign({}, { kid: 'nope' })],
    ['exp missing', () => sign({ exp: undefined })],
    ['exp past', () => sign({ exp: now() - 600, iat: now() - 700 })],
    ['aud missing', () => sign({ aud: undefined })],
    ['aud not ours', () => sign({ aud: ['someone-else'] })],
    ['bad sub', () => sign({ sub: 'spiffe://spike.ist/../x' })],
    ['sub not a string', () => sign({ sub: 42 })],
    ['typ at+jwt', () => sign({}, { typ: 'at+jwt' })],
    ['trust domain without bundle', () => sign({ sub: 'spiffe://elsewhere.test/workload/edge' })],
    ['signed by another key', () => sign({}, {}, otherKey)],
    ['jku header', () => sign({}, { jku: 'https://127.0.0.1/keys' })],
    ['lifetime over SPIKE_NEXUS_JWT_MAX_TTL', () => sign({ exp: now() + 3600 })],
    ['whole lifetime over the max', () => sign({ iat: now() - 3000, exp: now() + 60 })],
    ['not a JWS', async () => 'abc.def'],
  ];
  for (const [name, make] of hostile) {
    it(`refuses: ${name}`, async () => {
      const res = await getSecret(await make());
      expect(res.status).toBe(401);
      expect(res.body).not.toContain('edge-secret');
    });
  }

  it('refuses a malformed Authorization header', async () => {
    const response = await fetch(`${url}/v1/store/secrets?action=get`, {
      method: 'POST',
      headers: { authorization: `Basic ${btoa('a:b')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'apps/edge/db' }),
      tls: { ca },
    } as RequestInit);
    expect(response.status).toBe(401);
  });

  it('follows JWT bundle rotation', async () => {
    const pub2 = await jwks('k2', key2);
    delete pub2.d;
    await pushKeys([pub2]);
    const deadline = Date.now() + 20_000;
    while (bundles.current()?.get(TD)?.keys[0]?.kid !== 'k2' && Date.now() < deadline) {
      await Bun.sleep(50);
    }
    expect((await getSecret(await sign({}, { kid: 'k2' }, key2))).status).toBe(200);
    expect((await getSecret(await sign())).status).toBe(401);
  });

  it('a client certificate wins over a bearer token', async () => {
    // The pilot's mTLS identity reads anything; a bearer header beside it changes nothing.
    const { data } = await pilot.getSecret('apps/other/db');
    expect(data).toEqual({ pass: 'not-yours' });
    expect(audit.at(-1)).toContain('/spike/pilot');
  });

  it('still drops a connection whose client certificate does not verify', async () => {
    const pki = await createTestPki({ trustDomain: TD });
    const svid = await pki.issue(`spiffe://${TD}/spike/pilot`);
    const attempt = fetch(`${url}/v1/store/secrets?action=get`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await sign()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'apps/edge/db' }),
      tls: {
        ca,
        cert: Buffer.from(toPem(svid.leaf)).toString(),
        key: Buffer.from(toPem(svid.privateKey, 'PRIVATE KEY')).toString(),
      },
    } as RequestInit).then(
      (r) => r.status,
      () => 'dropped',
    );
    expect(await attempt).toBe('dropped');
  });
});

describe('spike-ts/edge inside workerd (Miniflare)', () => {
  it('reads a secret from Nexus on loopback with a JWT-SVID, and maps a refusal to its code', async () => {
    const { Miniflare } = await import('miniflare');
    const built = await Bun.build({
      entrypoints: [path.join(import.meta.dir, 'support', 'edge-worker.ts')],
      target: 'browser',
      format: 'esm',
    });
    expect(built.success).toBe(true);
    const script = await built.outputs[0]!.text();
    expect(script).not.toContain('node:');
    const run = async (token: string, secretPath: string) => {
      const mf = new Miniflare({
        modules: true,
        script,
        compatibilityDate: '2025-01-01',
        bindings: { NEXUS_URL: url, JWT_SVID: token },
        // workerd makes the TLS connection itself and trusts only our development CA.
        outboundService: {
          network: { allow: ['local'], tlsOptions: { trustedCertificates: [ca] } },
        },
      });
      try {
        const response = await mf.dispatchFetch(
          `http://worker/?path=${encodeURIComponent(secretPath)}`,
        );
        return (await response.json()) as { data?: unknown; code?: string };
      } finally {
        await mf.dispose();
      }
    };
    const token = await sign({}, { kid: 'k2' }, key2);
    expect(await run(token, 'apps/edge/db')).toEqual({ data: { pass: 'edge-secret' } });
    expect(await run(token, 'apps/other/db')).toEqual({ code: 'access_unauthorized' });
  }, 120_000);

  it('runs the README edge example, as written, in workerd', async () => {
    const { Miniflare } = await import('miniflare');
    const readme = await Bun.file(path.join(import.meta.dir, '..', 'README.md')).text();
    const start = readme.indexOf('\n## Use from Node, Deno, Bun and the edge\n');
    const end = readme.indexOf('\n## ', start + 1);
    const blocks = [...readme.slice(start, end).matchAll(/^```(js|ts)\n([\s\S]*?)^```$/gm)];
    const worker = blocks.at(-1)![2]!;
    expect(worker).toContain("from 'spike-ts/edge'");
    const file = path.join(dir, 'worker.js');
    fs.writeFileSync(file, worker);
    const edgeEntry = path.join(import.meta.dir, '..', 'src', 'sdk', 'edge.ts');
    const built = await Bun.build({
      entrypoints: [file],
      target: 'browser',
      format: 'esm',
      plugins: [
        {
          name: 'spike-ts-edge',
          setup(build) {
            build.onResolve({ filter: /^spike-ts\/edge$/ }, () => ({ path: edgeEntry }));
          },
        },
      ],
    });
    expect(built.success).toBe(true);
    const mf = new Miniflare({
      modules: true,
      script: await built.outputs[0]!.text(),
      compatibilityDate: '2025-01-01',
      bindings: { NEXUS_URL: url, JWT_SVID: await sign({}, { kid: 'k2' }, key2) },
      outboundService: {
        network: { allow: ['local'], tlsOptions: { trustedCertificates: [ca] } },
      },
    });
    try {
      const response = await mf.dispatchFetch('http://worker/');
      expect(await response.text()).toBe('read 2 keys; user is app');
    } finally {
      await mf.dispose();
    }
  }, 120_000);
});
