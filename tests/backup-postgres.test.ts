/**
 * The SQLite → PostgreSQL move by export and import (docs/backup.md §7; issue 16 criterion 3)
 * with real processes: an SQLite deployment is seeded (SPIKE and Vault KV v2 state), exported
 * by `spike operator export`, imported by `spike operator import` into a Nexus on PostgreSQL,
 * exported again from there and compared: the decrypted documents are identical. On PostgreSQL
 * `spike operator snapshot` refuses and points to pg_dump.
 *
 * Needs SPIKE_TEST_DATABASE_URL (run with `bash .ci/postgres bun test tests/backup-postgres.test.ts`);
 * skipped without it.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import {
  comparable,
  decryptExport,
  SECRET_VALUE,
  seedStore,
  seedVault,
  spikeAs,
} from './support/backup.ts';
import { type Cluster, startCluster } from './support/cluster.ts';
import { freshDatabase } from './support/store-backends.ts';

setDefaultTimeout(240_000);

const DATABASE_URL = process.env.SPIKE_TEST_DATABASE_URL || undefined;

describe.skipIf(DATABASE_URL === undefined)('backup: sqlite → export → postgres → export', () => {
  let source: Cluster;
  let target: Cluster;
  let dir: string;
  let identity: string;
  let identityFile: string;
  let recipient: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-backup-pg-'));
    const databaseUrl = await freshDatabase();
    [source, target] = await Promise.all([
      startCluster({ keepers: 2, threshold: 2, nexusEnv: { SPIKE_NEXUS_VAULT_API: 'true' } }),
      startCluster({
        keepers: 2,
        threshold: 2,
        nexusEnv: { SPIKE_NEXUS_BACKEND_STORE: 'postgres', SPIKE_NEXUS_DATABASE_URL: databaseUrl },
      }),
    ]);
    await Promise.all([source.waitReady(60_000), target.waitReady(60_000)]);
    const pilot = await source.client('pilot');
    await seedStore(pilot);
    await seedVault(pilot);
    await pilot.close();
    identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    identityFile = join(dir, 'key.txt');
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
  }, 240_000);

  afterAll(async () => {
    await Promise.all([source?.close(), target?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function exportFrom(cluster: Cluster, name: string) {
    const out = join(dir, name);
    const args = ['operator', 'export', '--out', out, '--recipient', recipient];
    const run = await spikeAs(cluster, 'pilot', args);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    return out;
  }

  it('postgres: imports an SQLite export and exports an identical document', async () => {
    const first = await exportFrom(source, 'sqlite.age');
    const run = await spikeAs(target, 'pilot', [
      'operator',
      'import',
      first,
      '--identity',
      identityFile,
    ]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toBe('Imported 4 secrets (9 versions) and 2 policies.\n');
    const second = await exportFrom(target, 'postgres.age');
    const a = await decryptExport(new Uint8Array(readFileSync(first)), { identity });
    const b = await decryptExport(new Uint8Array(readFileSync(second)), { identity });
    expect(a.backend).toBe('sqlite');
    expect(b.backend).toBe('postgres');
    expect(comparable(b)).toEqual(comparable(a));

    const client = await target.client('pilot');
    const read = await client.post('/v1/store/secrets?action=get', { path: 'app/db' });
    await client.close();
    expect(read.json.data.pass).toBe(SECRET_VALUE);
  });

  it('postgres: refuses a second import without --force, and snapshots with a pg_dump pointer', async () => {
    const file = join(dir, 'sqlite.age');
    const refused = await spikeAs(target, 'pilot', [
      'operator',
      'import',
      file,
      '--identity',
      identityFile,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the store is not empty');
    const snap = await spikeAs(target, 'pilot', ['operator', 'snapshot', '--out', join(dir, 's')]);
    expect(snap.code).toBe(1);
    expect(snap.stderr).toContain('back up PostgreSQL with pg_dump (docs/backup.md');
  });
});
