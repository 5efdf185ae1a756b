/**
 * The Nexus HTTP API in-process (docs/spike-api.md §3, §4, §5, §7, §8, §9, §12): every route through
 * `app.handle(new Request(...))` with an injected `peerOf` (a WeakMap, as the mTLS transport
 * provides), checking statuses, exact bodies and headers, the processing order, hostile bodies
 * and the audit trail.
 */
import { beforeEach, describe, expect, it } from 'bun:test';
import { gcm } from '@noble/ciphers/aes.js';
import { fromBase64, toBase64, toHex, utf8 } from '../src/core/bytes.ts';
import { bufferSource, randomNonce } from '../src/core/crypto/envelope.ts';
import { deriveKeys, generateRootKey } from '../src/core/crypto/keys.ts';
import { decodeGoJson } from '../src/core/http/go-json.ts';
import type { TrustRoots } from '../src/core/policy/engine.ts';
import type { DerivedKeys, PolicyStore, RootKeyProvider } from '../src/core/ports.ts';
import { RestoreCollector } from '../src/core/shamir/restore-collector.ts';
import { type ShardEnvelope, splitRootKey } from '../src/core/shamir/shards.ts';
import { createNexusApp, type NexusAppDeps, type NexusBackend } from '../src/nexus/app.ts';
import { openStore } from '../src/nexus/store/index.ts';

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
const RECOVER = `spiffe://${TD}/spike/pilot/role/recover`;
const RESTORE = `spiffe://${TD}/spike/pilot/role/restore`;
const BOOTSTRAP = `spiffe://${TD}/spike/bootstrap`;
const LITE = `spiffe://${TD}/spike/workload/role/lite`;
const APP = `spiffe://${TD}/app/billing`;
const STRANGER = 'spiffe://other.org/app/stranger';

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store, no-cache, must-revalidate, private',
  pragma: 'no-cache',
  expires: '0',
};

const ZERO_TIME = '0001-01-01T00:00:00Z';
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

interface Fixture {
  deps: NexusAppDeps;
  audit: string[];
  keys: SwitchableKeys;
  /** How many times the policy store was listed (the engine's cache should make it once). */
  policyLists(): number;
  send(
    path: string,
    init?: {
      peer?: string;
      body?: BodyInit | null;
      method?: string;
      headers?: Record<string, string>;
    },
  ): Promise<Response>;
  post(path: string, body: unknown, peer?: string): Promise<Reply>;
}

/**
 * The real store behind a key provider that can be switched off and on, to play "not ready yet"
 * and "restored" (the production provider installs a key once and never drops it).
 */
interface SwitchableKeys extends RootKeyProvider {
  readonly derived: DerivedKeys;
  install(): void;
  drop(): void;
}

async function createSwitchableKeys(held: boolean): Promise<SwitchableKeys> {
  const derived = await deriveKeys(generateRootKey());
  return {
    derived,
    keys: () => (held ? derived : undefined),
    install: () => {
      held = true;
    },
    drop: () => {
      held = false;
    },
  };
}

async function reply(res: Response): Promise<Reply> {
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (stream mode)
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function fixture(
  options: {
    backend?: NexusBackend;
    ready?: boolean;
    operator?: NexusAppDeps['operator'];
    maxBodyBytes?: number;
    maxCipherBytes?: number;
  } = {},
): Promise<Fixture> {
  const keys = await createSwitchableKeys(options.ready !== false);
  const store = await openStore({ backend: 'memory' });
  const stored = store.policies(keys);
  let lists = 0;
  const policies: PolicyStore = {
    ...stored,
    list: () => {
      lists++;
      return stored.list();
    },
  };
  const audit: string[] = [];
  const peers = new WeakMap<Request, string>();
  const deps: NexusAppDeps = {
    secrets: store.secrets(keys),
    policies,
    keys,
    backend: options.backend ?? 'sqlite',
    trustRoots: TRUST,
    maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
    maxCipherBytes: options.maxCipherBytes ?? 65536,
    audit: (line) => audit.push(line),
    peerOf: (request) => peers.get(request),
    operator: options.operator,
  };
  const app = createNexusApp(deps);
  const send: Fixture['send'] = (path, init = {}) => {
    const request = new Request(`http://localhost${path}`, {
      method: init.method ?? 'POST',
      body: init.body,
      headers: init.headers,
      // Needed for ReadableStream bodies.
      duplex: 'half',
    } as RequestInit);
    if (init.peer !== undefined) peers.set(request, init.peer);
    return app.handle(request);
  };
  const post: Fixture['post'] = async (path, body, peer = SUPERUSER) =>
    reply(await send(path, { peer, body: typeof body === 'string' ? body : JSON.stringify(body) }));
  return { deps, audit, keys, policyLists: () => lists, send, post };
}

function expectJsonHeaders(headers: Headers): void {
  for (const [name, value] of Object.entries(JSON_HEADERS)) expect(headers.get(name)).toBe(value);
}

function lastAudit(f: Fixture): Record<string, unknown> {
  return JSON.parse(f.audit.at(-1)!);
}

/** A body stream that never ends; counts the bytes it handed out. */
function endlessStream(): { stream: ReadableStream<Uint8Array>; served: () => number } {
  let served = 0;
  const chunk = new Uint8Array(16 * 1024).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      served += chunk.length;
      controller.enqueue(chunk);
    },
  });
  return { stream, served: () => served };
}

describe('health and readiness (§12)', () => {
  it('GET /health and /ready answer without audit', async () => {
    const f = await fixture();
    const health = await reply(await f.send('/health', { method: 'GET' }));
    expect(health.status).toBe(200);
    expect(health.text).toBe('{"status":"ok"}');
    expectJsonHeaders(health.headers);
    const ready = await reply(await f.send('/ready', { method: 'GET' }));
    expect(ready.text).toBe('{"status":"ready"}');
    expect(f.audit.length).toBe(0);
  });

  it('/ready is 503 without a root key; /health still 200', async () => {
    const f = await fixture({ ready: false });
    const ready = await reply(await f.send('/ready', { method: 'GET' }));
    expect(ready.status).toBe(503);
    expect(ready.text).toBe('{"status":"not_ready","err":"state_not_ready"}');
    expectJsonHeaders(ready.headers);
    expect((await f.send('/health', { method: 'GET' })).status).toBe(200);
    f.keys.install();
    expect((await f.send('/ready', { method: 'GET' })).status).toBe(200);
  });

  it('the memory backend is always ready', async () => {
    const f = await fixture({ backend: 'memory', ready: false });
    expect((await f.send('/ready', { method: 'GET' })).status).toBe(200);
  });
});

describe('processing order (§3)', () => {
  it('non-POST → 400, before the readiness check', async () => {
    const f = await fixture({ ready: false });
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const r = await reply(await f.send('/v1/store/secrets', { method, peer: SUPERUSER }));
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"err":"api_bad_request"}');
      expectJsonHeaders(r.headers);
    }
    // A GET to a probe path with another method is not a probe.
    expect((await f.send('/health', { method: 'POST', body: '{}' })).status).toBe(503);
  });

  it('not ready → 503 on every path, unknown ones included; recover/restore exempt', async () => {
    const f = await fixture({ ready: false });
    for (const path of ['/v1/store/secrets?action=get', '/nope', '/v1/acl/policy/']) {
      const r = await f.post(path, { path: 'a' });
      expect(r.status).toBe(503);
      expect(r.text).toBe('{"err":"state_not_ready"}');
      expectJsonHeaders(r.headers);
    }
    expect((await f.post('/v1/operator/recover', {}, SUPERUSER)).status).toBe(401);
    expect((await f.post('/v1/operator/restore', {}, SUPERUSER)).status).toBe(401);
  });

  it('exact path and action, else 400', async () => {
    const f = await fixture();
    for (const path of [
      '/v1/store/secrets/',
      '/v1/store/secret',
      '/V1/store/secrets',
      '/v1/store/secrets?action=GET',
      '/v1/store/secrets?action=nope',
      '/v1/acl/policy?action=purge',
      '/v1/store/secrets/metadata',
      '//v1/store/secrets',
      '/',
    ]) {
      const r = await f.post(path, { path: 'a' });
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"err":"api_bad_request"}');
    }
    // Other query parameters are ignored; the first `action` wins (Go's Query().Get).
    await f.post('/v1/store/secrets', { path: 'a', values: { k: 'v' } });
    expect(
      (await f.post('/v1/store/secrets?x=1&action=get&action=list', { path: 'a' })).json,
    ).toEqual({
      data: { k: 'v' },
      version: 1,
    });
  });

  it('bad JSON from an unauthorised caller → 400; unauthorised with a bad path → 401', async () => {
    const f = await fixture();
    expect((await f.post('/v1/store/secrets?action=get', '{bad', STRANGER)).status).toBe(400);
    const r = await f.post('/v1/store/secrets?action=get', { path: 'not a valid path!' }, STRANGER);
    expect(r.status).toBe(401);
    expect(r.text).toBe('{"data":null,"err":"access_unauthorized"}');
  });

  it('a caller without a peer ID, or with a malformed one, is unauthorised', async () => {
    const f = await fixture();
    const none = await reply(await f.send('/v1/store/secrets?action=list', { body: '{}' }));
    expect(none.status).toBe(401);
    expect(none.text).toBe('{"keys":null,"err":"access_unauthorized"}');
    for (const peer of [
      'SPIFFE://spike.ist/spike/pilot/role/superuser',
      'spiffe://spike.ist/spike/pilot/role/superuser/',
      'spiffe://spike.ist/spike/pilot/role/../role/superuser',
      'spiffe://spike_ist/x',
      '',
    ]) {
      expect((await f.post('/v1/store/secrets?action=list', {}, peer)).status).toBe(401);
    }
  });

  it('routes by the real path even when the URL host is very short', async () => {
    const f = await fixture();
    const peers = new WeakMap<Request, string>();
    const app = createNexusApp({ ...f.deps, peerOf: (r) => peers.get(r) });
    const call = async (url: string, method = 'POST') => {
      const request = new Request(url, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      peers.set(request, SUPERUSER);
      return reply(await app.handle(request));
    };
    for (const host of ['x', 'nx', 'abc', 'x:1']) {
      expect((await call(`https://${host}/v1/store/secrets?action=list`)).text).toBe('{"keys":[]}');
      expect((await call(`https://${host}/health`, 'GET')).text).toBe('{"status":"ok"}');
      expect((await call(`https://${host}/ready`, 'GET')).text).toBe('{"status":"ready"}');
      expect((await call(`https://${host}/v1/store/nope`)).status).toBe(400);
      expect((await call(`https://${host}/v/health`, 'GET')).status).toBe(400);
    }
  });

  it('never trusts a header for identity', async () => {
    const f = await fixture();
    const r = await f.send('/v1/store/secrets?action=list', {
      body: '{}',
      headers: { 'x-spiffe-id': SUPERUSER, 'x-forwarded-client-cert': `URI=${SUPERUSER}` },
    });
    expect(r.status).toBe(401);
  });
});

describe('request JSON (Go encoding/json semantics)', () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await fixture();
    await f.post('/v1/store/secrets', { path: 'app/db', values: { user: 'u', pass: 'p' } });
  });

  it('rejects invalid JSON, an empty body, non-objects and trailing data', async () => {
    for (const body of [
      '',
      ' ',
      '{',
      '{"path":}',
      '[]',
      '"x"',
      '1',
      '{"path":"app/db"} x',
      '\uFEFF{}',
      "{'path':'a'}",
    ]) {
      const r = await f.post('/v1/store/secrets?action=get', body);
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"data":null,"err":"api_bad_request"}');
      expectJsonHeaders(r.headers);
    }
  });

  it('null means all zero (then fails validation)', async () => {
    expect((await f.post('/v1/store/secrets?action=get', 'null')).status).toBe(400);
    expect((await f.post('/v1/store/secrets?action=list', 'null')).status).toBe(200);
  });

  it('matches keys case-insensitively, ignores unknown keys, later duplicates win', async () => {
    expect(
      (await f.post('/v1/store/secrets?action=get', '{"PATH":"app/db","extra":[1,{"a":null}]}'))
        .json,
    ).toEqual({
      data: { user: 'u', pass: 'p' },
      version: 1,
    });
    expect(
      (await f.post('/v1/store/secrets?action=get', '{"path":"nope","Path":"app/db"}')).status,
    ).toBe(200);
    // Unicode simple folding: U+017F (long s) folds to "s".
    expect(
      (await f.post('/v1/store/secrets?action=get', '{"path":"app/db","ver\u017Fion":0}')).status,
    ).toBe(200);
  });

  it('wrong types → 400; integers reject fractions, exponents and strings', async () => {
    for (const body of [
      { path: 1 },
      { path: ['app/db'] },
      { path: 'app/db', version: '1' },
      { path: 'app/db', version: 1.5 },
      { path: 'app/db', version: true },
      '{"path":"app/db","version":1e0}',
      '{"path":"app/db","version":99999999999999999999}',
    ]) {
      expect((await f.post('/v1/store/secrets?action=get', body)).status).toBe(400);
    }
    expect((await f.post('/v1/store/secrets', { path: 'x', values: { k: 1 } })).status).toBe(400);
    expect((await f.post('/v1/store/secrets', { path: 'x', values: ['k'] })).status).toBe(400);
    expect(
      (await f.post('/v1/store/secrets?action=delete', { path: 'app/db', versions: [1.5] })).status,
    ).toBe(400);
    expect(
      (await f.post('/v1/store/secrets?action=delete', { path: 'app/db', versions: '1' })).status,
    ).toBe(400);
  });

  it('bytes are standard base64 with padding', async () => {
    for (const plaintext of ['aGk', 'aGk=x', 'aG k=', 'aGk_', '!!!!']) {
      const r = await f.post('/v1/cipher/encrypt', { plaintext });
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"version":0,"nonce":null,"ciphertext":null,"err":"api_bad_request"}');
    }
    expect((await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' })).status).toBe(200);
  });

  it('a 2 MiB body → 400 without echoing anything', async () => {
    const big = JSON.stringify({ path: 'app/db', values: { k: 'x'.repeat(2 * 1024 * 1024) } });
    const r = await f.post('/v1/store/secrets', big);
    expect(r.status).toBe(400);
    expect(r.text).toBe('{"err":"api_bad_request"}');
  });

  it('a body that never ends is refused at the cap', async () => {
    const g = await fixture({ maxBodyBytes: 64 * 1024 });
    const { stream, served } = endlessStream();
    const r = await reply(await g.send('/v1/store/secrets', { peer: SUPERUSER, body: stream }));
    expect(r.status).toBe(400);
    expect(r.text).toBe('{"err":"api_bad_request"}');
    // Read at most the cap plus the chunk that crossed it, and the producer was cancelled.
    expect(served()).toBeLessThanOrEqual(64 * 1024 + 3 * 16 * 1024);
  });
});

describe('secrets (§4, §6)', () => {
  it('put, get, metadata, delete, undelete, destroy, purge, list', async () => {
    const f = await fixture();
    expect(await f.post('/v1/store/secrets?action=list', {})).toMatchObject({
      status: 200,
      text: '{"keys":[]}',
    });
    const put = await f.post('/v1/store/secrets', {
      path: 'app/db',
      values: { user: 'admin', pass: 's3cr3t' },
    });
    expect(put.status).toBe(200);
    expect(put.text).toBe('{}');
    expectJsonHeaders(put.headers);
    await f.post('/v1/store/secrets', { path: 'app/db', values: { user: 'admin', pass: 'v2' } });
    await f.post('/v1/store/secrets', { path: 'a/first', values: {} });

    expect((await f.post('/v1/store/secrets?action=get', { path: 'app/db' })).text).toBe(
      '{"data":{"user":"admin","pass":"v2"},"version":2}',
    );
    expect(
      (await f.post('/v1/store/secrets?action=get', { path: 'app/db', version: 1 })).json,
    ).toEqual({
      data: { user: 'admin', pass: 's3cr3t' },
      version: 1,
    });
    expect((await f.post('/v1/store/secrets?action=get', { path: 'a/first' })).text).toBe(
      '{"data":{},"version":1}',
    );
    expect((await f.post('/v1/store/secrets?action=list', {})).text).toBe(
      '{"keys":["a/first","app/db"]}',
    );

    const meta = await f.post('/v1/store/secrets/metadata?action=get', { path: 'app/db' });
    expect(meta.status).toBe(200);
    expect(Object.keys(meta.json)).toEqual(['versions', 'metadata']);
    const versions = meta.json.versions as Record<string, Record<string, unknown>>;
    expect(Object.keys(versions)).toEqual(['1', '2']);
    expect(Object.keys(versions['1']!)).toEqual(['createdTime', 'version', 'deletedTime']);
    expect(versions['2']!.version).toBe(2);
    expect(versions['2']!.deletedTime).toBeNull();
    expect(versions['1']!.createdTime).toMatch(RFC3339);
    const m = meta.json.metadata as Record<string, unknown>;
    expect(Object.keys(m)).toEqual([
      'currentVersion',
      'oldestVersion',
      'createdTime',
      'updatedTime',
      'maxVersions',
    ]);
    expect(m).toMatchObject({ currentVersion: 2, oldestVersion: 1, maxVersions: 10 });

    expect(
      (await f.post('/v1/store/secrets?action=delete', { path: 'app/db', versions: [] })).text,
    ).toBe('{}');
    expect(
      (await f.post('/v1/store/secrets?action=get', { path: 'app/db', version: 2 })).status,
    ).toBe(404);
    const afterDelete = await f.post('/v1/store/secrets/metadata?action=get', { path: 'app/db' });
    expect((afterDelete.json.metadata as Record<string, unknown>).currentVersion).toBe(1);
    expect(
      (afterDelete.json.versions as Record<string, Record<string, unknown>>)['2']!.deletedTime,
    ).toMatch(RFC3339);

    expect(
      (await f.post('/v1/store/secrets?action=undelete', { path: 'app/db', versions: [2] })).status,
    ).toBe(200);
    expect((await f.post('/v1/store/secrets?action=get', { path: 'app/db' })).json).toEqual({
      data: { user: 'admin', pass: 'v2' },
      version: 2,
    });
    expect(
      (await f.post('/v1/store/secrets?action=destroy', { path: 'app/db', versions: [2] })).text,
    ).toBe('{}');
    expect(
      (await f.post('/v1/store/secrets?action=get', { path: 'app/db', version: 2 })).status,
    ).toBe(404);
    expect((await f.post('/v1/store/secrets?action=purge', { path: 'app/db' })).text).toBe('{}');
    expect((await f.post('/v1/store/secrets?action=get', { path: 'app/db' })).status).toBe(404);
    expect((await f.post('/v1/store/secrets?action=list', {})).text).toBe('{"keys":["a/first"]}');
  });

  it('404s carry the zero-valued bodies', async () => {
    const f = await fixture();
    const get = await f.post('/v1/store/secrets?action=get', { path: 'missing' });
    expect(get.status).toBe(404);
    expect(get.text).toBe('{"data":null,"err":"api_not_found"}');
    expectJsonHeaders(get.headers);
    const meta = await f.post('/v1/store/secrets/metadata?action=get', { path: 'missing' });
    expect(meta.status).toBe(404);
    expect(meta.text).toBe(
      `{"metadata":{"currentVersion":0,"oldestVersion":0,"createdTime":"${ZERO_TIME}","updatedTime":"${ZERO_TIME}","maxVersions":0},"err":"api_not_found"}`,
    );
    for (const action of ['delete', 'undelete', 'destroy', 'purge']) {
      const r = await f.post(`/v1/store/secrets?action=${action}`, { path: 'missing' });
      expect(r.status).toBe(404);
      expect(r.text).toBe('{"err":"api_not_found"}');
    }
  });

  it('validates paths and value keys (400 after authorisation)', async () => {
    const f = await fixture();
    for (const body of [
      { path: '', values: {} },
      { path: 'a b', values: {} },
      { path: 'x'.repeat(501), values: {} },
      { path: 'ok', values: { 'bad.key': 'v' } },
      { path: 'ok', values: { '': 'v' } },
    ]) {
      const r = await f.post('/v1/store/secrets', body);
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"err":"api_bad_request"}');
    }
    expect(
      (await f.post('/v1/store/secrets', { path: 'x'.repeat(500), values: { 'a key-1_': 'v' } }))
        .status,
    ).toBe(200);
  });

  it('never puts a secret value in an error or the audit trail', async () => {
    const f = await fixture();
    const value = 'TOP-SECRET-VALUE-81f2';
    await f.post('/v1/store/secrets', { path: 'app/x', values: { k: value } });
    await f.post('/v1/store/secrets', { path: 'app/x', values: { 'bad key!': value } });
    await f.post('/v1/store/secrets', `{"path":"app/x","values":{"k":"${value}"`);
    await f.post('/v1/store/secrets?action=get', { path: 'app/x' }, STRANGER);
    expect(f.audit.join('\n')).not.toContain(value);
  });
});

describe('policies and access (§4, §7)', () => {
  const billing = {
    name: 'billing-read',
    spiffeidPattern: `^spiffe://${TD}/app/billing$`,
    pathPattern: '^billing/.*$',
    permissions: ['read', 'list'],
  };

  it('put, get, list, delete with the upstream field names', async () => {
    const f = await fixture();
    const put = await f.post('/v1/acl/policy', billing);
    expect(put.status).toBe(200);
    expect(put.text).toBe('{}');
    const get = await f.post('/v1/acl/policy?action=get', { id: 'billing-read' });
    expect(get.status).toBe(200);
    expect(Object.keys(get.json)).toEqual([
      'id',
      'name',
      'spiffiedPattern',
      'pathPattern',
      'permissions',
      'createdAt',
      'updatedAt',
    ]);
    expect(get.json).toMatchObject({
      id: '',
      name: 'billing-read',
      spiffiedPattern: billing.spiffeidPattern,
      pathPattern: billing.pathPattern,
      permissions: ['read', 'list'],
    });
    expect(get.json.createdAt).toMatch(RFC3339);

    await f.post('/v1/acl/policy', { ...billing, name: 'a-first', pathPattern: '^other/' });
    expect((await f.post('/v1/acl/policy?action=list', {})).text).toBe(
      '{"policies":[{"id":"","name":"a-first"},{"id":"","name":"billing-read"}]}',
    );
    expect((await f.post('/v1/acl/policy?action=list', { pathPattern: '^other/' })).json).toEqual({
      policies: [{ id: '', name: 'a-first' }],
    });
    // A non-empty SPIFFE filter wins over the path filter.
    expect(
      (
        await f.post('/v1/acl/policy?action=list', {
          spiffeidPattern: billing.spiffeidPattern,
          pathPattern: 'zzz',
        })
      ).json,
    ).toEqual({
      policies: [
        { id: '', name: 'a-first' },
        { id: '', name: 'billing-read' },
      ],
    });
    expect((await f.post('/v1/acl/policy?action=list', { spiffeidPattern: 'none' })).text).toBe(
      '{"policies":[]}',
    );

    expect((await f.post('/v1/acl/policy?action=delete', { id: 'billing-read' })).text).toBe('{}');
    const missing = await f.post('/v1/acl/policy?action=get', { id: 'billing-read' });
    expect(missing.status).toBe(404);
    expect(missing.text).toBe(
      `{"id":"","name":"","spiffiedPattern":"","pathPattern":"","permissions":null,"createdAt":"${ZERO_TIME}","updatedAt":"${ZERO_TIME}","err":"api_not_found"}`,
    );
    const again = await f.post('/v1/acl/policy?action=delete', { id: 'billing-read' });
    expect(again.status).toBe(404);
    expect(again.text).toBe('{"err":"api_not_found"}');
  });

  it('rejects bad patterns, reserved-path violations and bad names with 400', async () => {
    const f = await fixture();
    for (const body of [
      { ...billing, pathPattern: '(a' },
      { ...billing, pathPattern: 'a++' },
      { ...billing, spiffeidPattern: '.*' },
      { ...billing, spiffeidPattern: 'spiffe://x/(' },
      { ...billing, spiffeidPattern: `spiffe://${TD}/app`, pathPattern: 'spike/system/acl' },
      { ...billing, pathPattern: 'system' },
      { ...billing, name: 'bad.name' },
      { ...billing, permissions: [] },
      { ...billing, permissions: ['root'] },
      { ...billing, permissions: null },
    ]) {
      const r = await f.post('/v1/acl/policy', body);
      expect(r.status).toBe(400);
      expect(r.text).toBe('{"err":"api_bad_request"}');
    }
    expect((await f.post('/v1/acl/policy?action=list', {})).text).toBe('{"policies":[]}');
    expect((await f.post('/v1/acl/policy?action=get', { id: 'bad.name' })).status).toBe(400);
  });

  it('a workload gets exactly what its policies grant', async () => {
    const f = await fixture();
    await f.post('/v1/acl/policy', billing);
    await f.post('/v1/store/secrets', { path: 'billing/db', values: { k: 'v' } });
    expect((await f.post('/v1/store/secrets?action=get', { path: 'billing/db' }, APP)).status).toBe(
      200,
    );
    expect(
      (await f.post('/v1/store/secrets/metadata?action=get', { path: 'billing/db' }, APP)).status,
    ).toBe(200);
    const write = await f.post('/v1/store/secrets', { path: 'billing/db', values: {} }, APP);
    expect(write.status).toBe(401);
    expect(write.text).toBe('{"err":"access_unauthorized"}');
    expect((await f.post('/v1/store/secrets?action=get', { path: 'payroll/db' }, APP)).status).toBe(
      401,
    );
    // `list` on billing/* is not `list` on spike/system/secret.
    expect((await f.post('/v1/store/secrets?action=list', {}, APP)).status).toBe(401);
    // Policies are not readable without a policy on spike/system/acl.
    expect((await f.post('/v1/acl/policy?action=list', {}, APP)).text).toBe(
      '{"policies":null,"err":"access_unauthorized"}',
    );
    expect((await f.post('/v1/acl/policy?action=get', { id: 'billing-read' }, APP)).status).toBe(
      401,
    );
    // A grant on the reserved list path, with an anchored SPIFFE pattern, works.
    await f.post('/v1/acl/policy', {
      name: 'lister',
      spiffeidPattern: `^spiffe://${TD}/app/billing$`,
      pathPattern: '^spike/system/secret$',
      permissions: ['list'],
    });
    expect((await f.post('/v1/store/secrets?action=list', {}, APP)).text).toBe(
      '{"keys":["billing/db"]}',
    );
  });

  it('denied requests are audited with the caller SPIFFE ID', async () => {
    const f = await fixture();
    const r = await f.post('/v1/store/secrets?action=get', { path: 'app/db' }, STRANGER);
    expect(r.status).toBe(401);
    expect(r.text).toBe('{"data":null,"err":"access_unauthorized"}');
    const line = lastAudit(f);
    expect(line).toMatchObject({
      component: 'nexus',
      caller: STRANGER,
      route: '/v1/store/secrets?action=get',
      action: 'read',
      outcome: 'denied',
      status: 401,
      err: 'access_unauthorized',
    });
    // Auditors see which well-formed path was refused …
    expect(line.resource).toBe('app/db');
    // … but a malformed one is never copied into the audit trail.
    const bad = await f.post('/v1/store/secrets?action=get', { path: 'a\nb c' }, STRANGER);
    expect(bad.status).toBe(401);
    expect(lastAudit(f).resource).toBeUndefined();
  });

  it('answers a pathological pattern fast', async () => {
    const f = await fixture();
    expect(
      (await f.post('/v1/acl/policy', { ...billing, name: 'evil', pathPattern: '(a+)+$' })).status,
    ).toBe(200);
    const path = `${'a'.repeat(5000)}!`;
    await f.post('/v1/store/secrets?action=get', { path: 'warm' }, APP);
    const start = performance.now();
    const r = await f.post('/v1/store/secrets?action=get', { path }, APP);
    const elapsed = performance.now() - start;
    expect(r.status).toBe(401);
    expect(elapsed).toBeLessThan(100);
  });

  it('checks policies from the cache, not the store, on every request', async () => {
    const f = await fixture();
    await f.post('/v1/acl/policy', billing);
    for (let i = 0; i < 10; i++)
      await f.post('/v1/store/secrets?action=get', { path: 'billing/x' }, APP);
    expect(f.policyLists()).toBe(1);
  });

  it('the superuser may do everything except recover and restore', async () => {
    const f = await fixture({ ready: true });
    expect((await f.post('/v1/acl/policy?action=list', {})).status).toBe(200);
    expect((await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' })).status).toBe(200);
    expect((await f.post('/v1/operator/recover', {})).text).toBe(
      '{"shards":null,"err":"access_unauthorized"}',
    );
    expect((await f.post('/v1/operator/restore', {})).text).toBe(
      '{"collected":0,"remaining":0,"restored":false,"err":"access_unauthorized"}',
    );
    expect((await f.post('/v1/bootstrap/verify', {})).text).toBe(
      '{"hash":"","err":"access_unauthorized"}',
    );
  });

  it('lite workloads may use cipher and nothing else, whatever the policies say', async () => {
    const f = await fixture();
    await f.post('/v1/acl/policy', {
      name: 'all',
      spiffeidPattern: '^spiffe://.*$',
      pathPattern: '.*',
      permissions: ['super'],
    });
    await f.post('/v1/store/secrets', { path: 'any/x', values: { k: 'v' } });
    expect((await f.post('/v1/store/secrets?action=get', { path: 'any/x' }, APP)).status).toBe(200);
    expect((await f.post('/v1/store/secrets?action=get', { path: 'any/x' }, LITE)).status).toBe(
      401,
    );
    expect(
      (await f.post('/v1/store/secrets', { path: 'spike/system/cipher/exec', values: {} }, LITE))
        .status,
    ).toBe(401);
    expect((await f.post('/v1/acl/policy?action=list', {}, LITE)).status).toBe(401);
    const enc = await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' }, LITE);
    expect(enc.status).toBe(200);
    expect((await f.post('/v1/cipher/decrypt', enc.json, LITE)).json).toEqual({
      plaintext: 'aGk=',
    });
  });
});

describe('cipher (§8)', () => {
  it('JSON encrypt and decrypt round-trip; the wire format is AES-256-GCM', async () => {
    const f = await fixture();
    const plaintext = utf8.encode('hello, cipher');
    const enc = await f.post('/v1/cipher/encrypt', {
      plaintext: toBase64(plaintext),
      algorithm: 'x',
    });
    expect(enc.status).toBe(200);
    expectJsonHeaders(enc.headers);
    expect(Object.keys(enc.json)).toEqual(['version', 'nonce', 'ciphertext']);
    expect(enc.json.version).toBe(1);
    expect(fromBase64(enc.json.nonce as string).length).toBe(12);
    expect(fromBase64(enc.json.ciphertext as string).length).toBe(plaintext.length + 16);
    const dec = await f.post('/v1/cipher/decrypt', enc.json);
    expect(dec.text).toBe(`{"plaintext":"${toBase64(plaintext)}"}`);
  });

  it('decrypts what an independent AES-GCM produced under the cipher key', async () => {
    // The app only sees keys through the provider, so give it one whose root key we know.
    const root = generateRootKey();
    const derived = await deriveKeys(root);
    const f = await fixture();
    // HKDF-SHA-256(root, salt = empty, info = spike/v1/cipher) by Web Crypto's raw HKDF.
    const ikm = await crypto.subtle.importKey('raw', bufferSource(root), 'HKDF', false, [
      'deriveBits',
    ]);
    const raw = new Uint8Array(
      await crypto.subtle.deriveBits(
        {
          name: 'HKDF',
          hash: 'SHA-256',
          salt: new Uint8Array(0),
          info: bufferSource(utf8.encode('spike/v1/cipher')),
        },
        ikm,
        256,
      ),
    );
    const nonce = randomNonce();
    const sealed = gcm(raw, nonce).encrypt(utf8.encode('from noble'));
    const request = new Request('http://localhost/v1/cipher/decrypt', {
      method: 'POST',
      body: JSON.stringify({ version: 1, nonce: toBase64(nonce), ciphertext: toBase64(sealed) }),
    });
    const peers = new WeakMap([[request, SUPERUSER]]);
    const app = createNexusApp({
      ...f.deps,
      keys: { keys: () => derived },
      peerOf: (r) => peers.get(r),
    });
    const r = await reply(await app.handle(request));
    expect(r.status).toBe(200);
    expect(r.json.plaintext).toBe(toBase64(utf8.encode('from noble')));
  });

  it('JSON decrypt: bad version or nonce → 400, tag failure → 500', async () => {
    const f = await fixture();
    const enc = (await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' })).json;
    const zero = (err: string) => `{"plaintext":null,"err":"${err}"}`;
    expect((await f.post('/v1/cipher/decrypt', { ...enc, version: 2 })).text).toBe(
      zero('api_bad_request'),
    );
    expect((await f.post('/v1/cipher/decrypt', { ...enc, version: 256 })).status).toBe(400);
    expect(
      (await f.post('/v1/cipher/decrypt', { ...enc, nonce: toBase64(new Uint8Array(11)) })).status,
    ).toBe(400);
    expect((await f.post('/v1/cipher/decrypt', { ...enc, nonce: null })).status).toBe(400);
    const bytes = fromBase64(enc.ciphertext as string);
    bytes[0]! ^= 1;
    const tampered = await f.post('/v1/cipher/decrypt', { ...enc, ciphertext: toBase64(bytes) });
    expect(tampered.status).toBe(500);
    expect(tampered.text).toBe(zero('api_internal_error'));
  });

  it('size limits: plaintext and ciphertext above the maximum → 400', async () => {
    const f = await fixture({ maxCipherBytes: 32 });
    const over = toBase64(new Uint8Array(33));
    expect((await f.post('/v1/cipher/encrypt', { plaintext: over })).status).toBe(400);
    expect(
      (await f.post('/v1/cipher/encrypt', { plaintext: toBase64(new Uint8Array(32)) })).status,
    ).toBe(200);
    const dec = await f.post('/v1/cipher/decrypt', {
      version: 1,
      nonce: toBase64(new Uint8Array(12)),
      ciphertext: over,
    });
    expect(dec.text).toBe('{"plaintext":null,"err":"api_bad_request"}');
    const stream = await reply(
      await f.send('/v1/cipher/encrypt', {
        peer: SUPERUSER,
        body: new Uint8Array(33),
        headers: { 'content-type': 'application/octet-stream' },
      }),
    );
    expect(stream.status).toBe(400);
    expect(stream.text).toBe(
      '{"version":0,"nonce":null,"ciphertext":null,"err":"api_bad_request"}',
    );
  });

  it('stream mode round-trips raw bytes; Content-Type must match exactly', async () => {
    const f = await fixture();
    const octet = { 'content-type': 'application/octet-stream' };
    const plaintext = crypto.getRandomValues(new Uint8Array(1000));
    const enc = await f.send('/v1/cipher/encrypt', {
      peer: SUPERUSER,
      body: plaintext,
      headers: octet,
    });
    expect(enc.status).toBe(200);
    expect(enc.headers.get('content-type')).toBe('application/octet-stream');
    const sealed = new Uint8Array(await enc.arrayBuffer());
    expect(sealed[0]).toBe(1);
    expect(sealed.length).toBe(1 + 12 + plaintext.length + 16);
    const dec = await f.send('/v1/cipher/decrypt', {
      peer: SUPERUSER,
      body: sealed,
      headers: octet,
    });
    expect(dec.status).toBe(200);
    expect(toHex(new Uint8Array(await dec.arrayBuffer()))).toBe(toHex(plaintext));
    // With parameters it is JSON mode, so raw bytes are bad JSON.
    const withCharset = await f.send('/v1/cipher/decrypt', {
      peer: SUPERUSER,
      body: sealed,
      headers: { 'content-type': 'application/octet-stream; charset=binary' },
    });
    expect(withCharset.status).toBe(400);
    expect(withCharset.headers.get('content-type')).toBe('application/json');
  });

  it('stream decrypt errors are 400 text/plain with the code', async () => {
    const f = await fixture();
    const octet = { 'content-type': 'application/octet-stream' };
    const sealed = new Uint8Array(
      await (
        await f.send('/v1/cipher/encrypt', {
          peer: SUPERUSER,
          body: new Uint8Array(5),
          headers: octet,
        })
      ).arrayBuffer(),
    );
    const tampered = sealed.slice();
    tampered[20]! ^= 1;
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), 'crypto_failed_to_read_version\n'],
      [Uint8Array.of(3, 1, 2, 3), 'crypto_unsupported_version\n'],
      [Uint8Array.of(1, 1, 2, 3), 'crypto_failed_to_read_nonce\n'],
      [tampered, 'decryption failed\n'],
      [sealed.subarray(0, 20), 'decryption failed\n'],
    ];
    for (const [body, text] of cases) {
      const r = await f.send('/v1/cipher/decrypt', {
        peer: SUPERUSER,
        body: bufferSource(body),
        headers: octet,
      });
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(await r.text()).toBe(text);
    }
    // Authorisation errors stay JSON in stream mode.
    const denied = await f.send('/v1/cipher/decrypt', {
      peer: STRANGER,
      body: sealed,
      headers: octet,
    });
    expect(denied.status).toBe(401);
    expect(await denied.text()).toBe('{"plaintext":null,"err":"access_unauthorized"}');
  });

  it('decrypt authorises before reading the body; encrypt reads it first', async () => {
    const f = await fixture();
    const endless = endlessStream();
    const denied = await f.send('/v1/cipher/decrypt', {
      peer: STRANGER,
      body: endless.stream,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(denied.status).toBe(401);
    expect(endless.served()).toBeLessThanOrEqual(2 * 16 * 1024);
    // Encrypt parses before it authorises: bad JSON from a stranger is a 400.
    expect((await f.post('/v1/cipher/encrypt', '{', STRANGER)).status).toBe(400);
    expect((await f.post('/v1/cipher/decrypt', '{', STRANGER)).status).toBe(401);
  });

  it('a workload needs execute on spike/system/cipher/exec', async () => {
    const f = await fixture();
    expect((await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' }, APP)).status).toBe(401);
    await f.post('/v1/acl/policy', {
      name: 'cipher',
      spiffeidPattern: `^spiffe://${TD}/app/.*$`,
      pathPattern: '^spike/system/cipher/exec$',
      permissions: ['execute'],
    });
    expect((await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' }, APP)).status).toBe(200);
  });
});

describe('bootstrap verify (§9)', () => {
  it('returns the SHA-256 of the decrypted proof, for the bootstrap role only', async () => {
    const f = await fixture();
    const proof = toHex(crypto.getRandomValues(new Uint8Array(32)));
    const nonce = randomNonce();
    const key = f.keys.derived.bootstrapVerify;
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv: nonce },
        key,
        bufferSource(utf8.encode(proof)),
      ),
    );
    const body = { nonce: toBase64(nonce), ciphertext: toBase64(ciphertext) };
    const expected = toHex(
      new Uint8Array(await crypto.subtle.digest('SHA-256', bufferSource(utf8.encode(proof)))),
    );
    const ok = await f.post('/v1/bootstrap/verify', body, BOOTSTRAP);
    expect(ok.status).toBe(200);
    expect(ok.text).toBe(`{"hash":"${expected}"}`);
    expect((await f.post('/v1/bootstrap/verify', body, SUPERUSER)).status).toBe(401);
    const short = await f.post(
      '/v1/bootstrap/verify',
      { ...body, nonce: toBase64(new Uint8Array(8)) },
      BOOTSTRAP,
    );
    expect(short.text).toBe('{"hash":"","err":"api_bad_request"}');
    const bad = ciphertext.slice();
    bad[0]! ^= 1;
    const failed = await f.post(
      '/v1/bootstrap/verify',
      { ...body, ciphertext: toBase64(bad) },
      BOOTSTRAP,
    );
    expect(failed.status).toBe(500);
    expect(failed.text).toBe('{"hash":"","err":"api_internal_error"}');
  });
});

describe('recover and restore (§9)', () => {
  async function withOperator(ready: boolean) {
    let envelopes: ShardEnvelope[] = await splitRootKey(generateRootKey(), 3, 2);
    const collector = new RestoreCollector(2, envelopes[0]!.kcv);
    let f: Fixture | undefined;
    const operator: NexusAppDeps['operator'] = {
      recover: async () => envelopes,
      restore: async (envelope) => {
        const step = await collector.add(envelope);
        if (step.status.restored) f!.keys.install();
        return step.status;
      },
      reset: async () => collector.clear(),
    };
    f = await fixture({ ready, operator });
    return { f, envelopes, setEnvelopes: (e: ShardEnvelope[]) => (envelopes = e) };
  }

  it('recover: recover role only; returns the envelopes', async () => {
    const { f, envelopes } = await withOperator(true);
    const r = await f.post('/v1/operator/recover', {}, RECOVER);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ shards: envelopes.map((e) => ({ ...e })) });
    expect((await f.post('/v1/operator/recover', {}, RESTORE)).status).toBe(401);
    expect((await f.post('/v1/operator/recover', {}, SUPERUSER)).status).toBe(401);
    // Roles do not reach secrets.
    expect((await f.post('/v1/store/secrets?action=list', {}, RECOVER)).status).toBe(401);
    // No key held: nothing to recover.
    f.keys.drop();
    expect((await f.post('/v1/operator/recover', {}, RECOVER)).text).toBe(
      '{"shards":null,"err":"state_not_ready"}',
    );
  });

  it('restore: one envelope per call until the key is back, then 409', async () => {
    const { f, envelopes } = await withOperator(false);
    expect((await f.post('/v1/store/secrets?action=list', {})).status).toBe(503);
    expect((await f.post('/v1/operator/restore', envelopes[0], SUPERUSER)).status).toBe(401);
    const first = await f.post('/v1/operator/restore', envelopes[0], RESTORE);
    const held = (collected: number, restored = false) =>
      JSON.stringify({
        collected,
        remaining: 2 - collected,
        restored,
        generation: envelopes[0]!.generation,
        threshold: 2,
      });
    expect(first.text).toBe(held(1));
    const dup = await f.post('/v1/operator/restore', envelopes[0], RESTORE);
    expect(dup.text).toBe(held(1));
    const bad = await f.post('/v1/operator/restore', { ...envelopes[1], index: 0 }, RESTORE);
    expect(bad.text).toBe('{"collected":0,"remaining":0,"restored":false,"err":"api_bad_request"}');
    const zeroShard = await f.post(
      '/v1/operator/restore',
      { ...envelopes[1], shard: '00'.repeat(33) },
      RESTORE,
    );
    expect(zeroShard.status).toBe(400);
    const done = await f.post('/v1/operator/restore', envelopes[2], RESTORE);
    expect(done.text).toBe(held(2, true));
    expect((await f.post('/v1/store/secrets?action=list', {})).status).toBe(200);
    const again = await f.post('/v1/operator/restore', envelopes[1], RESTORE);
    expect(again.status).toBe(409);
    expect(again.text).toBe(
      '{"collected":0,"remaining":0,"restored":false,"err":"state_already_initialized"}',
    );
  });

  it('restore reports what it holds; another generation → 400 naming it; reset discards (issue 11)', async () => {
    const { f, envelopes } = await withOperator(false);
    const other = await splitRootKey(generateRootKey(), 3, 2);
    const empty = await f.post('/v1/operator/restore?action=reset', {}, RESTORE);
    expect(empty.text).toBe(
      '{"collected":0,"remaining":2,"restored":false,"generation":"","threshold":2}',
    );
    expect((await f.post('/v1/operator/restore?action=reset', {}, SUPERUSER)).status).toBe(401);
    await f.post('/v1/operator/restore', envelopes[0], RESTORE);
    const mixed = await f.post('/v1/operator/restore', other[1], RESTORE);
    expect(mixed.status).toBe(400);
    expect(mixed.json).toEqual({
      collected: 1,
      remaining: 1,
      restored: false,
      generation: envelopes[0]!.generation,
      threshold: 2,
      reason: expect.stringContaining('different generation'),
      err: 'api_bad_request',
    });
    expect(mixed.headers.get('spike-error-reason')).toContain('different generation');
    expect(mixed.text).not.toContain(other[1]!.shard);
    const reset = await f.post('/v1/operator/restore?action=reset', {}, RESTORE);
    expect(reset.json).toEqual({
      collected: 0,
      remaining: 2,
      restored: false,
      generation: '',
      threshold: 2,
    });
    // Mis-spelt or unknown actions on the route stay refused.
    expect((await f.post('/v1/operator/restore?action=Reset', {}, RESTORE)).status).toBe(400);
    const fresh = await f.post('/v1/operator/restore', other[1], RESTORE);
    expect(fresh.json?.generation).toBe(other[1]!.generation);
    expect(fresh.json?.collected).toBe(1);
  });

  it('memory backend: recover and restore → 400 before authorisation', async () => {
    const f = await fixture({ backend: 'memory' });
    for (const path of ['/v1/operator/recover', '/v1/operator/restore']) {
      const r = await reply(await f.send(path, { body: '{' }));
      expect(r.status).toBe(400);
    }
    expect((await f.post('/v1/operator/recover', {}, RECOVER)).text).toBe(
      '{"shards":null,"err":"api_bad_request"}',
    );
  });

  it('without an operator hook: recover 500, restore 500 (409 once a key is held)', async () => {
    const f = await fixture({ ready: false });
    const envelopes = await splitRootKey(generateRootKey(), 2, 2);
    expect((await f.post('/v1/operator/restore', envelopes[0], RESTORE)).status).toBe(500);
    f.keys.install();
    expect((await f.post('/v1/operator/recover', {}, RECOVER)).text).toBe(
      '{"shards":null,"err":"api_internal_error"}',
    );
    expect((await f.post('/v1/operator/restore', envelopes[0], RESTORE)).status).toBe(409);
  });
});

describe('lite backend (§4)', () => {
  it('serves cipher, recover, restore and verify; everything else is 400', async () => {
    const f = await fixture({ backend: 'lite' });
    expect((await f.post('/v1/store/secrets?action=list', {})).text).toBe(
      '{"keys":null,"err":"api_bad_request"}',
    );
    expect((await f.post('/v1/acl/policy?action=list', {})).status).toBe(400);
    expect((await f.post('/v1/cipher/encrypt', { plaintext: 'aGk=' }, LITE)).status).toBe(200);
    expect((await f.post('/v1/operator/recover', {}, RECOVER)).status).toBe(500);
  });
});

describe('audit (§12)', () => {
  it('writes exactly one line per request, with the §12 shape', async () => {
    const f = await fixture();
    const requests: [string, unknown, string][] = [
      ['/v1/store/secrets', { path: 'app/a', values: { k: 'v' } }, SUPERUSER],
      ['/v1/store/secrets?action=get', { path: 'app/a' }, SUPERUSER],
      ['/v1/store/secrets?action=get', { path: 'nope' }, SUPERUSER],
      ['/v1/store/secrets?action=get', '{', SUPERUSER],
      ['/nope', {}, SUPERUSER],
      ['/v1/acl/policy?action=get', { id: 'x' }, APP],
    ];
    for (const [path, body, peer] of requests) await f.post(path, body, peer);
    await f.send('/v1/store/secrets', { method: 'GET' });
    expect(f.audit.length).toBe(requests.length + 1);
    const lines = f.audit.map((l) => JSON.parse(l));
    expect(Object.keys(lines[0])).toEqual([
      'time',
      'component',
      'trail',
      'caller',
      'route',
      'action',
      'resource',
      'outcome',
      'status',
      'duration_ms',
    ]);
    expect(lines[0]).toMatchObject({
      caller: SUPERUSER,
      route: '/v1/store/secrets',
      action: 'create',
      resource: 'app/a',
      outcome: 'allowed',
      status: 200,
    });
    expect(lines[0].time).toMatch(RFC3339);
    expect(lines[0].trail).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof lines[0].duration_ms).toBe('number');
    expect(lines[2]).toMatchObject({
      action: 'read',
      resource: 'nope',
      outcome: 'error',
      status: 404,
      err: 'api_not_found',
    });
    expect(lines[3]).toMatchObject({ outcome: 'error', status: 400, err: 'api_bad_request' });
    expect(lines[4]).toMatchObject({ route: '/nope', action: 'unknown', status: 400 });
    expect(lines[5]).toMatchObject({ caller: APP, action: 'read', outcome: 'denied', status: 401 });
    expect(lines[6]).toMatchObject({ caller: '', status: 400 });
    expect(new Set(lines.map((l) => l.trail)).size).toBe(lines.length);
  });
});

describe('decodeGoJson (src/core/http/go-json.ts)', () => {
  const schema = {
    path: 'string',
    version: 'int',
    values: 'stringMap',
    versions: 'intSlice',
    b: 'bytes',
  } as const;

  it('null leaves scalars alone and resets maps, slices and bytes', () => {
    expect(
      decodeGoJson('{"path":"a","path":null,"values":{"k":"v"},"values":null,"b":null}', schema),
    ).toEqual({
      path: 'a',
      version: 0,
      values: null,
      versions: null,
      b: null,
    });
  });

  it('merges a repeated map field and maps null values to ""', () => {
    const r = decodeGoJson('{"values":{"a":"1","b":"2"},"VALUES":{"b":"3","c":null}}', schema);
    expect(r.values).toEqual({ a: '1', b: '3', c: '' });
  });

  it('decodes escapes; lone surrogates become U+FFFD; control characters are refused', () => {
    expect(decodeGoJson('{"path":"a\\u00e9\\ud83d\\ude00\\n\\/"}', schema).path).toBe('aé😀\n/');
    expect(decodeGoJson('{"path":"\\ud800x\\udc00"}', schema).path).toBe('\uFFFDx\uFFFD');
    expect(() => decodeGoJson('{"path":"a\u0001"}', schema)).toThrow();
    expect(() => decodeGoJson('{"path":"\\x41"}', schema)).toThrow();
  });

  it('bytes: base64 ignoring CR/LF, or an array of 0..255', () => {
    expect(decodeGoJson('{"b":"aG\\r\\nk="}', schema).b).toEqual(utf8.encode('hi'));
    expect(decodeGoJson('{"b":[104,105,null]}', schema).b).toEqual(Uint8Array.of(104, 105, 0));
    expect(() => decodeGoJson('{"b":[256]}', schema)).toThrow();
    expect(() => decodeGoJson('{"b":"aGk"}', schema)).toThrow();
  });

  it('integers: int64 range, no fraction or exponent; -0 is 0', () => {
    expect(decodeGoJson('{"version":-0}', schema).version).toBe(0);
    expect(decodeGoJson('{"version":9223372036854775807}', schema).version).toBeGreaterThan(
      2 ** 62,
    );
    expect(() => decodeGoJson('{"version":9223372036854775808}', schema)).toThrow();
    expect(() => decodeGoJson('{"version":1.0}', schema)).toThrow();
    expect(() => decodeGoJson('{"version":01}', schema)).toThrow();
    expect(decodeGoJson('{"versions":[1,null,-2]}', schema).versions).toEqual([1, 0, -2]);
  });

  it('refuses nesting deeper than 10000 and accepts it up to that', () => {
    const ok = `{"x":${'['.repeat(9999)}${']'.repeat(9999)}}`;
    expect(decodeGoJson(ok, schema).path).toBe('');
    const deep = `{"x":${'['.repeat(10000)}${']'.repeat(10000)}}`;
    expect(() => decodeGoJson(deep, schema)).toThrow();
  });
});
