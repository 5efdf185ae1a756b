/**
 * Requests mean exactly what they say (issue 11 finding 5), over real mTLS: a mis-cased or
 * unknown `action` is a 400, never a write; secret paths with empty, `.` or `..` segments or a
 * leading or trailing `/` are refused with a message naming the rule, and nothing is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { secretPathRule } from '../src/api/v1/routes.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';

let nexus: NexusHarness;
let source: X509Source;
let client: MtlsClient;

async function post(path: string, body: unknown) {
  const res = await client.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    json: JSON.parse(new TextDecoder().decode(res.body)) as unknown,
    reason: res.headers['spike-error-reason'],
  };
}

async function keys(): Promise<unknown> {
  return (await post('/v1/store/secrets?action=list', {})).json;
}

beforeAll(async () => {
  nexus = await startNexusHarness({ backend: 'memory' });
  source = createX509Source({ address: nexus.issuer.addressFor('pilot') });
  await source.ready();
  client = createMtlsClient({ source, authorizer: authorizeAny(), baseUrl: nexus.url });
  expect((await post('/v1/store/secrets', { path: 'app/db', values: { k: 'v' } })).status).toBe(
    200,
  );
});

afterAll(async () => {
  await client.close();
  await source.close();
  await nexus.stop();
});

describe('action', () => {
  it('a mis-cased action key is a 400, not a put', async () => {
    const before = await keys();
    for (const query of ['?ACTION=get', '?Action=get', '?action=get&ACTION=list', '?aCtIoN=']) {
      const reply = await post(`/v1/store/secrets${query}`, { path: 'app/new', values: {} });
      expect({ query, status: reply.status, json: reply.json }).toEqual({
        query,
        status: 400,
        json: { err: 'api_bad_request' },
      });
      expect(reply.reason).toContain('"action"');
    }
    expect(await keys()).toEqual(before);
  });

  it('an unknown or mis-cased action value is a 400', async () => {
    for (const action of ['GET', 'Get', 'fetch', 'get ', 'put']) {
      const reply = await post(`/v1/store/secrets?action=${encodeURIComponent(action)}`, {
        path: 'app/db',
      });
      expect({ action, status: reply.status }).toEqual({ action, status: 400 });
    }
    expect((await post('/v1/store/secrets?action=get', { path: 'app/db' })).status).toBe(200);
  });
});

describe('secret paths', () => {
  const bad = ['/app/db', 'app/db/', 'app//db', './app', 'app/./db', 'app/../db', '..', '/'];

  it('with empty, "." or ".." segments or an edge "/" are refused, for writes and reads', async () => {
    const before = await keys();
    for (const path of bad) {
      const put = await post('/v1/store/secrets', { path, values: { k: 'v' } });
      expect({ path, status: put.status, json: put.json }).toEqual({
        path,
        status: 400,
        json: { err: 'api_bad_request' },
      });
      expect({ path, reason: put.reason }).toEqual({ path, reason: secretPathRule(path) });
      const get = await post('/v1/store/secrets?action=get', { path });
      expect({ path, status: get.status }).toEqual({ path, status: 400 });
    }
    expect(await keys()).toEqual(before);
    // Dots inside a name are fine.
    expect((await post('/v1/store/secrets', { path: 'app/.env.d/x..y', values: {} })).status).toBe(
      200,
    );
  });

  it('other 400s name their rule too; 401 and 404 say nothing more than their code', async () => {
    const regex = await post('/v1/acl/policy', {
      name: 'p',
      spiffeidPattern: '^spiffe://spike\\.ist/(x$',
      pathPattern: '^app/.*$',
      permissions: ['read'],
    });
    expect([regex.status, regex.reason]).toEqual([
      400,
      'invalid spiffeidPattern: not a valid RE2 expression',
    ]);
    const big = await post('/v1/cipher/encrypt', { plaintext: btoa('x'.repeat(70_000)) });
    expect([big.status, big.reason]).toEqual([400, 'plaintext over 65536 bytes']);
    const missing = await post('/v1/store/secrets?action=get', { path: 'app/none' });
    expect([missing.status, missing.reason]).toEqual([404, undefined]);
  });

  it('name the broken rule (what the server logs and reports)', () => {
    expect(secretPathRule('/a')).toContain('start or end');
    expect(secretPathRule('a/')).toContain('start or end');
    expect(secretPathRule('a//b')).toContain('empty segment');
    expect(secretPathRule('a/../b')).toContain('".."');
    expect(secretPathRule('a/.b/c')).toBeUndefined();
  });
});
