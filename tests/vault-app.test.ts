/**
 * The Vault KV v2 handler in process (src/nexus/vault, docs/vault-kv2.md §2–§6): every endpoint, the
 * envelope and byte-exact Content-Type, the error tables, authorisation with SPIKE policies,
 * sealed answers, audit lines and the SPIKE↔Vault mapping of §4.1.
 */
import { afterEach, beforeEach, describe, expect, it } from 'bun:test';
import { createTestbed, LITE, PILOT, type Testbed, WORKLOAD } from './support/vault-testbed.ts';

let tb: Testbed;
beforeEach(async () => {
  tb = await createTestbed();
});
afterEach(async () => {
  await tb.close();
});

const ENVELOPE_KEYS = [
  'request_id',
  'lease_id',
  'renewable',
  'lease_duration',
  'data',
  'wrap_info',
  'warnings',
  'auth',
];

async function policy(name: string, pathPattern: string, permissions: string[]) {
  const r = await tb.spike('/v1/acl/policy', {
    name,
    spiffeidPattern: `^${WORKLOAD}$`,
    pathPattern,
    permissions,
  });
  expect(r.status).toBe(200);
}

describe('data', () => {
  it('write, read, read version, envelope and Content-Type', async () => {
    const w = await tb.vault('POST', '/v1/secret/data/app/db', {
      body: { data: { user: 'u', n: 1 } },
    });
    expect(w.status).toBe(200);
    expect(w.type).toBe('application/json');
    expect(Object.keys(w.json)).toEqual(ENVELOPE_KEYS);
    expect(w.json.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(w.json.data).toEqual({
      created_time: '2026-01-01T00:00:00.000Z',
      custom_metadata: null,
      deletion_time: '',
      destroyed: false,
      version: 1,
    });
    await tb.vault('PUT', '/v1/secret/data/app/db', { body: { data: { user: 'v' } } });
    const r = await tb.vault('GET', '/v1/secret/data/app/db');
    expect(r.status).toBe(200);
    expect(r.json.data.data).toEqual({ user: 'v' });
    expect(r.json.data.metadata.version).toBe(2);
    const v1 = await tb.vault('GET', '/v1/secret/data/app/db?version=1');
    expect(v1.json.data.data).toEqual({ user: 'u', n: 1 });
    const none = await tb.vault('GET', '/v1/secret/data/app/db?version=9');
    expect([none.status, none.text]).toEqual([404, '{"errors":[]}']);
    const missing = await tb.vault('GET', '/v1/secret/data/nope');
    expect([missing.status, missing.text, missing.type]).toEqual([
      404,
      '{"errors":[]}',
      'application/json',
    ]);
    expect((await tb.vault('GET', '/v1/secret/data/app/db?version=x')).status).toBe(400);
  });

  it('no data, CAS errors', async () => {
    expect((await tb.vault('POST', '/v1/secret/data/a', { body: {} })).json).toEqual({
      errors: ['no data provided'],
    });
    expect(
      (
        await tb.vault('POST', '/v1/secret/data/a', {
          body: { data: { a: 1 }, options: { cas: 0 } },
        })
      ).status,
    ).toBe(200);
    const mismatch = await tb.vault('POST', '/v1/secret/data/a', {
      body: { data: { a: 1 }, options: { cas: 0 } },
    });
    expect([mismatch.status, mismatch.json.errors]).toEqual([
      400,
      ['check-and-set parameter did not match the current version'],
    ]);
    const parse = await tb.vault('POST', '/v1/secret/data/a', {
      body: { data: {}, options: { cas: -1 } },
    });
    expect(parse.json.errors).toEqual(['error parsing check-and-set parameter']);
    expect(
      (await tb.vault('POST', '/v1/secret/config', { body: { cas_required: true } })).status,
    ).toBe(204);
    const req = await tb.vault('POST', '/v1/secret/data/a', { body: { data: {} } });
    expect(req.json.errors).toEqual(['check-and-set parameter required for this call']);
    expect(
      (
        await tb.vault('POST', '/v1/secret/data/a', {
          body: { data: { b: 2 }, options: { cas: 1 } },
        })
      ).json.data.version,
    ).toBe(2);
  });

  it('PATCH merge-patch, 415, 404s', async () => {
    const absent = await tb.vault('PATCH', '/v1/secret/data/p', { body: { data: { a: 1 } } });
    expect([absent.status, absent.text]).toEqual([404, '{"errors":[]}']);
    await tb.vault('POST', '/v1/secret/data/p', { body: { data: { a: '1', b: { c: 1 } } } });
    const p = await tb.vault('PATCH', '/v1/secret/data/p', {
      body: { data: { a: null, b: { d: 2 } } },
    });
    expect([p.status, p.json.data.version]).toEqual([200, 2]);
    expect((await tb.vault('GET', '/v1/secret/data/p')).json.data.data).toEqual({
      b: { c: 1, d: 2 },
    });
    const wrong = await tb.vault('PATCH', '/v1/secret/data/p', {
      body: { data: { a: 1 } },
      headers: { 'content-type': 'application/json' },
    });
    expect([wrong.status, wrong.json.errors]).toEqual([
      415,
      ['PATCH requires Content-Type of application/merge-patch+json, provided application/json'],
    ]);
    const withParam = await tb.vault('PATCH', '/v1/secret/data/p', {
      body: { data: { z: 1 } },
      headers: { 'content-type': 'application/merge-patch+json; charset=utf-8' },
    });
    expect(withParam.status).toBe(200);
    await tb.vault('DELETE', '/v1/secret/data/p');
    const gone = await tb.vault('PATCH', '/v1/secret/data/p', { body: { data: { a: 1 } } });
    expect(gone.status).toBe(404);
    expect(gone.json.data.data).toBeNull();
    expect(gone.json.data.metadata.version).toBe(3);
  });

  it('delete latest, deleted-version 404 with metadata, undelete, destroy', async () => {
    await tb.vault('POST', '/v1/secret/data/d', { body: { data: { a: 1 } } });
    await tb.vault('POST', '/v1/secret/data/d', { body: { data: { a: 2 } } });
    tb.now.ms += 1000;
    const del = await tb.vault('DELETE', '/v1/secret/data/d');
    expect([del.status, del.text, del.type]).toEqual([204, '', null]);
    expect((await tb.vault('DELETE', '/v1/secret/data/d')).status).toBe(204);
    expect((await tb.vault('DELETE', '/v1/secret/data/never')).status).toBe(204);
    const r = await tb.vault('GET', '/v1/secret/data/d');
    expect(r.status).toBe(404);
    expect(r.type).toBe('application/json');
    expect(Object.keys(r.json)).toEqual(ENVELOPE_KEYS);
    expect(r.json.data.data).toBeNull();
    expect(r.json.data.metadata.deletion_time).toBe('2026-01-01T00:00:01.000Z');
    // SPIKE sees the previous live version as current (§4.1).
    const s = await tb.spike('/v1/store/secrets?action=get', { path: 'd' });
    expect(s.json.data).toEqual({ a: '1' });
    expect((await tb.vault('POST', '/v1/secret/undelete/d', { body: {} })).json.errors).toEqual([
      'No version number provided',
    ]);
    expect(
      (await tb.vault('POST', '/v1/secret/undelete/d', { body: { versions: [2] } })).status,
    ).toBe(204);
    expect((await tb.vault('GET', '/v1/secret/data/d')).json.data.data).toEqual({ a: 2 });
    expect((await tb.vault('POST', '/v1/secret/delete/d', { body: {} })).json.errors).toEqual([
      'No version number provided',
    ]);
    expect(
      (await tb.vault('POST', '/v1/secret/delete/d', { body: { versions: [1, 7] } })).status,
    ).toBe(204);
    expect((await tb.vault('GET', '/v1/secret/data/d?version=1')).status).toBe(404);
    expect((await tb.vault('PUT', '/v1/secret/destroy/d', { body: {} })).json.errors).toEqual([
      'no version number provided',
    ]);
    expect(
      (await tb.vault('PUT', '/v1/secret/destroy/d', { body: { versions: [2] } })).status,
    ).toBe(204);
    const destroyed = await tb.vault('GET', '/v1/secret/data/d?version=2');
    expect([destroyed.status, destroyed.json.data.metadata.destroyed]).toEqual([404, true]);
    expect(
      (await tb.vault('POST', '/v1/secret/undelete/d', { body: { versions: '2' } })).status,
    ).toBe(204);
    expect(
      (await tb.vault('GET', '/v1/secret/data/d?version=2')).json.data.metadata.destroyed,
    ).toBe(true);
  });

  it('subkeys with depth', async () => {
    await tb.vault('POST', '/v1/secret/data/s', {
      body: { data: { a: 1, b: { c: { d: 1 } }, e: [1] } },
    });
    const all = await tb.vault('GET', '/v1/secret/subkeys/s');
    expect(all.json.data.subkeys).toEqual({ a: null, b: { c: { d: null } }, e: null });
    expect(all.json.data.metadata.version).toBe(1);
    const one = await tb.vault('GET', '/v1/secret/subkeys/s?depth=1');
    expect(one.json.data.subkeys).toEqual({ a: null, b: null, e: null });
    expect((await tb.vault('GET', '/v1/secret/subkeys/none')).status).toBe(404);
  });
});

describe('metadata, list, config', () => {
  it('metadata write/read/patch/delete with custom_metadata', async () => {
    expect((await tb.vault('GET', '/v1/secret/metadata/m')).text).toBe('{"errors":[]}');
    const w = await tb.vault('POST', '/v1/secret/metadata/m', {
      body: { max_versions: 5, delete_version_after: '1h', custom_metadata: { owner: 'me' } },
    });
    expect(w.status).toBe(204);
    await tb.vault('POST', '/v1/secret/data/m', { body: { data: { a: 1 } } });
    const r = await tb.vault('GET', '/v1/secret/metadata/m');
    expect(Object.keys(r.json.data)).toEqual([
      'cas_required',
      'created_time',
      'current_version',
      'custom_metadata',
      'delete_version_after',
      'max_versions',
      'oldest_version',
      'updated_time',
      'versions',
    ]);
    expect(r.json.data.delete_version_after).toBe('1h0m0s');
    expect(r.json.data.max_versions).toBe(5);
    expect(r.json.data.custom_metadata).toEqual({ owner: 'me' });
    expect(r.json.data.versions['1'].deletion_time).toBe('2026-01-01T01:00:00.000Z');
    // future deletion: still readable, custom_metadata in data reads
    const d = await tb.vault('GET', '/v1/secret/data/m');
    expect(d.json.data.metadata.custom_metadata).toEqual({ owner: 'me' });
    const p = await tb.vault('PATCH', '/v1/secret/metadata/m', {
      body: { custom_metadata: { owner: null, team: 't' } },
    });
    expect(p.status).toBe(204);
    expect((await tb.vault('GET', '/v1/secret/metadata/m')).json.data.custom_metadata).toEqual({
      team: 't',
    });
    expect(
      (await tb.vault('PATCH', '/v1/secret/metadata/zz', { body: { max_versions: 1 } })).status,
    ).toBe(404);
    const bad = await tb.vault('POST', '/v1/secret/metadata/m', {
      body: { custom_metadata: { k: '' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.errors[0]).toStartWith('custom_metadata validation failed: ');
    expect((await tb.vault('DELETE', '/v1/secret/metadata/m')).status).toBe(204);
    expect((await tb.vault('GET', '/v1/secret/data/m')).status).toBe(404);
    expect((await tb.spike('/v1/store/secrets?action=get', { path: 'm' })).status).toBe(404);
  });

  it('cas_required false under a mount that requires CAS warns (200 envelope)', async () => {
    await tb.vault('POST', '/v1/secret/config', { body: { cas_required: true } });
    const w = await tb.vault('POST', '/v1/secret/metadata/w', { body: { cas_required: false } });
    expect(w.status).toBe(200);
    expect(w.json.data).toBeNull();
    expect(w.json.warnings).toEqual([
      '"cas_required" set to false, but is mandated by backend config. This value will be ignored.',
    ]);
  });

  it('list by ?list=true, LIST and GET ?list=1; folders end in /', async () => {
    for (const p of ['foo', 'foo/bar', 'foo/baz/q', 'x']) {
      await tb.vault('POST', `/v1/secret/data/${p}`, { body: { data: { a: 1 } } });
    }
    expect((await tb.vault('GET', '/v1/secret/metadata/?list=true')).json.data.keys).toEqual([
      'foo',
      'foo/',
      'x',
    ]);
    expect((await tb.vault('GET', '/v1/secret/metadata?list=true')).json.data.keys).toEqual([
      'foo',
      'foo/',
      'x',
    ]);
    expect((await tb.vault('LIST', '/v1/secret/metadata/foo')).json.data.keys).toEqual([
      'bar',
      'baz/',
    ]);
    expect((await tb.vault('GET', '/v1/secret/metadata/foo/?list=1')).json.data.keys).toEqual([
      'bar',
      'baz/',
    ]);
    const empty = await tb.vault('GET', '/v1/secret/metadata/none/?list=true');
    expect([empty.status, empty.text]).toEqual([404, '{"errors":[]}']);
    const onData = await tb.vault('GET', '/v1/secret/data/foo?list=true');
    expect([onData.status, onData.json]).toEqual([405, { errors: ['unsupported operation'] }]);
    const badFlag = await tb.vault('GET', '/v1/secret/metadata/?list=yes');
    expect([badFlag.status, badFlag.text]).toEqual([400, '{"errors":[]}']);
    // list=false is a read
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/x?list=false')).json.data.current_version,
    ).toBe(1);
  });

  it('config read and write', async () => {
    const r = await tb.vault('GET', '/v1/secret/config');
    expect(r.json.data).toEqual({
      cas_required: false,
      delete_version_after: '0s',
      max_versions: 0,
    });
    expect(
      (
        await tb.vault('POST', '/v1/secret/config', {
          body: { max_versions: 2, delete_version_after: 90 },
        })
      ).status,
    ).toBe(204);
    expect((await tb.vault('GET', '/v1/secret/config')).json.data).toEqual({
      cas_required: false,
      delete_version_after: '1m30s',
      max_versions: 2,
    });
    for (let i = 0; i < 4; i++)
      await tb.vault('POST', '/v1/secret/data/c', { body: { data: { i } } });
    const m = await tb.vault('GET', '/v1/secret/metadata/c');
    expect(Object.keys(m.json.data.versions)).toEqual(['3', '4']);
    expect(m.json.data.oldest_version).toBe(3);
    const spike = await tb.spike('/v1/store/secrets/metadata?action=get', { path: 'c' });
    expect(spike.json.metadata.maxVersions).toBe(2);
  });
});

describe('paths and bad input', () => {
  it('root and invalid-path warnings', async () => {
    for (const p of ['/v1/secret/data', '/v1/secret/metadata/', '/v1/secret/destroy']) {
      const r = await tb.vault('GET', p);
      expect(r.status).toBe(404);
      expect(r.json.data).toBeNull();
      expect(r.json.warnings).toEqual([
        'Non-listing operations on the root of a K/V v2 mount are not supported.',
      ]);
    }
    const inv = await tb.vault('PUT', '/v1/secret/foo', { body: { a: 1 } });
    expect(inv.status).toBe(404);
    expect(inv.json.warnings[0]).toEndWith("use 'vault kv put' for this operation.");
    expect((await tb.vault('GET', '/v1/secret/foo/bar')).json.warnings[0]).toContain(
      "'vault kv get'",
    );
  });

  it('hostile paths, bad JSON, huge bodies, unknown methods: 4xx without echo', async () => {
    for (const p of [
      '/v1/secret/data/a%zz',
      '/v1/secret/data/a/',
      '/v1/secret/data/a%20b',
      '/v1/secret/data/%00',
    ]) {
      const r = await tb.vault('GET', p);
      expect([r.status, r.json]).toEqual([400, { errors: ['invalid secret path'] }]);
    }
    const badJson = await tb.vault('POST', '/v1/secret/data/a', { raw: '{"data":{"pw":"hunter2"' });
    expect([badJson.status, badJson.json]).toEqual([
      400,
      { errors: ['failed to parse JSON input'] },
    ]);
    const arr = await tb.vault('POST', '/v1/secret/data/a', { raw: '[1]' });
    expect(arr.status).toBe(400);
    const deep = await tb.vault('POST', '/v1/secret/data/a', {
      raw: `{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    });
    expect(deep.status).toBe(400);
    const wrongType = await tb.vault('POST', '/v1/secret/data/a', { body: { data: 'hunter2' } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.text).not.toContain('hunter2');
    const huge = await tb.vault('POST', '/v1/secret/data/a', {
      raw: `{"data":{"a":"${'x'.repeat(1024 * 1024)}"}}`,
    });
    expect(huge.status).toBe(413);
    const cm = await tb.vault('POST', '/v1/secret/metadata/a', {
      body: { custom_metadata: { k: 'hunter2\u0001' } },
    });
    expect(cm.status).toBe(400);
    expect(cm.text).not.toContain('hunter2');
    for (const m of ['HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO']) {
      const r = await tb.vault(m, '/v1/secret/data/a');
      expect(r.status).toBe(405);
      if (m !== 'HEAD') expect(r.text).toBe('{"errors":[]}');
    }
    expect((await tb.vault('GET', '/v1/secret/delete/a')).json).toEqual({
      errors: ['unsupported operation'],
    });
    expect(
      (
        await tb.vault('POST', '/v1/secret/data/a', {
          body: { data: {} },
          headers: { 'X-Vault-Wrap-TTL': '60s' },
        })
      ).json,
    ).toEqual({
      errors: ['response wrapping is not supported'],
    });
    expect(
      (await tb.vault('POST', '/v1/secret/metadata/a', { body: { max_versions: -1 } })).status,
    ).toBe(400);
    expect(
      (await tb.vault('POST', '/v1/secret/metadata/a', { body: { delete_version_after: 'soon' } }))
        .status,
    ).toBe(400);
    expect(
      (await tb.vault('POST', '/v1/secret/delete/a', { body: { versions: ['x'] } })).status,
    ).toBe(400);
    for (const line of tb.audit) {
      expect(line).not.toContain('hunter2');
      expect(JSON.parse(line).caller).toBe(PILOT);
    }
    expect(tb.audit.some((l) => JSON.parse(l).status === 413)).toBe(true);
  });
});

describe('authorisation, identity, system endpoints', () => {
  it('workload policies: read, write, list; 403 body; token headers ignored', async () => {
    await tb.vault('POST', '/v1/secret/data/app/x', { body: { data: { a: 1 } } });
    const denied = await tb.vault('GET', '/v1/secret/data/app/x', {
      peer: WORKLOAD,
      headers: { 'X-Vault-Token': 'root', Authorization: 'Bearer root' },
    });
    expect([denied.status, denied.text]).toEqual([403, '{"errors":["permission denied"]}']);
    await policy('reader', '^app/.*$', ['read']);
    expect((await tb.vault('GET', '/v1/secret/data/app/x', { peer: WORKLOAD })).status).toBe(200);
    expect((await tb.vault('GET', '/v1/secret/metadata/app/x', { peer: WORKLOAD })).status).toBe(
      200,
    );
    expect(
      (await tb.vault('POST', '/v1/secret/data/app/x', { peer: WORKLOAD, body: { data: {} } }))
        .status,
    ).toBe(403);
    expect((await tb.vault('DELETE', '/v1/secret/metadata/app/x', { peer: WORKLOAD })).status).toBe(
      403,
    );
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/app/?list=true', { peer: WORKLOAD })).status,
    ).toBe(403);
    expect((await tb.vault('GET', '/v1/secret/config', { peer: WORKLOAD })).status).toBe(403);
    await policy('writer', '^app/.*$', ['write', 'list']);
    expect(
      (
        await tb.vault('POST', '/v1/secret/data/app/x', {
          peer: WORKLOAD,
          body: { data: { b: 1 } },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await tb.vault('POST', '/v1/secret/destroy/app/x', {
          peer: WORKLOAD,
          body: { versions: [1] },
        })
      ).status,
    ).toBe(204);
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/app/?list=true', { peer: WORKLOAD })).json.data
        .keys,
    ).toEqual(['x']);
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/?list=true', { peer: WORKLOAD })).status,
    ).toBe(403);
    // A token never replaces the certificate.
    const noPeer = await tb.vault('GET', '/v1/secret/data/app/x', {
      peer: null,
      headers: { 'X-Vault-Token': 'root' },
    });
    expect(noPeer.status).toBe(403);
    expect((await tb.vault('GET', '/v1/secret/data/app/x', { peer: LITE })).status).toBe(403);
    const lines = tb.audit.map((l) => JSON.parse(l)).filter((l) => l.caller === WORKLOAD);
    expect(
      lines.some((l) => l.outcome === 'denied' && l.status === 403 && l.resource === 'app/x'),
    ).toBe(true);
  });

  it('list on spike/system/secret grants every list; super on it grants config', async () => {
    await tb.vault('POST', '/v1/secret/data/x/y', { body: { data: { a: 1 } } });
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/?list=true', { peer: WORKLOAD })).status,
    ).toBe(403);
    await policy('lister', '^spike/system/secret$', ['list']);
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/?list=true', { peer: WORKLOAD })).json.data.keys,
    ).toEqual(['x/']);
    expect(
      (await tb.vault('GET', '/v1/secret/metadata/x?list=true', { peer: WORKLOAD })).json.data.keys,
    ).toEqual(['y']);
    expect((await tb.vault('GET', '/v1/secret/data/x/y', { peer: WORKLOAD })).status).toBe(403);
    expect((await tb.vault('GET', '/v1/secret/config', { peer: WORKLOAD })).status).toBe(403);
    await policy('configurer', '^spike/system/secret$', ['super']);
    expect((await tb.vault('GET', '/v1/secret/config', { peer: WORKLOAD })).status).toBe(200);
  });

  it('lookup-self, cert login, ui mounts, health, seal-status', async () => {
    const me = await tb.vault('GET', '/v1/auth/token/lookup-self', {
      peer: WORKLOAD,
      headers: { 'X-Vault-Token': 'tok-123' },
    });
    expect(me.status).toBe(200);
    expect(me.json.data.display_name).toBe(WORKLOAD);
    expect(me.json.data.type).toBe('service');
    expect(me.text).not.toContain('tok-123');
    const login = await tb.vault('POST', '/v1/auth/cert/login', {
      peer: WORKLOAD,
      body: { name: 'x' },
    });
    expect(login.json.auth.client_token).toBeString();
    expect(login.json.auth.policies).toEqual(['default']);
    const ui = await tb.vault('GET', '/v1/sys/internal/ui/mounts/secret/foo');
    expect(ui.json.data).toMatchObject({ path: 'secret/', type: 'kv', options: { version: '2' } });
    expect((await tb.vault('GET', '/v1/sys/internal/ui/mounts/other/foo')).status).toBe(404);
    const h = await tb.vault('GET', '/v1/sys/health?standbyok=true');
    expect(h.status).toBe(200);
    expect(Object.keys(h.json)).toEqual([
      'initialized',
      'sealed',
      'standby',
      'performance_standby',
      'server_time_utc',
      'version',
    ]);
    expect((await tb.vault('GET', '/v1/sys/seal-status')).json.sealed).toBe(false);
    expect((await tb.vault('GET', '/v1/sys/health?activecode=299')).status).toBe(299);
    expect((await tb.vault('GET', '/v1/sys/unknown')).text).toBe('{"errors":[]}');
  });

  it('sealed: 503 everywhere but health and seal-status; 501 before the first key', async () => {
    const sealed = await createTestbed({ sealed: true });
    try {
      const h = await sealed.vault('GET', '/v1/sys/health');
      expect([h.status, h.json.initialized, h.json.sealed]).toEqual([501, false, true]);
      sealed.store.setKcv('0'.repeat(32));
      expect((await sealed.vault('GET', '/v1/sys/health')).status).toBe(503);
      // the Go client's flags (sealedcode=299) make a sealed answer a success
      expect(
        (await sealed.vault('GET', '/v1/sys/health?sealedcode=299&uninitcode=299')).status,
      ).toBe(299);
      expect((await sealed.vault('GET', '/v1/sys/seal-status')).json.sealed).toBe(true);
      for (const [m, p] of [
        ['GET', '/v1/secret/data/a'],
        ['GET', '/v1/auth/token/lookup-self'],
        ['POST', '/v1/secret/config'],
      ] as const) {
        const r = await sealed.vault(m, p);
        expect([r.status, r.text]).toEqual([503, '{"errors":["Vault is sealed"]}']);
      }
    } finally {
      await sealed.close();
    }
  });

  it('another mount name (SPIKE_NEXUS_VAULT_MOUNT)', async () => {
    const kv = await createTestbed({ mount: 'kv' });
    try {
      expect(kv.app.matches('/v1/kv/data/a')).toBe(true);
      expect(kv.app.matches('/v1/secret/data/a')).toBe(false);
      expect(kv.app.matches('/v1/store/secrets')).toBe(false);
      expect((await kv.vault('POST', '/v1/kv/data/a', { body: { data: { a: 1 } } })).status).toBe(
        200,
      );
      const ui = await kv.vault('GET', '/v1/sys/internal/ui/mounts/kv/a');
      expect(ui.json.data.path).toBe('kv/');
      expect((await kv.vault('GET', '/v1/sys/internal/ui/mounts/secret/a')).status).toBe(404);
    } finally {
      await kv.close();
    }
  });

  it('SPIKE writes are Vault reads and back (§4.1)', async () => {
    await tb.spike('/v1/store/secrets', { path: 'shared/a', values: { k: 'v1' } });
    const r = await tb.vault('GET', '/v1/secret/data/shared/a');
    expect(r.json.data.data).toEqual({ k: 'v1' });
    await tb.vault('POST', '/v1/secret/data/shared/a', { body: { data: { k: 'v2', n: 3 } } });
    const s = await tb.spike('/v1/store/secrets?action=get', { path: 'shared/a' });
    expect(s.json.data).toEqual({ k: 'v2', n: '3' });
    const list = await tb.spike('/v1/store/secrets?action=list', {});
    expect(list.json.keys).toEqual(['shared/a']);
  });
});
