/**
 * The TypeScript SDK (src/sdk/client.ts) over real mTLS against a real Nexus (the in-process
 * harness: development issuer sockets, real store, real app, real listener), plus small real
 * mTLS servers with scripted handlers for what a healthy Nexus never does: the exact request
 * bodies on the wire (docs/spike-api.md §4), 503 then 200 (retry), a server that appears late
 * (connection retry), 200 with `err`. Rotation runs against a development issuer with 4-second
 * SVIDs: the client keeps working after its first SVID has expired.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import net from 'node:net';
import { toBase64 } from '../src/core/bytes.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import {
  createClient,
  isSpikeError,
  SpikeApiError,
  type SpikeClient,
  SpikeError,
} from '../src/index.ts';
import { createMtlsServer, type MtlsServer } from '../src/runtime/tls/server.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';
import { createStaticSource, type StaticSource } from './support/static-source.ts';

const NEXUS_ID = 'spiffe://spike.ist/spike/nexus';
const PILOT_ID = 'spiffe://spike.ist/spike/pilot/role/superuser';

/** Runs `fn` and returns the `SpikeError` it throws (fails the test if it does not throw one). */
async function rejection(fn: () => Promise<unknown>): Promise<SpikeApiError> {
  try {
    await fn();
  } catch (error) {
    expect(isSpikeError(error)).toBe(true);
    expect(error).toBeInstanceOf(SpikeError);
    return error as SpikeApiError;
  }
  throw new Error('expected a rejection');
}

describe('SDK against Nexus (memory backend)', () => {
  let nexus: NexusHarness;
  let spike: SpikeClient;

  beforeAll(async () => {
    nexus = await startNexusHarness({
      extraWorkloads: { app: 'spiffe://spike.ist/app/billing' },
    });
    spike = await createClient({
      socket: nexus.issuer.addressFor('pilot'),
      apiUrl: nexus.url,
    });
  });

  afterAll(async () => {
    await spike?.close();
    await nexus?.stop();
  });

  it('whoami and ready', async () => {
    const me = spike.whoami();
    expect(me.spiffeId).toBe(PILOT_ID);
    expect(me.trustDomain).toBe('spike.ist');
    expect(me.expiresAt).toBeInstanceOf(Date);
    expect(me.expiresAt.getTime()).toBeGreaterThan(Date.now());
    expect(me.serial).toMatch(/^[0-9a-f]+$/);
    expect(await spike.ready()).toBe(true);
    expect(spike.apiUrl).toBe(nexus.url);
  });

  it('puts, gets (current and by version) and lists secrets', async () => {
    await spike.putSecret('sdk/db', { user: 'app', pass: 'one' });
    await spike.putSecret('sdk/db', { user: 'app', pass: 'two' });
    await spike.putSecret('sdk/a-first', {});
    expect(await spike.getSecret('sdk/db')).toEqual({ data: { user: 'app', pass: 'two' } });
    expect(await spike.getSecret('sdk/db', { version: 1 })).toEqual({
      data: { user: 'app', pass: 'one' },
    });
    expect(await spike.getSecret('sdk/a-first')).toEqual({ data: {} });
    const keys = await spike.listSecretKeys();
    expect(keys).toEqual([...keys].sort());
    expect(keys).toContain('sdk/db');
    expect(keys).toContain('sdk/a-first');
  });

  it('not found is a typed error with the wire code, never null', async () => {
    const missing = await rejection(() => spike.getSecret('sdk/none'));
    expect(missing.code).toBe('api_not_found');
    expect(missing.status).toBe(404);
    expect(missing).toBeInstanceOf(SpikeApiError);
    expect((await rejection(() => spike.getSecret('sdk/db', { version: 99 }))).code).toBe(
      'api_not_found',
    );
    expect((await rejection(() => spike.getSecretMetadata('sdk/none'))).code).toBe('api_not_found');
    const bad = await rejection(() => spike.getSecret('bad path with spaces'));
    expect(bad.code).toBe('api_bad_request');
    expect(bad.status).toBe(400);
  });

  it('metadata has Date objects, sorted versions and deletion times', async () => {
    await spike.putSecret('sdk/meta', { v: '1' });
    await spike.putSecret('sdk/meta', { v: '2' });
    await spike.putSecret('sdk/meta', { v: '3' });
    await spike.deleteSecret('sdk/meta', [1]);
    const meta = await spike.getSecretMetadata('sdk/meta');
    expect(meta.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(meta.currentVersion).toBe(3);
    expect(meta.oldestVersion).toBe(2);
    expect(meta.maxVersions).toBe(10);
    expect(meta.createdTime).toBeInstanceOf(Date);
    expect(meta.updatedTime.getTime()).toBeGreaterThanOrEqual(meta.createdTime.getTime());
    expect(meta.versions[0]?.deletedTime).toBeInstanceOf(Date);
    expect(meta.versions[1]?.deletedTime).toBeNull();
    expect(meta.versions[2]?.createdTime).toBeInstanceOf(Date);
  });

  it('delete, undelete, destroy and purge', async () => {
    await spike.putSecret('sdk/life', { k: 'a' });
    await spike.putSecret('sdk/life', { k: 'b' });
    await spike.deleteSecret('sdk/life'); // [] = current (2)
    expect(await spike.getSecret('sdk/life')).toEqual({ data: { k: 'a' } });
    await spike.undeleteSecret('sdk/life', [2]);
    expect(await spike.getSecret('sdk/life')).toEqual({ data: { k: 'b' } });
    await spike.destroySecret('sdk/life', [1]);
    expect((await rejection(() => spike.getSecret('sdk/life', { version: 1 }))).code).toBe(
      'api_not_found',
    );
    expect((await rejection(() => spike.undeleteSecret('sdk/life', [1]))).code).toBe(
      'api_not_found',
    );
    await spike.purgeSecret('sdk/life');
    expect(await spike.listSecretKeys()).not.toContain('sdk/life');
    expect((await rejection(() => spike.purgeSecret('sdk/life'))).code).toBe('api_not_found');
  });

  it('policies: put, get, list with filters, delete', async () => {
    await spike.createPolicy({
      name: 'sdk-read',
      spiffeIdPattern: '^spiffe://spike\\.ist/app/billing$',
      pathPattern: '^sdk/.*$',
      permissions: ['read', 'list'],
    });
    await spike.putPolicy({
      name: 'sdk-write',
      spiffeIdPattern: '^spiffe://spike\\.ist/app/other$',
      pathPattern: '^other/.*$',
      permissions: ['write'],
    });
    const policy = await spike.getPolicy('sdk-read');
    expect(policy.name).toBe('sdk-read');
    expect(policy.spiffeIdPattern).toBe('^spiffe://spike\\.ist/app/billing$');
    expect(policy.pathPattern).toBe('^sdk/.*$');
    expect(policy.permissions).toEqual(['read', 'list']);
    expect(policy.createdAt).toBeInstanceOf(Date);
    expect(policy.updatedAt).toBeInstanceOf(Date);

    expect((await spike.listPolicies()).map((p) => p.name)).toEqual(['sdk-read', 'sdk-write']);
    expect(await spike.listPolicies({ pathPattern: '^other/.*$' })).toEqual([
      { id: '', name: 'sdk-write' },
    ]);
    expect(
      await spike.listPolicies({ spiffeIdPattern: '^spiffe://spike\\.ist/app/billing$' }),
    ).toEqual([{ id: '', name: 'sdk-read' }]);

    const invalid = await rejection(() =>
      spike.putPolicy({
        name: 'bad',
        spiffeIdPattern: '^spiffe://x$',
        pathPattern: '(',
        permissions: ['read'],
      }),
    );
    expect(invalid.code).toBe('api_bad_request');

    await spike.deletePolicy('sdk-write');
    expect((await rejection(() => spike.getPolicy('sdk-write'))).code).toBe('api_not_found');
    expect((await rejection(() => spike.deletePolicy('sdk-write'))).code).toBe('api_not_found');
  });

  it('a workload is refused secrets (401) until a policy allows it', async () => {
    const app = await createClient({ socket: nexus.issuer.addressFor('app'), apiUrl: nexus.url });
    try {
      expect(app.whoami().spiffeId).toBe('spiffe://spike.ist/app/billing');
      const denied = await rejection(() => app.putSecret('sdk/db', { x: 'y' }));
      expect(denied.code).toBe('access_unauthorized');
      expect(denied.status).toBe(401);
      // The 'sdk-read' policy grants read on ^sdk/.*$.
      expect((await app.getSecret('sdk/db')).data.pass).toBe('two');
    } finally {
      await app.close();
    }
  });

  it('cipher: stream and JSON round trips, and the typed failures', async () => {
    const plaintext = new TextEncoder().encode('attack at dawn');
    const sealed = await spike.encrypt(plaintext);
    expect(sealed[0]).toBe(1);
    expect(sealed.length).toBe(1 + 12 + plaintext.length + 16);
    expect(new TextDecoder().decode(await spike.decrypt(sealed))).toBe('attack at dawn');

    const tampered = sealed.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect((await rejection(() => spike.decrypt(tampered))).code).toBe('crypto_decryption_failed');
    const wrongVersion = sealed.slice();
    wrongVersion[0] = 3; // 2 is the context format (§8 "Context")
    expect((await rejection(() => spike.decrypt(wrongVersion))).code).toBe(
      'crypto_unsupported_version',
    );
    expect((await rejection(() => spike.decrypt(sealed.subarray(0, 5)))).code).toBe(
      'crypto_failed_to_read_nonce',
    );
    expect((await rejection(() => spike.decrypt(new Uint8Array(0)))).code).toBe(
      'crypto_failed_to_read_version',
    );

    const json = await spike.encryptJson(plaintext, { algorithm: 'AES-GCM' });
    expect(json.version).toBe(1);
    expect(json.nonce.length).toBe(12);
    expect(json.ciphertext.length).toBe(plaintext.length + 16);
    expect(new TextDecoder().decode(await spike.decryptJson(json))).toBe('attack at dawn');
    const forged = { ...json, ciphertext: json.ciphertext.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    // §8: a JSON-mode authentication failure is a 500, which the SDK maps as upstream does.
    const failure = await rejection(() => spike.decryptJson(forged));
    expect(failure.code).toBe('net_peer_connection');
    expect(failure.status).toBe(500);
  });

  it('operator calls on the memory backend answer 400; a bad line fails before any call', async () => {
    const recoverer = await createClient({
      socket: nexus.issuer.addressFor('recover'),
      apiUrl: nexus.url,
    });
    try {
      expect((await rejection(() => recoverer.recover())).code).toBe('api_bad_request');
    } finally {
      await recoverer.close();
    }
    const before = nexus.audit.length;
    const bad = await rejection(() => spike.restore('spike:1:abcdef'));
    expect(bad.code).toBe('api_bad_request');
    expect(nexus.audit.length).toBe(before);
  });

  it('argument mistakes are TypeError/RangeError, not requests', async () => {
    const before = nexus.audit.length;
    await expect(spike.getSecret('sdk/db', { version: 1.5 })).rejects.toBeInstanceOf(RangeError);
    await expect(
      spike.putSecret('sdk/db', { n: 1 } as unknown as Record<string, string>),
    ).rejects.toBeInstanceOf(TypeError);
    await expect(spike.encrypt('text' as unknown as Uint8Array)).rejects.toBeInstanceOf(TypeError);
    expect(nexus.audit.length).toBe(before);
  });

  it('reads SPIFFE_ENDPOINT_SOCKET and SPIKE_NEXUS_API_URL; refuses a non-https URL', async () => {
    const saved = { ...process.env };
    process.env.SPIFFE_ENDPOINT_SOCKET = nexus.issuer.addressFor('pilot');
    process.env.SPIKE_NEXUS_API_URL = nexus.url;
    try {
      const fromEnv = await createClient();
      try {
        expect(fromEnv.apiUrl).toBe(nexus.url);
        expect((await fromEnv.getSecret('sdk/db')).data.user).toBe('app');
      } finally {
        await fromEnv.close();
      }
      process.env.SPIKE_NEXUS_API_URL = 'http://127.0.0.1:1';
      expect((await rejection(() => createClient())).code).toBe('config_invalid');
    } finally {
      process.env.SPIFFE_ENDPOINT_SOCKET = saved.SPIFFE_ENDPOINT_SOCKET;
      process.env.SPIKE_NEXUS_API_URL = saved.SPIKE_NEXUS_API_URL;
      if (saved.SPIFFE_ENDPOINT_SOCKET === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      if (saved.SPIKE_NEXUS_API_URL === undefined) delete process.env.SPIKE_NEXUS_API_URL;
    }
  });

  it('a server without the nexus role is rejected at once (no retry)', async () => {
    const strict = await createClient({
      socket: nexus.issuer.addressFor('pilot'),
      apiUrl: nexus.url,
      nexusTrustDomains: ['other.org'],
    });
    try {
      const started = Date.now();
      const error = await rejection(() => strict.listSecretKeys());
      expect(error.code).toBe('svid_unauthorized');
      expect(error.status).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await strict.close();
    }
  });
});

interface Seen {
  path: string;
  method: string;
  contentType: string | null;
  body: Uint8Array;
}

/** A real mTLS server with the nexus ID whose answers a test scripts. */
async function scriptedServer(
  answer: (seen: Seen, count: number) => Response | Promise<Response>,
  port = 0,
): Promise<{ server: MtlsServer; url: string; seen: Seen[]; client: StaticSource }> {
  const serverSource = await createStaticSource(NEXUS_ID);
  const client = await createStaticSource(PILOT_ID, { authority: serverSource.authority });
  const seen: Seen[] = [];
  const server = createMtlsServer({
    source: serverSource,
    authorizer: authorizeAny(),
    handler: async (request) => {
      const url = new URL(request.url);
      const entry: Seen = {
        path: `${url.pathname}${url.search}`,
        method: request.method,
        contentType: request.headers.get('content-type'),
        body: new Uint8Array(await request.arrayBuffer()),
      };
      seen.push(entry);
      return answer(entry, seen.length);
    },
  });
  const bound = await server.listen(port, '127.0.0.1');
  return { server, url: `https://127.0.0.1:${bound.port}`, seen, client };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('SDK wire format, retries and malformed answers', () => {
  it('sends exactly the upstream request bodies (docs/spike-api.md §4)', async () => {
    const answers: Record<string, unknown> = {
      '/v1/store/secrets?action=get': { data: { k: 'v' } },
      '/v1/store/secrets?action=list': { keys: [] },
      '/v1/acl/policy?action=get': {
        id: '',
        name: 'n',
        spiffiedPattern: '^x$',
        pathPattern: '^y$',
        permissions: ['read'],
        createdAt: '2026-07-25T20:37:48.123456789Z',
        updatedAt: '2026-07-25T20:37:48Z',
      },
      '/v1/acl/policy?action=list': { policies: null },
      '/v1/cipher/encrypt': { version: 1, nonce: toBase64(new Uint8Array(12)), ciphertext: '' },
      '/v1/cipher/decrypt': { plaintext: toBase64(new TextEncoder().encode('ok')) },
      '/v1/operator/recover': { shards: [] },
    };
    const { server, url, seen, client } = await scriptedServer((entry) => {
      if (entry.contentType === 'application/octet-stream') {
        return new Response(new Uint8Array([1, 2, 3]), {
          headers: { 'content-type': 'application/octet-stream' },
        });
      }
      return json(200, answers[entry.path] ?? {});
    });
    const spike = await createClient({ source: client, apiUrl: url, retry: false });
    try {
      await spike.getSecret('p', { version: 2 });
      await spike.getSecret('p');
      await spike.putSecret('p', { k: 'v' });
      await spike.deleteSecret('p');
      await spike.undeleteSecret('p', [1, 2]);
      await spike.destroySecret('p', [0]);
      await spike.purgeSecret('p');
      await spike.listSecretKeys();
      await spike.getSecretMetadata('p', { version: 1 }).catch(() => undefined);
      await spike.putPolicy({
        name: 'n',
        spiffeIdPattern: '^x$',
        pathPattern: '^y$',
        permissions: ['read'],
      });
      const policy = await spike.getPolicy('n');
      expect(policy.createdAt.toISOString()).toBe('2026-07-25T20:37:48.123Z');
      expect(policy.spiffeIdPattern).toBe('^x$');
      expect(await spike.listPolicies()).toEqual([]);
      await spike.listPolicies({ pathPattern: '^y$' });
      await spike.deletePolicy('n');
      expect(await spike.encrypt(new Uint8Array([9, 9]))).toEqual(new Uint8Array([1, 2, 3]));
      await spike.decrypt(new Uint8Array([1]));
      await spike.encryptJson(new TextEncoder().encode('hi'));
      const opened = await spike.decryptJson({
        version: 1,
        nonce: new Uint8Array(12),
        ciphertext: new Uint8Array(16),
      });
      expect(new TextDecoder().decode(opened)).toBe('ok');
      await spike.recover();

      const bodies = seen.map((s) => [
        s.method,
        s.path,
        s.contentType,
        s.contentType === 'application/octet-stream'
          ? [...s.body]
          : JSON.parse(new TextDecoder().decode(s.body)),
      ]);
      const J = 'application/json';
      const O = 'application/octet-stream';
      expect(bodies).toEqual([
        ['POST', '/v1/store/secrets?action=get', J, { path: 'p', version: 2 }],
        ['POST', '/v1/store/secrets?action=get', J, { path: 'p' }],
        ['POST', '/v1/store/secrets', J, { path: 'p', values: { k: 'v' } }],
        ['POST', '/v1/store/secrets?action=delete', J, { path: 'p', versions: [] }],
        ['POST', '/v1/store/secrets?action=undelete', J, { path: 'p', versions: [1, 2] }],
        ['POST', '/v1/store/secrets?action=destroy', J, { path: 'p', versions: [0] }],
        ['POST', '/v1/store/secrets?action=purge', J, { path: 'p' }],
        ['POST', '/v1/store/secrets?action=list', J, {}],
        ['POST', '/v1/store/secrets/metadata?action=get', J, { path: 'p', version: 1 }],
        [
          'POST',
          '/v1/acl/policy',
          J,
          { name: 'n', spiffeidPattern: '^x$', pathPattern: '^y$', permissions: ['read'] },
        ],
        ['POST', '/v1/acl/policy?action=get', J, { id: 'n' }],
        ['POST', '/v1/acl/policy?action=list', J, {}],
        ['POST', '/v1/acl/policy?action=list', J, { pathPattern: '^y$' }],
        ['POST', '/v1/acl/policy?action=delete', J, { id: 'n' }],
        ['POST', '/v1/cipher/encrypt', O, [9, 9]],
        ['POST', '/v1/cipher/decrypt', O, [1]],
        ['POST', '/v1/cipher/encrypt', J, { plaintext: 'aGk=' }],
        [
          'POST',
          '/v1/cipher/decrypt',
          J,
          {
            version: 1,
            nonce: toBase64(new Uint8Array(12)),
            ciphertext: toBase64(new Uint8Array(16)),
          },
        ],
        ['POST', '/v1/operator/recover', J, {}],
      ]);
    } finally {
      await spike.close();
      await server.close();
    }
  });

  it('retries 503 state_not_ready with backoff, then succeeds', async () => {
    const { server, url, seen, client } = await scriptedServer((_entry, count) =>
      count <= 2 ? json(503, { err: 'state_not_ready' }) : json(200, { keys: ['a'] }),
    );
    const spike = await createClient({
      source: client,
      apiUrl: url,
      retry: { attempts: 5, initialMs: 50, maxMs: 100 },
    });
    try {
      const started = Date.now();
      expect(await spike.listSecretKeys()).toEqual(['a']);
      expect(seen).toHaveLength(3);
      // Two waits of at least half of 50 and 100 ms.
      expect(Date.now() - started).toBeGreaterThanOrEqual(70);
    } finally {
      await spike.close();
      await server.close();
    }
  });

  it('gives up after the configured attempts with state_not_ready', async () => {
    const { server, url, seen, client } = await scriptedServer(() =>
      json(503, { err: 'state_not_ready' }),
    );
    const spike = await createClient({
      source: client,
      apiUrl: url,
      retry: { attempts: 3, initialMs: 10, maxMs: 20 },
    });
    try {
      const error = await rejection(() => spike.listSecretKeys());
      expect(error.code).toBe('state_not_ready');
      expect(seen).toHaveLength(3);
    } finally {
      await spike.close();
      await server.close();
    }
  });

  it('never retries 4xx; maps statuses as upstream; 200 with err or junk is not a success', async () => {
    const script: Response[] = [
      json(400, { err: 'api_bad_request' }),
      json(401, { err: 'access_unauthorized' }),
      json(404, { err: 'api_not_found' }),
      json(500, { err: 'api_internal_error' }),
      json(418, {}),
      json(200, { keys: [], err: 'api_internal_error' }),
      new Response('not json', { status: 200 }),
      json(200, { keys: 'nope' }),
    ];
    const { server, url, seen, client } = await scriptedServer((_e, count) => script[count - 1]!);
    const spike = await createClient({ source: client, apiUrl: url });
    try {
      const codes: [string, number | undefined][] = [];
      for (let i = 0; i < script.length; i++) {
        const error = await rejection(() => spike.listSecretKeys());
        codes.push([error.code, error.status]);
      }
      expect(codes).toEqual([
        ['api_bad_request', 400],
        ['access_unauthorized', 401],
        ['api_not_found', 404],
        ['net_peer_connection', 500],
        ['net_peer_connection', 418],
        ['api_internal_error', 200],
        ['api_internal_error', 200],
        ['api_internal_error', 200],
      ]);
      expect(seen).toHaveLength(script.length);
    } finally {
      await spike.close();
      await server.close();
    }
  });

  it('retries a refused connection until Nexus appears (even for putSecret)', async () => {
    // Reserve a free port, release it, and start the server there a little later.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const serverSource = await createStaticSource(NEXUS_ID);
    const clientSource = await createStaticSource(PILOT_ID, { authority: serverSource.authority });
    const spike = await createClient({
      source: clientSource,
      apiUrl: `https://127.0.0.1:${port}`,
      retry: { attempts: 8, initialMs: 100, maxMs: 200 },
    });
    let puts = 0;
    const server = createMtlsServer({
      source: serverSource,
      authorizer: authorizeAny(),
      handler: () => {
        puts++;
        return json(200, {});
      },
    });
    const late = new Promise<void>((resolve) =>
      setTimeout(() => server.listen(port, '127.0.0.1').then(() => resolve()), 250),
    );
    try {
      await spike.putSecret('late/one', { k: 'v' });
      expect(puts).toBe(1);
    } finally {
      await late;
      await spike.close();
      await server.close();
    }
  });

  it('a connection that stays refused ends in net_peer_connection without a status', async () => {
    const source = await createStaticSource(PILOT_ID);
    const spike = await createClient({
      source,
      apiUrl: 'https://127.0.0.1:1',
      retry: { attempts: 2, initialMs: 10, maxMs: 10 },
    });
    try {
      const error = await rejection(() => spike.listSecretKeys());
      expect(error.code).toBe('net_peer_connection');
      expect(error.status).toBeUndefined();
      await expect(spike.ready()).rejects.toMatchObject({ code: 'net_peer_connection' });
    } finally {
      await spike.close();
    }
  });
});

describe('SDK follows SVID rotation', () => {
  let nexus: NexusHarness;

  beforeAll(async () => {
    nexus = await startNexusHarness({ ttlSeconds: 4 });
  });

  afterAll(async () => {
    await nexus?.stop();
  });

  it('keeps working after its first SVID has expired', async () => {
    const spike = await createClient({
      socket: nexus.issuer.addressFor('pilot'),
      apiUrl: nexus.url,
    });
    try {
      const first = spike.whoami();
      await spike.putSecret('rot/a', { n: '1' });
      // The issuer rotates at half-life (2 s); wait for the new SVID.
      const deadline = Date.now() + 4000;
      while (spike.whoami().serial === first.serial && Date.now() < deadline) {
        await Bun.sleep(100);
      }
      const second = spike.whoami();
      expect(second.serial).not.toBe(first.serial);
      expect(second.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
      expect((await spike.getSecret('rot/a')).data.n).toBe('1');
      // Past the first SVID's expiry: only the rotated certificate can still authenticate.
      await Bun.sleep(Math.max(0, first.expiresAt.getTime() - Date.now() + 300));
      await spike.putSecret('rot/a', { n: '2' });
      expect((await spike.getSecret('rot/a')).data.n).toBe('2');
    } finally {
      await spike.close();
    }
  }, 15_000);
});
