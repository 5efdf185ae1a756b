// node-vault 0.12.0 against a real Nexus over mTLS (docs/vault-kv2.md §7). Environment as for
// tests/vault-clients/hvac_suite.py. Hostname verification ON (https.Agent with the CA).
// Prints one line per check and, last, `node-vault: N passed, M failed`.
const fs = require('node:fs');
const assert = require('node:assert/strict');
const nodeVault = require('node-vault');

const env = process.env;
function client(who, url = env.VAULT_URL, ca = env.CA_FILE, prefix = '') {
  return nodeVault({
    apiVersion: 'v1',
    endpoint: url,
    noCustomHTTPVerbs: true,
    requestOptions: {
      ca: fs.readFileSync(ca),
      cert: fs.readFileSync(env[`${prefix}${who}_CERT`]),
      key: fs.readFileSync(env[`${prefix}${who}_KEY`]),
    },
  });
}

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push([name, true, '']);
  } catch (e) {
    results.push([name, false, String(e?.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e)]);
  }
}
async function rejects(promise, status, message) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.response?.statusCode, status);
    if (message !== undefined) assert.equal(e.message, message);
    return e;
  }
  throw new Error(`expected a ${status} rejection`);
}

(async () => {
  const v = client('PILOT');

  await check('health', async () => {
    const h = await v.health();
    assert.equal(h.initialized, true);
    assert.equal(h.sealed, false);
  });

  await check('write and read (data/)', async () => {
    const w = await v.write('secret/data/nv/a', { data: { user: 'u1' } });
    assert.equal(w.data.version, 1);
    await v.write('secret/data/nv/a', { data: { user: 'u2', n: 2 } });
    const r = await v.read('secret/data/nv/a');
    assert.deepEqual(r.data.data, { user: 'u2', n: 2 });
    assert.equal(r.data.metadata.version, 2);
    const old = await v.read('secret/data/nv/a?version=1');
    assert.deepEqual(old.data.data, { user: 'u1' });
  });

  await check('update (HTTP PATCH, merge-patch)', async () => {
    const p = await v.update('secret/data/nv/a', { data: { n: null, extra: 'x' } });
    assert.equal(p.data.version, 3);
    assert.deepEqual((await v.read('secret/data/nv/a')).data.data, { user: 'u2', extra: 'x' });
  });

  await check('CAS success and errors', async () => {
    await v.write('secret/data/nv/cas', { data: { a: '1' }, options: { cas: 0 } });
    await rejects(
      v.write('secret/data/nv/cas', { data: { a: '2' }, options: { cas: 0 } }),
      400,
      'check-and-set parameter did not match the current version',
    );
    await v.write('secret/metadata/nv/cas', { cas_required: true });
    await rejects(
      v.write('secret/data/nv/cas', { data: { a: '2' } }),
      400,
      'check-and-set parameter required for this call',
    );
    await rejects(
      v.write('secret/data/nv/cas', { data: { a: '2' }, options: { cas: 'x' } }),
      400,
      'error parsing check-and-set parameter',
    );
  });

  await check('delete latest, read deleted (404), undelete, destroy', async () => {
    await v.delete('secret/data/nv/a');
    const e = await rejects(v.read('secret/data/nv/a'), 404);
    assert.equal(e.response.body.data.data, null);
    assert.equal(e.response.body.data.metadata.version, 3);
    await v.write('secret/undelete/nv/a', { versions: [3] });
    assert.equal((await v.read('secret/data/nv/a')).data.metadata.version, 3);
    await v.write('secret/destroy/nv/a', { versions: [1] });
    const meta = await v.read('secret/metadata/nv/a');
    assert.equal(meta.data.versions['1'].destroyed, true);
  });

  await check('metadata write/read with custom_metadata, and metadata PATCH', async () => {
    await v.write('secret/metadata/nv/a', { max_versions: 4, custom_metadata: { owner: 'me' } });
    let meta = await v.read('secret/metadata/nv/a');
    assert.equal(meta.data.max_versions, 4);
    assert.deepEqual(meta.data.custom_metadata, { owner: 'me' });
    await v.update('secret/metadata/nv/a', { custom_metadata: { owner: null, t: '1' } });
    meta = await v.read('secret/metadata/nv/a');
    assert.deepEqual(meta.data.custom_metadata, { t: '1' });
  });

  await check('list (GET ?list=1) at root and in a folder', async () => {
    await v.write('secret/data/nv/dir/x', { data: { a: 1 } });
    assert.deepEqual((await v.list('secret/metadata/nv/')).data.keys, ['a', 'cas', 'dir/']);
    assert.ok((await v.list('secret/metadata/')).data.keys.includes('nv/'));
    await rejects(v.list('secret/metadata/none/'), 404);
  });

  await check('delete metadata, then read 404 {"errors":[]}', async () => {
    await v.delete('secret/metadata/nv/a');
    const e = await rejects(v.read('secret/data/nv/a'), 404, 'Status 404');
    assert.deepEqual(e.response.body, { errors: [] });
  });

  await check('denied workload: permission denied', async () => {
    await v.write('secret/data/app/nv', { data: { k: 'v' } });
    await rejects(client('DENIED').read('secret/data/app/nv'), 403, 'permission denied');
    assert.deepEqual((await client('READER').read('secret/data/app/nv')).data.data, { k: 'v' });
  });

  await check('sealed Nexus: 503 Vault is sealed, health sealed', async () => {
    const s = client('PILOT', env.VAULT_SEALED_URL, env.SEALED_CA_FILE, 'SEALED_');
    await rejects(s.read('secret/data/x'), 503, 'Vault is sealed');
    assert.equal((await s.health()).sealed, true);
  });

  for (const [name, ok, detail] of results) {
    console.log(`${ok ? 'ok  ' : 'FAIL'} node-vault ${name}${ok ? '' : ` -- ${detail}`}`);
  }
  const passed = results.filter((r) => r[1]).length;
  console.log(`node-vault: ${passed} passed, ${results.length - passed} failed`);
  process.exit(passed === results.length ? 0 : 1);
})();
