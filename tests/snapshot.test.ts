/**
 * `spike operator snapshot` (docs/backup.md §4, §6; issue 16 criterion 4) on a real SQLite
 * deployment (Nexus + two Keepers): the snapshot is taken while a writer keeps writing and
 * reading (no request fails meanwhile), is a sound SQLite database holding neither a plaintext
 * value nor the root key, and restores by the documented drill: a Nexus started on the snapshot
 * file gets its root key back from the Keepers (same deployment) or, on a fresh deployment with
 * empty Keepers, from the recovery shards, and serves the data, versions and deletion state of
 * the moment of the snapshot.
 */
import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { combineShards, type ShardEnvelope } from '../src/core/shamir/shards.ts';
import { SECRET_VALUE, SUPERUSER_ID, seedStore, spikeAs } from './support/backup.ts';
import { type Cluster, type NexusClient, scanFiles, startCluster } from './support/cluster.ts';

setDefaultTimeout(240_000);

let cluster: Cluster;
let pilot: NexusClient;
let shards: ShardEnvelope[];
let snapshotFile: string;
/** Paths the writer had written (acknowledged) before the snapshot command started. */
let writtenBefore: string[] = [];
/** A path first written after the snapshot command had ended. */
let writtenAfter = '';

beforeAll(async () => {
  cluster = await startCluster({ keepers: 2, threshold: 2 });
  await cluster.waitReady(60_000);
  pilot = await cluster.client('pilot');
  await seedStore(pilot);
  const recover = await cluster.client('recover');
  shards = (await recover.post('/v1/operator/recover', {})).json.shards;
  await recover.close();
  snapshotFile = join(cluster.dir, 'snapshot.db');
}, 240_000);

afterAll(async () => {
  await pilot?.close();
  await cluster?.close();
});

/** Reads `path` through `client`: the values of its current version, or the status. */
async function read(client: NexusClient, path: string) {
  const answer = await client.post('/v1/store/secrets?action=get', { path });
  return answer.status === 200 ? answer.json.data : answer.status;
}

async function expectSnapshotData(client: NexusClient): Promise<void> {
  expect((await read(client, 'app/db')).pass).toBe(SECRET_VALUE);
  expect(await read(client, 'app/api')).toBe(404); // deleted before the snapshot
  const meta = await client.post('/v1/store/secrets/metadata?action=get', { path: 'app/db' });
  expect(meta.json.metadata.currentVersion).toBe(5);
  expect(Object.keys(meta.json.versions).sort()).toEqual(['1', '2', '3', '4', '5']);
  for (const path of writtenBefore) expect(await read(client, path)).toEqual({ n: path });
  // The snapshot is a point in time: a write after it is not in it.
  expect(await read(client, writtenAfter)).toBe(404);
}

describe('spike operator snapshot (SQLite, online)', () => {
  it('takes a consistent snapshot while writes and reads go on, none failing', async () => {
    let stop = false;
    let i = 0;
    const failures: string[] = [];
    const completed: { path: string; end: number }[] = [];
    const writer = (async () => {
      while (!stop) {
        const path = `load/k${i++}`;
        const put = await pilot.post('/v1/store/secrets', { path, values: { n: path } });
        const got = await read(pilot, path);
        if (put.status !== 200 || got?.n !== path) failures.push(`${path}: ${put.status}`);
        else completed.push({ path, end: performance.now() });
      }
    })();
    // Some writes land before the command, then the snapshot runs while the writer goes on.
    while (completed.length < 5) await Bun.sleep(10);
    const started = performance.now();
    writtenBefore = completed.map((c) => c.path);
    const run = await spikeAs(cluster, 'pilot', ['operator', 'snapshot', '--out', snapshotFile]);
    const ended = performance.now();
    const during = completed.filter((c) => c.end > started && c.end < ended).length;
    while (completed.filter((c) => c.end > ended).length < 3) await Bun.sleep(10);
    stop = true;
    await writer;
    writtenAfter = completed[completed.length - 1]!.path;

    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toContain(`Snapshot written to ${snapshotFile}`);
    expect(failures).toEqual([]);
    expect(during).toBeGreaterThan(0);
    expect(statSync(snapshotFile).mode & 0o777).toBe(0o600);

    const db = new Database(snapshotFile, { readonly: true });
    try {
      expect(db.query('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' });
      const paths = db.query('SELECT path FROM secrets').all() as { path: string }[];
      expect(paths.map((p) => p.path)).toEqual(
        expect.arrayContaining(['app/db', ...writtenBefore]),
      );
    } finally {
      db.close();
    }
    const rootKey = await combineShards(shards, 2, shards[0]!.kcv);
    const needles = [
      { label: 'root key', bytes: rootKey },
      { label: 'secret value', bytes: new TextEncoder().encode(SECRET_VALUE) },
    ];
    expect(await scanFiles([snapshotFile], needles)).toEqual([]);
  });

  it('is audited with the caller SPIFFE ID', () => {
    const lines = readFileSync(cluster.nexus.errLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"snapshot"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({ action: 'snapshot', caller: SUPERUSER_ID, status: 200 }),
    );
  });

  it('restores with the Keepers: Nexus restarted on the snapshot file', async () => {
    await cluster.nexus.kill();
    const db = join(cluster.dataDir, 'spike.db');
    for (const suffix of ['-wal', '-shm']) rmSync(`${db}${suffix}`, { force: true });
    copyFileSync(snapshotFile, db);
    await cluster.nexus.start();
    await cluster.waitReady(60_000);
    const client = await cluster.client('pilot');
    try {
      await expectSnapshotData(client);
    } finally {
      await client.close();
    }
  });

  it('restores on a fresh deployment with the recovery shards', async () => {
    const fresh = await startCluster({ keepers: 2, threshold: 2, deferNexus: true });
    try {
      mkdirSync(fresh.dataDir, { recursive: true, mode: 0o700 });
      copyFileSync(snapshotFile, join(fresh.dataDir, 'spike.db'));
      await fresh.nexus.start();
      // The key-check record is there, the Keepers are empty: not ready until restored.
      await fresh.waitUntil(async () => (await fresh.nexusReady()) === 503, 60_000, 'not ready');
      const restore = await fresh.client('restore');
      const first = await restore.post('/v1/operator/restore', shards[0]);
      const second = await restore.post('/v1/operator/restore', shards[1]);
      await restore.close();
      expect(first.json).toMatchObject({ collected: 1, restored: false });
      expect(second.json).toMatchObject({ collected: 2, restored: true });
      await fresh.waitReady(60_000);
      const client = await fresh.client('pilot');
      try {
        await expectSnapshotData(client);
      } finally {
        await client.close();
      }
    } finally {
      await fresh.close();
    }
  });
});
