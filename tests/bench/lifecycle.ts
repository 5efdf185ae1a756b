/**
 * Lifecycle figures for `bun run bench` (tests/bench/run.ts), issue 12 criterion 5: how long the
 * compiled Nexus (`dist/nexus`, src/build.ts) takes from spawn to ready, and the resident memory
 * of a compiled Keeper (`dist/keeper`) holding a shard.
 *
 * Method: real deployments (tests/support/cluster.ts: development issuer in this process, Keeper
 * and Nexus processes started from `dist/`, with a PATH without Bun, from the cluster directory).
 * Each run is timed from just before the spawn to the first 200 of `/ready` on the plain health
 * port, polled every 2 ms; that port opens only after the mTLS listener is up (src/nexus/main.ts)
 * and `/ready` answers 200 only once the root key is in place.
 * - memory: `SPIKE_NEXUS_BACKEND_STORE=memory` (a random root key, no Keepers contacted); Nexus
 *   is stopped with SIGTERM and started again `RUNS` times;
 * - SIGKILL → ready: SQLite, three Keepers (threshold 2) holding the shards of the first boot;
 *   Nexus is killed with SIGKILL and started again `RUNS` times, recovering its root key from
 *   the Keepers each time (docs/architecture.md "The flows that matter").
 * Median and p90 (nearest rank) are reported with the load average at the start. Keeper memory
 * is `VmRSS` (/proc/<pid>/status) of the three compiled Keepers after the last recovery (each
 * holds a shard and has served mTLS), the largest of the three.
 * Targets: ≤ 150 ms for both start figures, ≤ 50 MiB for the Keeper.
 *
 * Runs standalone too: `bun tests/bench/lifecycle.ts [runs] [dir holding nexus and keeper]`.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type Cluster, startCluster } from '../support/cluster.ts';
import { ensureExecutables, PATH_WITHOUT_BUN } from './executables.ts';

const RUNS = 11;

export const LIFECYCLE_TARGETS = { startMs: 150, recoverMs: 150, keeperRssMib: 50 } as const;

export interface Spread {
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly runs: number;
}

export interface StartFigures extends Spread {
  /** Median CPU time (user + system) of the Nexus process by the time it was ready, ms. */
  readonly cpuMedianMs: number;
}

export interface LifecycleBench {
  /** Compiled Nexus, memory backend: spawn → `/ready` 200. */
  readonly start: StartFigures;
  /** Compiled Nexus, SQLite, after SIGKILL, Keepers holding shards: spawn → `/ready` 200. */
  readonly recover: StartFigures;
  /** Largest `VmRSS` of the three compiled Keepers holding a shard, in MiB. */
  readonly keeperRssMib: number;
  /** Its `RssAnon` (heap, stacks) and `RssFile` (pages of the executable and libraries), MiB. */
  readonly keeperRssAnonMib: number;
  readonly keeperRssFileMib: number;
  /** `os.loadavg()` at the start of the phase. */
  readonly loadAvg: readonly number[];
  /** Kept for BENCHMARKS.md history: `recover.medianMs`. */
  readonly startToReadyMs: number;
  /** Kept for BENCHMARKS.md history: `keeperRssMib`. */
  readonly keeperRssMb: number;
}

/** `VmRSS`, `RssAnon` and `RssFile` of `pid` in MiB. */
function rssMib(pid: number): { total: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const kb = Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)?.[1]);
    if (!Number.isFinite(kb)) throw new Error(`${name} not found`);
    return Math.round((kb / 1024) * 10) / 10;
  };
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

function spread(times: number[]): Spread {
  const sorted = [...times].sort((a, b) => a - b);
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return { medianMs: round(rank(0.5)), p90Ms: round(rank(0.9)), runs: sorted.length };
}

/** CPU time (user + system, ms; 10 ms resolution) `pid` has used so far. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Restarts Nexus `runs` times with `signal`, timing each spawn → `/ready` 200; also the CPU time
 * the process had used by then (less sensitive to the machine's load than the wall time).
 */
async function timeRestarts(cluster: Cluster, signal: NodeJS.Signals, runs: number) {
  const times: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < runs; run++) {
    await cluster.nexus.kill(signal);
    await Bun.sleep(100);
    const spawnedAt = await cluster.nexus.start();
    for (;;) {
      if ((await cluster.nexusReady()) === 200) break;
      if (!cluster.nexus.running()) throw new Error(`nexus exited:\n${cluster.nexus.errLog}`);
      if (performance.now() - spawnedAt > 15_000) throw new Error('nexus did not become ready');
      await Bun.sleep(2);
    }
    times.push(performance.now() - spawnedAt);
    cpu.push(cpuMs(cluster.nexus.pid()!));
  }
  return { ...spread(times), cpuMedianMs: spread(cpu).medianMs };
}

async function compiledCluster(dir: string, nexusEnv: Record<string, string> = {}) {
  return startCluster({
    keepers: 3,
    threshold: 2,
    logLevel: 'WARN',
    binaries: { nexus: join(dir, 'nexus'), keeper: join(dir, 'keeper') },
    nexusEnv: { PATH: PATH_WITHOUT_BUN, ...nexusEnv },
    keeperEnv: { PATH: PATH_WITHOUT_BUN },
  });
}

/** The compiled Nexus's start and recovery times and the compiled Keeper's memory (see header). */
export async function benchLifecycle(
  options: { runs?: number; binDir?: string } = {},
): Promise<LifecycleBench> {
  const runs = options.runs ?? RUNS;
  const loadAvg = loadavg().map((l) => Math.round(l * 100) / 100);
  const dir = options.binDir ?? (await ensureExecutables(['nexus', 'keeper'])).dir;

  const memory = await compiledCluster(dir, { SPIKE_NEXUS_BACKEND_STORE: 'memory' });
  let start: StartFigures;
  try {
    await memory.waitReady(15_000);
    start = await timeRestarts(memory, 'SIGTERM', runs);
  } finally {
    await memory.close();
  }

  const cluster = await compiledCluster(dir);
  try {
    await cluster.waitReady(15_000);
    await cluster.waitUntil(
      async () =>
        (await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)))).every((s) => s === 200),
      10_000,
      'every keeper holding a shard',
    );
    const recover = await timeRestarts(cluster, 'SIGKILL', runs);
    const [keeperRss] = cluster.keepers
      .map((k) => {
        const pid = k.pid();
        if (pid === undefined) throw new Error(`${k.name} is not running`);
        return rssMib(pid);
      })
      .sort((a, b) => b.total - a.total);
    const keeperRssMib = keeperRss!.total;
    return {
      start,
      recover,
      keeperRssMib,
      keeperRssAnonMib: keeperRss!.anon,
      keeperRssFileMib: keeperRss!.file,
      loadAvg,
      startToReadyMs: recover.medianMs,
      keeperRssMb: keeperRssMib,
    };
  } finally {
    await cluster.close();
  }
}

/** The lines `bun run bench` prints for this phase. */
export function lifecycleLines(result: LifecycleBench): string[] {
  const t = LIFECYCLE_TARGETS;
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const fmt = (s: StartFigures) =>
    `median ${s.medianMs.toFixed(0)} ms, p90 ${s.p90Ms.toFixed(0)} ms, CPU ${s.cpuMedianMs.toFixed(0)} ms`;
  return [
    `load average at start: ${result.loadAvg.join(' ')}`,
    `compiled Nexus start → ready (memory): ${fmt(result.start)} over ${result.start.runs} runs ` +
      `(target ≤ ${t.startMs} ms: ${mark(result.start.medianMs <= t.startMs)})`,
    `compiled Nexus SIGKILL → ready, Keepers holding shards (SQLite): ${fmt(result.recover)} ` +
      `over ${result.recover.runs} runs (target ≤ ${t.recoverMs} ms: ${mark(result.recover.medianMs <= t.recoverMs)})`,
    `compiled Keeper resident memory holding a shard: ${result.keeperRssMib.toFixed(1)} MiB ` +
      `(anonymous ${result.keeperRssAnonMib.toFixed(1)}, file-backed ${result.keeperRssFileMib.toFixed(1)}) ` +
      `(target ≤ ${t.keeperRssMib} MiB: ${mark(result.keeperRssMib <= t.keeperRssMib)})`,
  ];
}

if (import.meta.main) {
  const [runs, binDir] = process.argv.slice(2);
  const result = await benchLifecycle({
    runs: Number(runs ?? RUNS),
    ...(binDir === undefined ? {} : { binDir }),
  });
  for (const line of lifecycleLines(result)) console.log(line);
}
