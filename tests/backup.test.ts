/**
 * Export and import of a whole store through the real CLI and real processes (docs/backup.md
 * §2, §3; issue 16 criteria 3 and 5): an SQLite deployment (Nexus + two Keepers) is seeded
 * with versions in every state and policies, exported by `spike operator export` to an age
 * X25519 recipient, imported by `spike operator import` into a memory-backend Nexus, exported
 * again and compared (decrypted documents equal). The export file is scanned for a secret value
 * and for the root key (combined from the recovery shards): neither is in it. The passphrase
 * path (scrypt) round-trips too, and a wrong passphrase is refused locally.
 *
 * Refusals (criterion 5): a non-superuser gets 401 on every backup route, bad input 400 with
 * the broken rule, an import into a non-empty store 400 unless `--force`; each of them, and
 * each success, leaves an audit line with the caller's SPIFFE ID.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { combineShards, type ShardEnvelope } from '../src/core/shamir/shards.ts';
import {
  comparable,
  decryptExport,
  SECRET_VALUE,
  SUPERUSER_ID,
  seedStore,
  seedVault,
  spikeAs,
} from './support/backup.ts';
import { type Cluster, type NexusClient, scanFiles, startCluster } from './support/cluster.ts';

// Several clusters and CLI processes (scrypt at 2^18 twice) on a loaded 2-core machine.
setDefaultTimeout(240_000);

let source: Cluster;
let target: Cluster;
let pilot: NexusClient;
let dir: string;
let identity: string;
let recipient: string;
let identityFile: string;
let firstExport: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spike-backup-'));
  [source, target] = await Promise.all([
    startCluster({ keepers: 2, threshold: 2, nexusEnv: { SPIKE_NEXUS_VAULT_API: 'true' } }),
    startCluster({ keepers: 2, threshold: 2, nexusEnv: { SPIKE_NEXUS_BACKEND_STORE: 'memory' } }),
  ]);
  await Promise.all([source.waitReady(60_000), target.waitReady(60_000)]);
  pilot = await source.client('pilot');
  await seedStore(pilot);
  await seedVault(pilot);
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  identityFile = join(dir, 'backup-key.txt');
  writeFileSync(identityFile, `# created by the test\n${identity}\n`, { mode: 0o600 });
}, 240_000);

afterAll(async () => {
  await pilot?.close();
  await Promise.all([source?.close(), target?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

/** The audit lines (JSON) of a cluster's Nexus. */
function auditLines(cluster: Cluster): Record<string, unknown>[] {
  return readFileSync(cluster.nexus.errLog, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.trail === 'string');
}

describe('export → import → export, sqlite to memory (real processes, CLI)', () => {
  it('exports to an age recipient: a 0600 file without plaintext or root key', async () => {
    const out = join(dir, 'a.age');
    const run = await spikeAs(source, 'pilot', [
      'operator',
      'export',
      '--out',
      out,
      '--recipient',
      recipient,
    ]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toContain(`Export written to ${out}`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    firstExport = new Uint8Array(readFileSync(out));
    expect(new TextDecoder().decode(firstExport.subarray(0, 21))).toBe('age-encryption.org/v1');

    // The root key, from the recovery shards (recover role), and a secret value: in no form.
    const recover = await source.client('recover');
    const answer = await recover.post('/v1/operator/recover', {});
    await recover.close();
    const shards = answer.json.shards as ShardEnvelope[];
    const rootKey = await combineShards(shards, 2, shards[0]!.kcv);
    const needles = [
      { label: 'root key', bytes: rootKey },
      { label: 'secret value', bytes: new TextEncoder().encode(SECRET_VALUE) },
      { label: 'policy pattern', bytes: new TextEncoder().encode('workload/ops') },
    ];
    expect(await scanFiles([out], needles)).toEqual([]);
  });

  it('holds every version with its times, deletion and destruction, and every policy', async () => {
    const doc = await decryptExport(firstExport, { identity });
    expect(doc.format).toBe('spike-export');
    expect(doc.backend).toBe('sqlite');
    expect(doc.secrets.map((s: { path: string }) => s.path)).toEqual([
      'app/api',
      'app/db',
      'ops/one',
      'vault/app',
    ]);
    // Vault KV v2 state: key metadata, the exact JSON text of a version, the mount.
    const vault = doc.secrets[3];
    expect(vault).toMatchObject({ maxVersions: 7, casRequired: true, latestVersion: 2 });
    expect(JSON.parse(vault.customMetadata)).toEqual({ owner: 'team-a', 'cost-center': '42' });
    expect(vault.versions[0].data).toBe('{"n":1.5,"list":[1,"a"]}');
    expect(doc.mount).toMatchObject({ maxVersions: 20 });
    const db = doc.secrets[1];
    expect(db.latestVersion).toBe(5);
    expect(db.currentVersion).toBe(5);
    expect(db.versions.map((v: { version: number }) => v.version)).toEqual([1, 2, 3, 4, 5]);
    expect(db.versions[0].deletedAt).toBeNumber();
    expect(db.versions[1]).toMatchObject({ destroyed: true, data: null });
    expect(JSON.parse(db.versions[4].data)).toEqual({
      user: 'app5',
      pass: SECRET_VALUE,
      unicode: 'äß→✓',
    });
    expect(doc.secrets[0].versions[0].deletedAt).toBeNumber();
    expect(doc.secrets[0].currentVersion).toBe(0);
    expect(doc.policies.map((p: { name: string }) => p.name)).toEqual(['app-read', 'ops-write']);
    const ops = doc.policies[1];
    expect(ops.permissions).toEqual(['write', 'read']);
    expect(ops.updatedAt).toBeGreaterThan(ops.createdAt);
  });

  it('imports into a memory Nexus and exports the same document back', async () => {
    const run = await spikeAs(target, 'pilot', [
      'operator',
      'import',
      join(dir, 'a.age'),
      '--identity',
      identityFile,
    ]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toBe('Imported 4 secrets (9 versions) and 2 policies.\n');

    const out = join(dir, 'b.age');
    const again = await spikeAs(target, 'pilot', [
      'operator',
      'export',
      '--out',
      out,
      '--recipient',
      recipient,
    ]);
    expect(again.code).toBe(0);
    const second = await decryptExport(new Uint8Array(readFileSync(out)), { identity });
    expect(second.backend).toBe('memory');
    expect(comparable(second)).toEqual(comparable(await decryptExport(firstExport, { identity })));

    // The imported data serves reads: the current version and a deleted one stays deleted.
    const client = await target.client('pilot');
    const read = await client.post('/v1/store/secrets?action=get', { path: 'app/db' });
    const deleted = await client.post('/v1/store/secrets?action=get', { path: 'app/api' });
    await client.close();
    expect(read.json.data.pass).toBe(SECRET_VALUE);
    expect(deleted.status).toBe(404);
  });

  it('refuses to import into a store that is not empty, unless --force', async () => {
    const args = ['operator', 'import', join(dir, 'a.age'), '--identity', identityFile];
    const refused = await spikeAs(target, 'pilot', args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Error: Invalid request.');
    expect(refused.stderr).toContain('Reason: the store is not empty (4 secrets, 2 policies)');
    const forced = await spikeAs(target, 'pilot', [...args, '--force']);
    expect({ code: forced.code, stdout: forced.stdout }).toEqual({
      code: 0,
      stdout: 'Imported 4 secrets (9 versions) and 2 policies.\n',
    });
  });

  it('round-trips under a passphrase (scrypt) and refuses a wrong one locally', async () => {
    const out = join(dir, 'p.age');
    const passphrase = 'correct horse battery staple';
    const env = { SPIKE_EXPORT_PASSPHRASE: passphrase };
    const run = await spikeAs(
      source,
      'pilot',
      ['operator', 'export', '-o', out, '--passphrase'],
      env,
    );
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const file = new Uint8Array(readFileSync(out));
    expect(new TextDecoder().decode(file)).toContain('-> scrypt ');
    expect(
      await scanFiles(
        [out],
        [{ label: 'passphrase', bytes: new TextEncoder().encode(passphrase) }],
      ),
    ).toEqual([]);

    const wrong = await spikeAs(target, 'pilot', ['operator', 'import', out, '--force'], {
      SPIKE_EXPORT_PASSPHRASE: 'not the passphrase',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('wrong identity or passphrase');
    const right = await spikeAs(target, 'pilot', ['operator', 'import', out, '--force'], env);
    expect(right.code).toBe(0);
  });
});

describe('refusals and audit (criterion 5)', () => {
  async function raw(cluster: Cluster, role: string, target: string, body: string) {
    const client = await cluster.client(role);
    try {
      const answer = await client.mtls.request(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      return {
        status: answer.status,
        json: JSON.parse(new TextDecoder().decode(answer.body)) as Record<string, unknown>,
        reason: answer.headers['spike-error-reason'],
      };
    } finally {
      await client.close();
    }
  }

  it('answers 401 to a workload and to the recover role, for every backup route', async () => {
    for (const role of ['workload', 'recover']) {
      for (const path of [
        '/v1/operator/export',
        '/v1/operator/import',
        '/v1/operator/import?action=replace',
        '/v1/operator/snapshot',
      ]) {
        const answer = await raw(source, role, path, JSON.stringify({ recipient }));
        expect({ role, path, status: answer.status, json: answer.json }).toMatchObject({
          status: 401,
          json: { err: 'access_unauthorized' },
        });
      }
    }
  });

  it('answers 400 with the rule for bad input, never echoing it', async () => {
    const cases: [string, string, string][] = [
      ['/v1/operator/export', '{}', 'give exactly one of recipient and passphrase'],
      [
        '/v1/operator/export',
        JSON.stringify({ recipient, passphrase: 'long enough phrase' }),
        'give exactly one of recipient and passphrase',
      ],
      [
        '/v1/operator/export',
        JSON.stringify({ recipient: 'age1nope' }),
        'recipient must be an age public key',
      ],
      [
        '/v1/operator/export',
        JSON.stringify({ passphrase: 'short' }),
        'passphrase must be at least 8',
      ],
      ['/v1/operator/import', 'not json', 'export document: not JSON'],
      ['/v1/operator/import', '{"format":"other"}', 'format must be "spike-export"'],
      [
        '/v1/operator/import',
        JSON.stringify({
          format: 'spike-export',
          version: 1,
          exportedAt: 1,
          mount: { maxVersions: 0, casRequired: false, deleteVersionAfterMs: 0 },
          secrets: [
            {
              path: 'a//b',
              createdAt: 1,
              updatedAt: 1,
              latestVersion: 1,
              oldestVersion: 0,
              maxVersions: null,
              casRequired: null,
              deleteVersionAfterMs: null,
              customMetadata: null,
              versions: [
                {
                  version: 1,
                  createdAt: 1,
                  deletedAt: null,
                  destroyed: false,
                  data: `{"k":"${SECRET_VALUE}"}`,
                },
              ],
            },
          ],
          policies: [],
        }),
        'path must not contain an empty segment',
      ],
    ];
    for (const [path, body, reason] of cases) {
      const answer = await raw(target, 'pilot', path, body);
      expect({ path, status: answer.status, err: answer.json.err }).toEqual({
        path,
        status: 400,
        err: 'api_bad_request',
      });
      expect(answer.reason).toContain(reason);
      expect(JSON.stringify(answer)).not.toContain(SECRET_VALUE);
    }
    // The memory backend has no database file to snapshot.
    const snap = await spikeAs(target, 'pilot', [
      'operator',
      'snapshot',
      '--out',
      join(dir, 'm.db'),
    ]);
    expect(snap.code).toBe(1);
    expect(snap.stderr).toContain('Reason: the memory backend has no database file to snapshot');
  });

  it('refuses locally what it cannot do (usage errors, wrong role)', async () => {
    const none = await spikeAs(source, 'pilot', [
      'operator',
      'export',
      '--out',
      join(dir, 'x.age'),
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Give exactly one of --recipient age1… and --passphrase.');
    const exists = await spikeAs(source, 'pilot', ['operator', 'snapshot', '--out', identityFile]);
    expect(exists.code).toBe(2);
    expect(exists.stderr).toContain('exists; choose a new file name');
    const role = await spikeAs(source, 'recover', [
      'operator',
      'snapshot',
      '--out',
      join(dir, 'y'),
    ]);
    expect(role.code).toBe(1);
    expect(role.stderr).toContain("You need the 'superuser' role");
  });

  it('audits every export, import and refusal with the caller SPIFFE ID', () => {
    const lines = auditLines(source);
    const exports = lines.filter((l) => l.action === 'export' && l.status === 200);
    expect(exports.length).toBeGreaterThanOrEqual(2);
    for (const line of exports) expect(line.caller).toBe(SUPERUSER_ID);
    expect(exports.map((l) => l.resource)).toContain(recipient);
    expect(exports.map((l) => l.resource)).toContain('passphrase');
    const denied = lines.filter(
      (l) => l.outcome === 'denied' && String(l.route).startsWith('/v1/operator/'),
    );
    expect(denied.length).toBe(8);
    for (const line of denied) expect(line.caller).not.toBe(SUPERUSER_ID);
    expect(new Set(denied.map((l) => l.caller)).size).toBe(2);

    const imports = auditLines(target).filter((l) => String(l.action).startsWith('import'));
    expect(imports.map((l) => `${l.action} ${l.status}`)).toEqual(
      expect.arrayContaining(['import 200', 'import 400', 'import_replace 200']),
    );
    for (const line of imports) expect(line.caller).toBe(SUPERUSER_ID);
    expect(readFileSync(target.nexus.errLog, 'utf8')).not.toContain(SECRET_VALUE);
    expect(readFileSync(source.nexus.errLog, 'utf8')).not.toContain(SECRET_VALUE);
  });
});
