/**
 * External Secrets Operator's Vault provider, replayed (issue 10 criterion 5): the calls ESO makes
 * against a `SecretStore` with `provider.vault {path: secret, version: v2}` and no `auth`
 * (mTLS client certificate), and the answers it needs from them:
 * - `Validate()`: `GET auth/token/lookup-self` → 200 with a non-batch token;
 * - `ExternalSecret.data[].remoteRef`: `GET secret/data/<key>[?version=N]`, `metadataPolicy:
 *   Fetch` → `GET secret/metadata/<key>`;
 * - `dataFrom.find` by name regex and by `custom_metadata` tags: recursive `GET ?list=true`;
 * - `PushSecret`: reads metadata; refuses keys whose `custom_metadata.managed-by` is not
 *   `external-secrets`; writes metadata `managed-by`, then data with `options.cas`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'bun:test';
import { createTestbed, type Testbed, WORKLOAD } from './support/vault-testbed.ts';

let tb: Testbed;
beforeEach(async () => {
  tb = await createTestbed();
  // ESO's identity: a workload with read, write and list on `eso/.*` (and nothing else).
  const r = await tb.spike('/v1/acl/policy', {
    name: 'eso',
    spiffeidPattern: `^${WORKLOAD}$`,
    pathPattern: '^eso/.*$',
    permissions: ['read', 'write', 'list'],
  });
  expect(r.status).toBe(200);
});
afterEach(async () => {
  await tb.close();
});

const eso = (method: string, path: string, body?: unknown) =>
  tb.vault(method, path, { peer: WORKLOAD, ...(body === undefined ? {} : { body }) });

/** ESO's recursive find: list folders depth first, collecting leaf keys. */
async function findAll(folder: string): Promise<string[]> {
  const r = await eso('GET', `/v1/secret/metadata/${folder}?list=true`);
  if (r.status === 404) return [];
  expect(r.status).toBe(200);
  const out: string[] = [];
  for (const k of r.json.data.keys as string[]) {
    if (k.endsWith('/')) out.push(...(await findAll(`${folder}${k}`)));
    else out.push(`${folder}${k}`);
  }
  return out;
}

describe('ESO Vault provider replay', () => {
  it('Validate: lookup-self succeeds with a service token and the caller as display_name', async () => {
    const r = await eso('GET', '/v1/auth/token/lookup-self');
    expect(r.status).toBe(200);
    expect(r.json.data.type).not.toBe('batch');
    expect(r.json.data.display_name).toBe(WORKLOAD);
  });

  it('remoteRef reads with and without version, metadataPolicy Fetch', async () => {
    await tb.vault('POST', '/v1/secret/data/eso/db', { body: { data: { password: 'p1' } } });
    await tb.vault('POST', '/v1/secret/data/eso/db', { body: { data: { password: 'p2' } } });
    await tb.vault('POST', '/v1/secret/metadata/eso/db', {
      body: { custom_metadata: { env: 'prod' } },
    });
    expect((await eso('GET', '/v1/secret/data/eso/db')).json.data.data).toEqual({ password: 'p2' });
    expect((await eso('GET', '/v1/secret/data/eso/db?version=1')).json.data.data).toEqual({
      password: 'p1',
    });
    const meta = await eso('GET', '/v1/secret/metadata/eso/db');
    expect(meta.json.data.custom_metadata).toEqual({ env: 'prod' });
    expect((await eso('GET', '/v1/secret/data/eso/missing')).status).toBe(404);
    expect((await eso('GET', '/v1/secret/data/other/x')).status).toBe(403);
  });

  it('dataFrom.find by name regex and by custom_metadata tags', async () => {
    for (const [p, tags] of [
      ['eso/app1/db', { team: 'a' }],
      ['eso/app1/api', { team: 'b' }],
      ['eso/app2/db', { team: 'a' }],
    ] as const) {
      await tb.vault('POST', `/v1/secret/data/${p}`, { body: { data: { v: p } } });
      await tb.vault('POST', `/v1/secret/metadata/${p}`, { body: { custom_metadata: tags } });
    }
    const all = await findAll('eso/');
    expect(all.sort()).toEqual(['eso/app1/api', 'eso/app1/db', 'eso/app2/db']);
    expect(all.filter((k) => /db$/.test(k)).sort()).toEqual(['eso/app1/db', 'eso/app2/db']);
    const tagged: string[] = [];
    for (const k of all) {
      const m = await eso('GET', `/v1/secret/metadata/${k}`);
      if (m.json.data.custom_metadata?.team === 'a') tagged.push(k);
    }
    expect(tagged.sort()).toEqual(['eso/app1/db', 'eso/app2/db']);
    for (const k of tagged) {
      expect((await eso('GET', `/v1/secret/data/${k}`)).json.data.data).toEqual({ v: k });
    }
  });

  it('PushSecret: managed-by metadata then CAS write; foreign keys are left alone', async () => {
    // A key someone else manages: ESO reads its metadata and refuses to overwrite it.
    await tb.vault('POST', '/v1/secret/data/eso/foreign', { body: { data: { x: '1' } } });
    const foreign = await eso('GET', '/v1/secret/metadata/eso/foreign');
    expect(foreign.json.data.custom_metadata?.['managed-by']).not.toBe('external-secrets');

    // A new key: metadata absent (404), ESO writes managed-by, then data with cas = current.
    expect((await eso('GET', '/v1/secret/metadata/eso/pushed')).status).toBe(404);
    expect(
      (
        await eso('PUT', '/v1/secret/metadata/eso/pushed', {
          custom_metadata: { 'managed-by': 'external-secrets' },
        })
      ).status,
    ).toBe(204);
    const meta = await eso('GET', '/v1/secret/metadata/eso/pushed');
    expect(meta.json.data.custom_metadata).toEqual({ 'managed-by': 'external-secrets' });
    expect(meta.json.data.current_version).toBe(0);
    const w1 = await eso('POST', '/v1/secret/data/eso/pushed', {
      data: { token: 't1' },
      options: { cas: meta.json.data.current_version },
    });
    expect(w1.json.data.version).toBe(1);
    expect(w1.json.data.custom_metadata).toEqual({ 'managed-by': 'external-secrets' });
    // An update with a stale CAS is refused, with the current one accepted.
    const stale = await eso('POST', '/v1/secret/data/eso/pushed', {
      data: { token: 't2' },
      options: { cas: 0 },
    });
    expect(stale.json.errors).toEqual([
      'check-and-set parameter did not match the current version',
    ]);
    const w2 = await eso('POST', '/v1/secret/data/eso/pushed', {
      data: { token: 't2' },
      options: { cas: 1 },
    });
    expect(w2.json.data.version).toBe(2);
    // DeleteSecret of a managed key: metadata delete.
    expect((await eso('DELETE', '/v1/secret/metadata/eso/pushed')).status).toBe(204);
  });
});
