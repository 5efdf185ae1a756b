/**
 * The wire contract (src/api/v1): the one error table round-trips every code server → wire →
 * SDK error; the route table is what the servers serve and the SDK calls; the request schemas
 * derive from the Go structs; the modules that speak the wire spell no route or error text of
 * their own; the Nexus pipeline delegates a mounted prefix with the verified peer.
 */
import { describe, expect, it } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_TABLE, httpErrorOf } from '../src/api/v1/errors.ts';
import { errorResponse, REASON_HEADER, streamErrorResponse } from '../src/api/v1/http.ts';
import { KEEPER_ROUTES, NEXUS_ROUTES, routeTarget } from '../src/api/v1/routes.ts';
import { REQUEST, requestSchemaOf, ZERO } from '../src/api/v1/schemas.ts';
import { SpikeError, type SpikeErrorCode } from '../src/core/errors.ts';
import type { TrustRoots } from '../src/core/policy/engine.ts';
import type { Secrets } from '../src/core/ports.ts';
import { createNexusApp, type NexusMount } from '../src/nexus/app.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { openStore } from '../src/nexus/store/index.ts';
import { errorForResponse } from '../src/sdk/errors.ts';

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
const SUPERUSER = `spiffe://${TD}/spike/pilot/role/superuser`;
const CODES = Object.keys(ERROR_TABLE) as SpikeErrorCode[];
const WIRE_CODES = new Set<string>(Object.values(ERROR_TABLE).map((row) => row.err));

/** A Nexus whose secret store throws `code` on every read: the server end of the round trip. */
async function throwingNexus(code: () => SpikeErrorCode, mounts?: NexusMount[]) {
  const store = await openStore({ backend: 'memory' });
  const keys = await createStaticRootKeyProvider(crypto.getRandomValues(new Uint8Array(32)));
  const real = store.secrets(keys);
  const secrets: Secrets = {
    ...real,
    get: async () => {
      throw new SpikeError(code(), 'thrown by the test store');
    },
    getVersioned: async () => {
      throw new SpikeError(code(), 'thrown by the test store');
    },
  };
  const peers = new WeakMap<Request, string>();
  const lines: string[] = [];
  const app = createNexusApp({
    secrets,
    policies: store.policies(keys),
    keys,
    backend: 'memory',
    trustRoots: TRUST,
    maxBodyBytes: 1 << 20,
    maxCipherBytes: 65536,
    audit: (line) => lines.push(line),
    peerOf: (r) => peers.get(r),
    ...(mounts === undefined ? {} : { mounts }),
  });
  return {
    async send(
      target: string,
      body: string | Uint8Array<ArrayBuffer>,
      contentType = 'application/json',
    ) {
      const request = new Request(`https://nexus.test${target}`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
      peers.set(request, SUPERUSER);
      return app.handle(request);
    },
    app,
    peers,
    lines,
  };
}

async function wire(response: Response) {
  const body = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, body, type: response.headers.get('content-type') ?? undefined };
}

describe('the error table', () => {
  it('places every code: wire codes keep their name, everything else is a bare 500', () => {
    for (const code of CODES) {
      const row = ERROR_TABLE[code];
      expect(httpErrorOf(code)).toMatchObject({ status: row.status, err: row.err });
      expect(WIRE_CODES.has(row.err)).toBe(true);
      if (row.status === 500) expect(row.err).toBe('api_internal_error');
    }
    expect(httpErrorOf('not a code')).toEqual(httpErrorOf('api_internal_error'));
    expect(httpErrorOf('toString').status).toBe(500);
  });

  it('round-trips every code server → wire → SDK error (JSON mode, through the Nexus app)', async () => {
    let current: SpikeErrorCode = 'api_bad_request';
    const nexus = await throwingNexus(() => current);
    for (const code of CODES) {
      current = code;
      const row = ERROR_TABLE[code];
      const answer = await wire(
        await nexus.send(routeTarget(NEXUS_ROUTES.secretGet), '{"path":"a/b"}'),
      );
      expect(answer.status).toBe(row.status);
      expect(JSON.parse(new TextDecoder().decode(answer.body))).toEqual({
        data: null,
        err: row.err,
      });
      const sdk = errorForResponse(answer.status, answer.body, answer.type);
      expect({ code, client: sdk.code, status: sdk.status }).toEqual({
        code,
        client: row.client,
        status: row.status,
      });
      // A wire code with a status of its own comes back as itself.
      if (row.err === code && row.status !== 500) expect(sdk.code).toBe(code);
      expect(sdk.message).not.toContain('thrown by the test store');
    }
  });

  it('round-trips the stream-mode texts of docs/spike-api.md §8 (decrypt through the Nexus app)', async () => {
    const nexus = await throwingNexus(() => 'api_bad_request');
    const cases: [Uint8Array<ArrayBuffer>, SpikeErrorCode][] = [
      [new Uint8Array(0), 'crypto_failed_to_read_version'],
      [Uint8Array.of(3, 0, 0), 'crypto_unsupported_version'],
      [Uint8Array.of(1, 0, 0), 'crypto_failed_to_read_nonce'],
      // A version-2 (context) stream sent without a context (§8 "Context").
      [new Uint8Array(1 + 12 + 16).fill(2), 'crypto_context_mismatch'],
      [new Uint8Array(1 + 12 + 16).fill(1), 'crypto_decryption_failed'],
    ];
    for (const [body, code] of cases) {
      const answer = await wire(
        await nexus.send(routeTarget(NEXUS_ROUTES.decrypt), body, 'application/octet-stream'),
      );
      expect(answer.status).toBe(400);
      expect(new TextDecoder().decode(answer.body)).toBe(`${ERROR_TABLE[code].streamText}\n`);
      expect(errorForResponse(answer.status, answer.body, answer.type).code).toBe(code);
    }
    // Every text in the table is covered, and each decodes back to its code.
    for (const code of CODES) {
      const text = ERROR_TABLE[code].streamText;
      if (text === undefined) continue;
      expect(cases.some(([, c]) => c === code)).toBe(true);
      const answer = await wire(streamErrorResponse(text));
      expect(errorForResponse(answer.status, answer.body, answer.type).code).toBe(code);
    }
  });

  it('carries the rule a 400 broke to the SDK error, and no reason on other statuses', async () => {
    const bad = errorResponse('api_bad_request', ZERO.empty, 'path must not start or end with "/"');
    const reason = bad.response.headers.get(REASON_HEADER) ?? undefined;
    const answer = await wire(bad.response);
    const sdk = errorForResponse(answer.status, answer.body, answer.type, reason);
    expect([sdk.code, sdk.reason]).toEqual([
      'api_bad_request',
      'path must not start or end with "/"',
    ]);
    for (const code of ['access_unauthorized', 'api_not_found', 'api_internal_error'] as const) {
      const other = errorResponse(code, ZERO.empty, 'internal detail');
      expect(other.response.headers.get(REASON_HEADER)).toBeNull();
    }
    // Header-safe and bounded.
    const odd = errorResponse('api_bad_request', ZERO.empty, `é\n${'x'.repeat(500)}`).response;
    expect(odd.headers.get(REASON_HEADER)).toMatch(/^\?\?x{198}$/);
  });

  it('lets the status decide when the body disagrees with it', async () => {
    const answer = await wire(errorResponse('access_unauthorized', ZERO.empty).response);
    // 400 with someone else's code is still a bad request; 409 without a body is not a code.
    expect(errorForResponse(400, answer.body, answer.type).code).toBe('api_bad_request');
    expect(errorForResponse(409, new Uint8Array(0), undefined).code).toBe('net_peer_connection');
    expect(errorForResponse(502, new Uint8Array(0), undefined).code).toBe('net_peer_connection');
  });
});

describe('the route table', () => {
  it('has one entry per path and action, and the SDK targets are the servers routes', () => {
    const all = [...Object.values(NEXUS_ROUTES), ...Object.values(KEEPER_ROUTES)];
    const keys = all.map((r) => `${r.path}?${r.action}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(routeTarget(NEXUS_ROUTES.secretGet)).toBe('/v1/store/secrets?action=get');
    expect(routeTarget(NEXUS_ROUTES.secretPut)).toBe('/v1/store/secrets');
    expect(routeTarget(KEEPER_ROUTES.shard)).toBe('/v1/store/shard');
  });

  it('derives each request schema from its Go struct', () => {
    for (const [name, struct] of Object.entries(REQUEST)) {
      const schema = requestSchemaOf(struct);
      expect({ name, fields: Object.keys(schema.properties).sort() }).toEqual({
        name,
        fields: Object.keys(struct).sort(),
      });
      expect(schema.required ?? []).toEqual([]);
    }
  });

  it('is the only place that spells a route or an error text in the wire modules', () => {
    const root = join(import.meta.dir, '..');
    const files = [
      'src/nexus/app.ts',
      'src/nexus/routes/secrets.ts',
      'src/nexus/routes/policies.ts',
      'src/nexus/routes/cipher.ts',
      'src/nexus/routes/operator.ts',
      'src/keeper/app.ts',
      'src/nexus/keeper-client.ts',
      'src/sdk/client.ts',
      'src/sdk/errors.ts',
    ];
    for (const file of files) {
      const code = readFileSync(join(root, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      expect({ file, routes: code.match(/['"`]\/(v1|health|ready)\b[^'"`]*/g) }).toEqual({
        file,
        routes: null,
      });
      expect({ file, errs: code.match(/\berr:\s*['"`]/g) }).toEqual({ file, errs: null });
      expect({ file, stream: code.match(/['"`]decryption failed/g) }).toEqual({
        file,
        stream: null,
      });
    }
  });
});

describe('mounted prefixes', () => {
  it('delegate any method under the prefix with the verified peer, audited', async () => {
    const seen: { method: string; peer: string | undefined; path: string }[] = [];
    const mount: NexusMount = {
      prefix: '/v1/secret/',
      async handle(request, context) {
        seen.push({
          method: request.method,
          peer: context.peerId,
          path: new URL(request.url).pathname,
        });
        context.audit({ action: 'vault_read', resource: 'demo' });
        return new Response('{"data":{}}', { status: 200 });
      },
    };
    const nexus = await throwingNexus(() => 'api_not_found', [mount]);
    const request = new Request('https://nexus.test/v1/secret/data/demo', { method: 'GET' });
    nexus.peers.set(request, SUPERUSER);
    expect((await nexus.app.handle(request)).status).toBe(200);
    expect(seen).toEqual([{ method: 'GET', peer: SUPERUSER, path: '/v1/secret/data/demo' }]);
    expect(nexus.lines).toHaveLength(1);
    expect(JSON.parse(nexus.lines[0]!)).toMatchObject({
      caller: SUPERUSER,
      action: 'vault_read',
      resource: 'demo',
      status: 200,
    });
    // Outside the prefix the SPIKE rules still answer.
    const other = new Request('https://nexus.test/v1/secretx', { method: 'GET' });
    expect((await nexus.app.handle(other)).status).toBe(400);
  });
});

describe('exact paths (issue 11 finding 5)', () => {
  it('refuses a request whose raw target the Request normalised, when the transport tells', async () => {
    const store = await openStore({ backend: 'memory' });
    const keys = await createStaticRootKeyProvider(crypto.getRandomValues(new Uint8Array(32)));
    const raw = new WeakMap<Request, string>();
    const app = createNexusApp({
      secrets: store.secrets(keys),
      policies: store.policies(keys),
      keys,
      backend: 'memory',
      trustRoots: TRUST,
      maxBodyBytes: 1 << 20,
      maxCipherBytes: 65536,
      audit: () => {},
      peerOf: () => SUPERUSER,
      rawPathOf: (r) => raw.get(r),
    });
    const send = async (target: string) => {
      const request = new Request(`https://localhost${target}`, {
        method: 'POST',
        body: '{"path":"a/b","values":{}}',
      });
      raw.set(request, target);
      return (await app.handle(request)).status;
    };
    for (const target of [
      '/v1/store/./secrets',
      '/v1/store/%2e/secrets',
      '/v1/x/../store/secrets',
    ]) {
      expect({ target, status: await send(target) }).toEqual({ target, status: 400 });
    }
    expect(await send('/v1/store/secrets?action=list')).toBe(200);
    expect(await send('/v1/store/secrets')).toBe(200);
  });
});
