/**
 * The SPIKE v1 wire contract over real mTLS sockets (docs/spike-api.md §3, §4, §8, §9, §12):
 * every Nexus route, driven by real clients with SVIDs from the development issuer, checking
 * status codes, `err` codes, JSON field names (byte for byte) and headers. HTTP/2 through our own
 * client, and HTTP/1.1 with one connection per call, the way upstream's Go SDK talks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import https from 'node:https';
import { fromBase64, toBase64, toHex } from '../src/core/bytes.ts';
import { encryptCipherParts } from '../src/core/crypto/cipher.ts';
import { deriveKeys, generateRootKey } from '../src/core/crypto/keys.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { tlsMaterialOf } from '../src/runtime/tls/material.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';

const TD = 'spike.ist';
const STRANGER = `spiffe://${TD}/app/stranger`;
const READER = `spiffe://${TD}/app/reader`;
const LITE = `spiffe://${TD}/spike/workload/role/lite`;
const BOOTSTRAP = `spiffe://${TD}/spike/bootstrap`;

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store, no-cache, must-revalidate, private',
  pragma: 'no-cache',
  expires: '0',
};
const ZERO_TIME = '0001-01-01T00:00:00Z';
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

let nexus: NexusHarness;
const rootKey = generateRootKey();
const sources: X509Source[] = [];
const clients = new Map<string, MtlsClient>();

async function as(role: string): Promise<MtlsClient> {
  const existing = clients.get(role);
  if (existing) return existing;
  const source = createX509Source({ address: nexus.issuer.addressFor(role) });
  await source.ready();
  sources.push(source);
  const client = createMtlsClient({ source, authorizer: authorizeAny(), baseUrl: nexus.url });
  clients.set(role, client);
  return client;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: unknown;
}

async function call(role: string, path: string, body: unknown, method = 'POST'): Promise<Reply> {
  const client = await as(role);
  const res = await client.request(path, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(method === 'POST' ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = new TextDecoder().decode(res.body);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function expectJsonHeaders(reply: Reply) {
  for (const [name, value] of Object.entries(JSON_HEADERS)) expect(reply.headers[name]).toBe(value);
}

beforeAll(async () => {
  nexus = await startNexusHarness({
    backend: 'sqlite',
    rootKey,
    extraWorkloads: {
      stranger: STRANGER,
      reader: READER,
      lite: LITE,
      bootstrap: BOOTSTRAP,
    },
  });
});

afterAll(async () => {
  for (const c of clients.values()) await c.close();
  for (const s of sources) await s.close();
  await nexus.stop();
});

describe('secrets over mTLS (§4, §6)', () => {
  it('put, get, versions, metadata with exact field names', async () => {
    const put = await call('pilot', '/v1/store/secrets', {
      path: 'tenants/acme/db/creds',
      values: { username: 'admin', password: 'one' },
    });
    expect(put.status).toBe(200);
    expect(put.text).toBe('{}');
    expectJsonHeaders(put);
    await call('pilot', '/v1/store/secrets', {
      path: 'tenants/acme/db/creds',
      values: { username: 'admin', password: 'two' },
    });

    const get = await call('pilot', '/v1/store/secrets?action=get', {
      path: 'tenants/acme/db/creds',
    });
    expect(get.status).toBe(200);
    expect(get.json).toEqual({ data: { username: 'admin', password: 'two' }, version: 2 });
    const v1 = await call('pilot', '/v1/store/secrets?action=get', {
      path: 'tenants/acme/db/creds',
      version: 1,
    });
    expect(v1.json).toEqual({ data: { username: 'admin', password: 'one' }, version: 1 });

    const meta = await call('pilot', '/v1/store/secrets/metadata?action=get', {
      path: 'tenants/acme/db/creds',
    });
    expect(meta.status).toBe(200);
    const m = meta.json as {
      versions: Record<string, Record<string, unknown>>;
      metadata: Record<string, unknown>;
    };
    expect(Object.keys(m).sort()).toEqual(['metadata', 'versions']);
    expect(Object.keys(m.metadata).sort()).toEqual([
      'createdTime',
      'currentVersion',
      'maxVersions',
      'oldestVersion',
      'updatedTime',
    ]);
    expect(m.metadata.currentVersion).toBe(2);
    expect(m.metadata.oldestVersion).toBe(1);
    expect(m.metadata.maxVersions).toBe(10);
    expect(String(m.metadata.createdTime)).toMatch(RFC3339);
    expect(Object.keys(m.versions).sort()).toEqual(['1', '2']);
    expect(Object.keys(m.versions['1']!).sort()).toEqual(['createdTime', 'deletedTime', 'version']);
    expect(m.versions['1']!.deletedTime).toBeNull();
    expect(m.versions['2']!.version).toBe(2);
  });

  it('delete, undelete, destroy, purge and list', async () => {
    const path = 'wire/lifecycle';
    for (const v of ['a', 'b', 'c']) {
      expect((await call('pilot', '/v1/store/secrets', { path, values: { v } })).status).toBe(200);
    }
    const del = await call('pilot', '/v1/store/secrets?action=delete', { path, versions: [3] });
    expect([del.status, del.text]).toEqual([200, '{}']);
    // Deleting the current version makes the previous live one current (§6).
    const cur = await call('pilot', '/v1/store/secrets?action=get', { path });
    expect(cur.json).toEqual({ data: { v: 'b' }, version: 2 });
    const gone = await call('pilot', '/v1/store/secrets?action=get', { path, version: 3 });
    expect([gone.status, gone.json]).toEqual([404, { data: null, err: 'api_not_found' }]);
    const und = await call('pilot', '/v1/store/secrets?action=undelete', { path, versions: [3] });
    expect([und.status, und.text]).toEqual([200, '{}']);
    const destroy = await call('pilot', '/v1/store/secrets?action=destroy', {
      path,
      versions: [1],
    });
    expect([destroy.status, destroy.text]).toEqual([200, '{}']);
    const v1 = await call('pilot', '/v1/store/secrets?action=get', { path, version: 1 });
    expect(v1.status).toBe(404);
    const undestroy = await call('pilot', '/v1/store/secrets?action=undelete', {
      path,
      versions: [1],
    });
    expect([undestroy.status, undestroy.json]).toEqual([404, { err: 'api_not_found' }]);

    const list = await call('pilot', '/v1/store/secrets?action=list', {});
    expect(list.status).toBe(200);
    expect((list.json as { keys: string[] }).keys).toContain(path);

    const purge = await call('pilot', '/v1/store/secrets?action=purge', { path });
    expect([purge.status, purge.text]).toEqual([200, '{}']);
    const after = await call('pilot', '/v1/store/secrets?action=list', {});
    expect((after.json as { keys: string[] }).keys).not.toContain(path);
    const metaGone = await call('pilot', '/v1/store/secrets/metadata?action=get', { path });
    expect(metaGone.status).toBe(404);
    expect(metaGone.json).toEqual({
      metadata: {
        currentVersion: 0,
        oldestVersion: 0,
        createdTime: ZERO_TIME,
        updatedTime: ZERO_TIME,
        maxVersions: 0,
      },
      err: 'api_not_found',
    });
    // A put after purge starts again at version 1.
    await call('pilot', '/v1/store/secrets', { path, values: { v: 'again' } });
    const meta = await call('pilot', '/v1/store/secrets/metadata?action=get', { path });
    expect((meta.json as { metadata: { currentVersion: number } }).metadata.currentVersion).toBe(1);
  });
});

describe('policies over mTLS (§4, §7)', () => {
  it('put, get (spiffiedPattern), list, delete; 404 and 400 as we define them', async () => {
    const put = await call('pilot', '/v1/acl/policy', {
      name: 'acme-reader',
      spiffeidPattern: `^spiffe://spike\\.ist/app/reader$`,
      pathPattern: '^tenants/acme/.*$',
      permissions: ['read'],
    });
    expect([put.status, put.text]).toEqual([200, '{}']);
    const get = await call('pilot', '/v1/acl/policy?action=get', { id: 'acme-reader' });
    expect(get.status).toBe(200);
    const p = get.json as Record<string, unknown>;
    expect(Object.keys(p).sort()).toEqual([
      'createdAt',
      'id',
      'name',
      'pathPattern',
      'permissions',
      'spiffiedPattern',
      'updatedAt',
    ]);
    expect(p.id).toBe('');
    expect(p.spiffiedPattern).toBe(`^spiffe://spike\\.ist/app/reader$`);
    expect(p.permissions).toEqual(['read']);
    const list = await call('pilot', '/v1/acl/policy?action=list', {});
    expect(list.json).toEqual({ policies: [{ id: '', name: 'acme-reader' }] });
    const filtered = await call('pilot', '/v1/acl/policy?action=list', {
      pathPattern: 'nope',
    });
    expect(filtered.json).toEqual({ policies: [] });

    // The reader may now read, but not write.
    const read = await call('reader', '/v1/store/secrets?action=get', {
      path: 'tenants/acme/db/creds',
    });
    expect(read.status).toBe(200);
    const write = await call('reader', '/v1/store/secrets', {
      path: 'tenants/acme/db/creds',
      values: { x: 'y' },
    });
    expect([write.status, write.json]).toEqual([401, { err: 'access_unauthorized' }]);

    const missing = await call('pilot', '/v1/acl/policy?action=get', { id: 'nope' });
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({
      id: '',
      name: '',
      spiffiedPattern: '',
      pathPattern: '',
      permissions: null,
      createdAt: ZERO_TIME,
      updatedAt: ZERO_TIME,
      err: 'api_not_found',
    });
    const badPattern = await call('pilot', '/v1/acl/policy', {
      name: 'bad',
      spiffeidPattern: '^spiffe://spike\\.ist/(a$',
      pathPattern: '^x$',
      permissions: ['read'],
    });
    expect([badPattern.status, badPattern.json]).toEqual([400, { err: 'api_bad_request' }]);

    const del = await call('pilot', '/v1/acl/policy?action=delete', { id: 'acme-reader' });
    expect([del.status, del.text]).toEqual([200, '{}']);
    const delAgain = await call('pilot', '/v1/acl/policy?action=delete', { id: 'acme-reader' });
    expect([delAgain.status, delAgain.json]).toEqual([404, { err: 'api_not_found' }]);
    const denied = await call('reader', '/v1/store/secrets?action=get', {
      path: 'tenants/acme/db/creds',
    });
    expect([denied.status, denied.json]).toEqual([401, { data: null, err: 'access_unauthorized' }]);
  });

  it('a peer no policy allows is refused, and its audit line names it', async () => {
    const before = nexus.audit.length;
    const list = await call('stranger', '/v1/store/secrets?action=list', {});
    expect([list.status, list.json]).toEqual([401, { keys: null, err: 'access_unauthorized' }]);
    const line = JSON.parse(nexus.audit.slice(before).at(-1)!);
    expect(line).toMatchObject({
      caller: STRANGER,
      route: '/v1/store/secrets?action=list',
      outcome: 'denied',
      status: 401,
      err: 'access_unauthorized',
    });
  });
});

describe('cipher over mTLS (§8)', () => {
  it('JSON and stream modes round-trip; a lite workload may use them; tampering fails', async () => {
    const plaintext = new TextEncoder().encode('attack at dawn');
    const enc = await call('lite', '/v1/cipher/encrypt', { plaintext: toBase64(plaintext) });
    expect(enc.status).toBe(200);
    const e = enc.json as { version: number; nonce: string; ciphertext: string };
    expect(Object.keys(e).sort()).toEqual(['ciphertext', 'nonce', 'version']);
    expect(e.version).toBe(1);
    expect(fromBase64(e.nonce)).toHaveLength(12);
    const dec = await call('lite', '/v1/cipher/decrypt', { ...e });
    expect(dec.json).toEqual({ plaintext: toBase64(plaintext) });

    const lite = await as('lite');
    const streamed = await lite.request('/v1/cipher/encrypt', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: plaintext,
    });
    expect(streamed.status).toBe(200);
    expect(streamed.headers['content-type']).toBe('application/octet-stream');
    expect(streamed.body[0]).toBe(1);
    expect(streamed.body.length).toBe(1 + 12 + plaintext.length + 16);
    const back = await lite.request('/v1/cipher/decrypt', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: streamed.body,
    });
    expect(new TextDecoder().decode(back.body)).toBe('attack at dawn');
    const tampered = streamed.body.slice();
    tampered[tampered.length - 1]! ^= 1;
    const bad = await lite.request('/v1/cipher/decrypt', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: tampered,
    });
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(new TextDecoder().decode(bad.body)).toBe('decryption failed\n');
    const wrongVersion = await lite.request('/v1/cipher/decrypt', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([3, ...streamed.body.subarray(1)]),
    });
    expect(new TextDecoder().decode(wrongVersion.body)).toBe('crypto_unsupported_version\n');

    // A lite workload may not touch secrets, even the superuser's.
    const denied = await call('lite', '/v1/store/secrets?action=list', {});
    expect(denied.status).toBe(401);
    // JSON tag failure is a 500, as upstream.
    const tag = await call('lite', '/v1/cipher/decrypt', {
      ...e,
      ciphertext: toBase64(new Uint8Array(fromBase64(e.ciphertext).map((b) => b ^ 1))),
    });
    expect([tag.status, tag.json]).toEqual([500, { plaintext: null, err: 'api_internal_error' }]);
  });
});

describe('operator, bootstrap, health and envelope rules over mTLS', () => {
  it('bootstrap verify proves possession of the bootstrap-verify key', async () => {
    const keys = await deriveKeys(rootKey);
    const secret = new TextEncoder().encode(toHex(crypto.getRandomValues(new Uint8Array(32))));
    const { nonce, ciphertext } = await encryptCipherParts(keys.bootstrapVerify, secret);
    const ok = await call('bootstrap', '/v1/bootstrap/verify', {
      nonce: toBase64(nonce),
      ciphertext: toBase64(ciphertext),
    });
    expect(ok.status).toBe(200);
    const hash = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', secret)));
    expect(ok.json).toEqual({ hash });
    const notBootstrap = await call('pilot', '/v1/bootstrap/verify', {
      nonce: toBase64(nonce),
      ciphertext: toBase64(ciphertext),
    });
    expect([notBootstrap.status, notBootstrap.json]).toEqual([
      401,
      { hash: '', err: 'access_unauthorized' },
    ]);
  });

  it('recover and restore keep to their roles; restore answers 409 while a key is held', async () => {
    const superuser = await call('pilot', '/v1/operator/recover', {});
    expect([superuser.status, superuser.json]).toEqual([
      401,
      { shards: null, err: 'access_unauthorized' },
    ]);
    const restore = await call('restore', '/v1/operator/restore', {
      version: 1,
      index: 1,
      generation: '0'.repeat(32),
      kcv: '0'.repeat(32),
      shard: '11'.repeat(33),
    });
    expect([restore.status, restore.json]).toEqual([
      409,
      { collected: 0, remaining: 0, restored: false, err: 'state_already_initialized' },
    ]);
  });

  it('routing and envelope errors (§3): method, route, action, JSON, body cap', async () => {
    const get = await call('pilot', '/v1/store/secrets', undefined, 'GET');
    expect([get.status, get.json]).toEqual([400, { err: 'api_bad_request' }]);
    const unknown = await call('pilot', '/v1/store/nothing', {});
    expect([unknown.status, unknown.json]).toEqual([400, { err: 'api_bad_request' }]);
    const action = await call('pilot', '/v1/store/secrets?action=explode', {});
    expect(action.status).toBe(400);
    const slash = await call('pilot', '/v1/store/secrets/', { path: 'a', values: {} });
    expect(slash.status).toBe(400);
    const badJson = await call('pilot', '/v1/store/secrets?action=get', '{"path":');
    expect([badJson.status, badJson.json]).toEqual([400, { data: null, err: 'api_bad_request' }]);
    const wrongType = await call('pilot', '/v1/store/secrets?action=get', { path: 7 });
    expect(wrongType.status).toBe(400);
    const huge = await call('pilot', '/v1/store/secrets', {
      path: 'big',
      values: { v: 'x'.repeat(2 * 1024 * 1024) },
    });
    expect([huge.status, huge.json]).toEqual([400, { err: 'api_bad_request' }]);
    expect(huge.text).not.toContain('xxxx');
    const health = await call('stranger', '/health', undefined, 'GET');
    expect([health.status, health.json]).toEqual([200, { status: 'ok' }]);
    const ready = await call('stranger', '/ready', undefined, 'GET');
    expect([ready.status, ready.json]).toEqual([200, { status: 'ready' }]);
  });

  it('HTTP/1.1, one connection per call (how the Go SDK talks), gets the same answers', async () => {
    const source = createX509Source({ address: nexus.issuer.addressFor('pilot') });
    sources.push(source);
    const material = tlsMaterialOf(await source.ready());
    const post = (path: string, body: string) =>
      new Promise<{ status: number; body: string; type: string | undefined }>((resolve, reject) => {
        const req = https.request(
          `${nexus.url}${path}`,
          {
            method: 'POST',
            ...material,
            agent: false,
            // The server's SPIFFE checks are the HTTP/2 client's job in these tests.
            checkServerIdentity: () => undefined,
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              text += c;
            });
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: text,
                type: res.headers['content-type'],
              }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const put = await post(
      '/v1/store/secrets',
      JSON.stringify({ path: 'h1/x', values: { k: 'v' } }),
    );
    expect([put.status, put.body, put.type]).toEqual([200, '{}', 'application/json']);
    // Go encoding/json semantics: keys match case-insensitively.
    const get = await post('/v1/store/secrets?action=get', '{"PATH":"h1/x"}');
    expect([get.status, JSON.parse(get.body)]).toEqual([200, { data: { k: 'v' }, version: 1 }]);
    const missing = await post('/v1/store/secrets?action=get', '{"path":"h1/none"}');
    expect([missing.status, JSON.parse(missing.body)]).toEqual([
      404,
      { data: null, err: 'api_not_found' },
    ]);
  });
});
