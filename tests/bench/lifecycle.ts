/**
 * Lifecycle figures for `bun run bench` (tests/bench/run.ts): how long a Nexus takes from spawn
 * to `/ready` = 200 when the Keepers already hold its shards (the restart path of
 * docs/architecture.md "The flows that matter"), and the resident memory of a Keeper process.
 *
 * Method: a real deployment (tests/support/cluster.ts: development issuer, three Keeper
 * processes, one Nexus process, SQLite in a temp dir). After the first boot, Nexus is killed
 * with SIGKILL and started again `RUNS` times; each run is timed from just before the spawn to
 * the first 200 on the plain health port (polled every 5 ms); the median is reported. Keeper
 * memory is `VmRSS` from `/proc/<pid>/status` once every Keeper holds a shard, the largest of
 * the three. Targets: under 1 s; under 60 MB.
 *
 * Runs standalone too: `bun tests/bench/lifecycle.ts`.
 */
import { readFileSync } from 'node:fs';
import { startCluster } from '../support/cluster.ts';

const RUNS = 5;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error('VmRSS not found');
  return kb / 1024;
}

/** Median Nexus start-to-ready with Keepers holding shards, and the largest Keeper RSS. */
export async function benchLifecycle(): Promise<{ startToReadyMs: number; keeperRssMb: number }> {
  const cluster = await startCluster({ keepers: 3, threshold: 2, logLevel: 'WARN' });
  try {
    await cluster.waitReady(15_000);
    await cluster.waitUntil(
      async () =>
        (await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)))).every((s) => s === 200),
      10_000,
      'every keeper holding a shard',
    );
    const keeperRssMb = Math.max(
      ...cluster.keepers.map((k) => {
        const pid = k.pid();
        if (pid === undefined) throw new Error(`${k.name} is not running`);
        return rssMb(pid);
      }),
    );

    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await cluster.nexus.kill('SIGKILL');
      const spawnedAt = await cluster.nexus.start();
      for (;;) {
        if ((await cluster.nexusReady()) === 200) break;
        if (performance.now() - spawnedAt > 15_000) throw new Error('nexus did not become ready');
        await Bun.sleep(5);
      }
      times.push(performance.now() - spawnedAt);
    }
    times.sort((a, b) => a - b);
    return { startToReadyMs: times[Math.floor(times.length / 2)]!, keeperRssMb };
  } finally {
    await cluster.close();
  }
}

if (import.meta.main) {
  const result = await benchLifecycle();
  console.log(
    `Nexus start → ready with Keepers holding shards: ${result.startToReadyMs.toFixed(0)} ms ` +
      `(median of ${RUNS}; target < 1,000 ms)`,
  );
  console.log(`Keeper resident memory: ${result.keeperRssMb.toFixed(1)} MB (target < 60 MB)`);
}
