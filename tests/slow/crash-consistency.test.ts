/**
 * Crash consistency (docs/architecture.md invariant 3, "an acknowledged write survives a kill -9 of
 * Nexus"): several mTLS clients put secrets as fast as they can; Nexus is killed with SIGKILL in
 * the middle of the burst, restarted, recovers its root key from the Keepers by itself, and every
 * put that was acknowledged with 200 reads back with its exact value. Then the database, its WAL
 * and every log are scanned for the root key and the shards (invariant 1).
 *
 * Real processes throughout (tests/support/cluster.ts): three Keepers, one Nexus, the
 * development issuer's SVIDs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { fromHex } from '../../src/core/bytes.ts';
import { combineShards, type ShardEnvelope } from '../../src/core/shamir/shards.ts';
import {
  type Cluster,
  type Needle,
  type NexusClient,
  scanFiles,
  startCluster,
} from '../support/cluster.ts';

/** Writers with one distinct path per put. */
const PATH_WRITERS = 7;
/** Puts planned per writer: 7 × 400 = 2,800, plus the counter writer's. */
const PUTS_PER_WRITER = 400;
/** Nexus is killed once this many puts were acknowledged (the burst is still running). */
const KILL_AFTER_ACKS = 2000;

describe('crash consistency', () => {
  let cluster: Cluster;
  const clients: NexusClient[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ keepers: 3, threshold: 2, logLevel: 'INFO' });
    await cluster.waitReady(15_000);
    for (let i = 0; i < PATH_WRITERS + 1; i++) clients.push(await cluster.client('pilot'));
  }, 30_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('keeps every acknowledged put across a SIGKILL during a burst of puts', async () => {
    const runId = crypto.randomUUID().slice(0, 8);
    const acked = new Map<string, string>();
    let attempted = 0;
    let failedAfterKill = 0;
    let killed = false;
    let killAt = 0;
    let inFlightAtKill = 0;
    let inFlight = 0;
    let resolveKill!: () => void;
    const killDone = new Promise<void>((resolve) => {
      resolveKill = resolve;
    });

    const maybeKill = () => {
      if (killed || acked.size < KILL_AFTER_ACKS) return;
      killed = true;
      killAt = acked.size;
      inFlightAtKill = inFlight;
      void cluster.nexus.kill('SIGKILL').then(resolveKill);
    };

    async function put(client: NexusClient, path: string, value: string): Promise<boolean> {
      attempted++;
      inFlight++;
      try {
        const answer = await client.post('/v1/store/secrets', { path, values: { v: value } });
        if (answer.status !== 200) throw new Error(`put answered ${answer.status}`);
        return true;
      } catch (error) {
        if (!killed) throw error;
        failedAfterKill++;
        return false;
      } finally {
        inFlight--;
      }
    }

    const pathWriter = async (w: number) => {
      const client = clients[w]!;
      for (let j = 0; j < PUTS_PER_WRITER; j++) {
        const path = `crash/${runId}/w${w}/p${j}`;
        const value = `${runId}-w${w}-p${j}-${crypto.randomUUID()}`;
        if (!(await put(client, path, value))) return;
        acked.set(path, value);
        maybeKill();
      }
    };
    // One writer overwrites a single path: its value after the crash is the last acknowledged
    // one or a later one that was in flight, never an older one.
    let counterAcked = -1;
    let counterAttempted = -1;
    const counterPath = `crash/${runId}/counter`;
    const counterWriter = async () => {
      const client = clients[PATH_WRITERS]!;
      for (let k = 0; k < PUTS_PER_WRITER; k++) {
        counterAttempted = k;
        if (!(await put(client, counterPath, String(k)))) return;
        counterAcked = k;
      }
    };

    const started = performance.now();
    await Promise.all([
      ...Array.from({ length: PATH_WRITERS }, (_, w) => pathWriter(w)),
      counterWriter(),
    ]);
    const burstMs = performance.now() - started;
    expect(killed).toBe(true);
    await killDone;
    // The kill came mid-burst: at least 2,000 puts were acknowledged, more were still running.
    expect(killAt).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);
    expect(inFlightAtKill).toBeGreaterThan(0);
    expect(attempted).toBeGreaterThan(acked.size);
    console.log(
      `burst: ${attempted} puts attempted, ${acked.size} acknowledged, ${failedAfterKill} cut by ` +
        `the kill, ${inFlightAtKill} in flight at the kill, ${Math.round(burstMs)} ms`,
    );

    // Restart: the key comes back from the Keepers with no operator action.
    const spawnedAt = await cluster.nexus.start();
    await cluster.waitReady(10_000);
    console.log(`restart to ready: ${Math.round(performance.now() - spawnedAt)} ms`);

    // Every acknowledged put reads back exactly.
    const entries = [...acked];
    const mismatches: string[] = [];
    let next = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (next < entries.length) {
          const [path, value] = entries[next++]!;
          const answer = await client.post('/v1/store/secrets?action=get', { path });
          if (answer.status !== 200 || answer.json?.data?.v !== value) {
            mismatches.push(`${path}: status ${answer.status}`);
          }
        }
      }),
    );
    expect(mismatches).toEqual([]);
    const counter = await clients[0]!.post('/v1/store/secrets?action=get', { path: counterPath });
    expect(counter.status).toBe(200);
    const finalCount = Number(counter.json.data.v);
    expect(finalCount).toBeGreaterThanOrEqual(counterAcked);
    expect(finalCount).toBeLessThanOrEqual(counterAttempted);

    // Nothing secret reached the disk: database, WAL and every log.
    const recoverer = await cluster.client('recover');
    const recovered = await recoverer.post('/v1/operator/recover', {});
    expect(recovered.status).toBe(200);
    const set = recovered.json.shards as ShardEnvelope[];
    const rootKey = await combineShards(set, 2, set[0]!.kcv);
    const needles: Needle[] = [{ label: 'root key', bytes: rootKey }];
    for (let i = 1; i <= 3; i++) {
      const keeper = await cluster.keeperClient(i);
      const held = await keeper.post('/v1/store/shard', {});
      await keeper.close();
      expect(held.status).toBe(200);
      for (const e of held.json.shards as ShardEnvelope[]) {
        needles.push({ label: `keeper ${i} shard`, bytes: fromHex(e.shard) });
      }
    }
    const files = cluster.files();
    const names = files.map((f) => f.slice(cluster.dir.length));
    expect(names).toContain('/nexus/data/spike.db');
    expect(names).toContain('/nexus/data/spike.db-wal');
    expect(await scanFiles(files, needles)).toEqual([]);
  }, 120_000);
});
