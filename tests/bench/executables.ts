/**
 * The compiled executables (`bun run build`, src/build.ts) for tests and for `bun run bench`:
 * `ensureExecutables()` builds `dist/` when an executable is missing or older than the sources,
 * and `benchExecutables()` measures the figures BENCHMARKS.md reports for them.
 *
 * Method of `benchExecutables()`:
 * - sizes: the files `dist/nexus`, `dist/keeper`, `dist/spike` in MB (2^20 bytes);
 * - Keeper start-to-ready: `dist/keeper` is spawned (with a PATH without Bun, from an empty
 *   directory) against the development issuer; the time is taken from just before the spawn to
 *   the first answer on its plain health port, which opens only after the mTLS listener is up
 *   (src/keeper/main.ts), polled every 5 ms; median of 5 runs;
 * - Keeper resident memory: `VmRSS` (/proc/<pid>/status) of the last run's Keeper after a Nexus
 *   identity has stored a shard envelope in it over mTLS and 500 ms have passed;
 * - Keeper resident memory after start: `VmRSS` of a `dist/keeper` in its default configuration
 *   (no health port), 1.5 s after it logged that it is ready for shards; median of 3 runs.
 *
 * Runs standalone too: `bun tests/bench/executables.ts`.
 */
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BuildTarget,
  buildExecutables,
  DEFAULT_TARGETS,
  PROJECT_ROOT,
} from '../../src/build.ts';
import { authorizeMatching } from '../../src/core/spiffe/authorizer.ts';
import { hasRole } from '../../src/core/spike/roles.ts';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { createMtlsClient } from '../../src/runtime/tls/client.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { freePort } from '../support/cluster.ts';

export const DIST = join(PROJECT_ROOT, 'dist');
/** A PATH without Bun: the executables must not need it. */
export const PATH_WITHOUT_BUN = '/usr/bin:/bin';

const RUNS = 5;

/** The newest modification time of the sources an executable is built from. */
function newestSourceMs(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const dir of ['src', 'cli', 'schema']) walk(join(PROJECT_ROOT, dir));
  for (const file of ['package.json', 'bun.lock']) {
    newest = Math.max(newest, statSync(join(PROJECT_ROOT, file)).mtimeMs);
  }
  return newest;
}

/**
 * Makes sure `dist/<target>` exists and is newer than every source file, building the missing or
 * stale ones. Builds go to a private directory first and are renamed into `dist/`, so a process
 * running an older executable (another test run) is never handed a half-written file.
 */
export async function ensureExecutables(
  targets: readonly BuildTarget[] = DEFAULT_TARGETS,
): Promise<{ dir: string; built: BuildTarget[] }> {
  const newest = newestSourceMs();
  const stale = targets.filter((name) => {
    try {
      return statSync(join(DIST, name)).mtimeMs < newest;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    mkdirSync(DIST, { recursive: true });
    const scratch = mkdtempSync(join(DIST, '.build-'));
    try {
      await buildExecutables({ outDir: scratch, targets: stale });
      for (const name of stale) renameSync(join(scratch, name), join(DIST, name));
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  return { dir: DIST, built: stale };
}

/** `dist/keeper` from an empty directory with a PATH without Bun. */
function spawnKeeper<Out extends 'ignore' | 'pipe'>(
  dir: string,
  work: string,
  socket: string,
  stdout: Out,
  env: Record<string, string>,
) {
  return Bun.spawn([join(dir, 'keeper')], {
    cwd: work,
    env: { PATH: PATH_WITHOUT_BUN, HOME: work, SPIFFE_ENDPOINT_SOCKET: socket, ...env },
    stdin: 'ignore',
    stdout,
    stderr: 'ignore',
  });
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error('VmRSS not found');
  return kb / 1024;
}

async function answers(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/ready`, {
      signal: AbortSignal.timeout(500),
    });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

const hex = (bytes: number) =>
  Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');

export interface ExecutablesBench {
  /** Executable name → size in MB. */
  readonly sizesMb: Record<string, number>;
  /** Median spawn → first health answer of `dist/keeper`, in ms. */
  readonly keeperStartToReadyMs: number;
  /** `VmRSS` of `dist/keeper` holding one shard, in MB. */
  readonly keeperRssMb: number;
  /** `VmRSS` of `dist/keeper` after start, default configuration, in MB. */
  readonly keeperRssAfterStartMb: number;
}

/** Sizes of the executables and the compiled Keeper's start-up time and memory (see header). */
export async function benchExecutables(): Promise<ExecutablesBench> {
  const { dir } = await ensureExecutables();
  const sizesMb: Record<string, number> = {};
  for (const name of DEFAULT_TARGETS) {
    sizesMb[name] = Math.round((statSync(join(dir, name)).size / 2 ** 20) * 10) / 10;
  }

  const work = mkdtempSync(join(tmpdir(), 'spike-bench-exe-'));
  const issuer = await startDevIssuer({
    dir: join(work, 'sockets'),
    keepers: 1,
    logger: { info: () => {}, warn: () => {} },
  });
  const times: number[] = [];
  let keeperRssMb = 0;
  try {
    for (let run = 0; run < RUNS; run++) {
      const [tlsPort, healthPort] = [await freePort(), await freePort()];
      const started = performance.now();
      const proc = spawnKeeper(dir, work, issuer.addressFor('keeper-1'), 'ignore', {
        SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${tlsPort}`,
        SPIKE_KEEPER_HEALTH_PORT: `127.0.0.1:${healthPort}`,
      });
      try {
        while (!(await answers(healthPort))) {
          if (proc.exitCode !== null) throw new Error(`dist/keeper exited ${proc.exitCode}`);
          if (performance.now() - started > 20_000) throw new Error('dist/keeper did not start');
          await Bun.sleep(5);
        }
        times.push(performance.now() - started);
        if (run === RUNS - 1) {
          const source = createX509Source({
            address: issuer.addressFor('nexus'),
            logger: { info: () => {}, warn: () => {}, error: () => {} },
          });
          await source.ready();
          const client = createMtlsClient({
            source,
            authorizer: authorizeMatching(
              (id) => hasRole(id.toString(), 'keeper', ['spike.ist']),
              'a keeper',
            ),
            baseUrl: `https://127.0.0.1:${tlsPort}`,
          });
          const envelope = {
            version: 1,
            index: 1,
            generation: hex(16),
            kcv: hex(16),
            shard: hex(33),
          };
          const response = await client.request('/v1/store/contribute', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(envelope),
          });
          await client.close();
          await source.close();
          if (response.status !== 200) throw new Error(`contribute answered ${response.status}`);
          await Bun.sleep(500);
          keeperRssMb = Math.round(rssMb(proc.pid) * 10) / 10;
        }
      } finally {
        proc.kill('SIGTERM');
        await proc.exited;
      }
    }
  } finally {
    await issuer.stop();
    rmSync(work, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return {
    sizesMb,
    keeperStartToReadyMs: Math.round(times[Math.floor(times.length / 2)]! * 10) / 10,
    keeperRssMb,
    keeperRssAfterStartMb: await keeperRssAfterStart(dir),
  };
}

/** Median `VmRSS` (MB) of a default-configured `dist/keeper` 1.5 s after it is ready. */
async function keeperRssAfterStart(dir: string): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'spike-bench-rss-'));
  const issuer = await startDevIssuer({
    dir: join(work, 'sockets'),
    keepers: 1,
    logger: { info: () => {}, warn: () => {} },
  });
  const figures: number[] = [];
  try {
    for (let run = 0; run < 3; run++) {
      const proc = spawnKeeper(dir, work, issuer.addressFor('keeper-1'), 'pipe', {
        SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${await freePort()}`,
        SPIKE_SYSTEM_LOG_LEVEL: 'INFO',
      });
      try {
        const reader = proc.stdout.getReader();
        let text = '';
        while (!text.includes('keeper ready for shards')) {
          const { value, done } = await reader.read();
          if (done) throw new Error('dist/keeper exited before it was ready');
          text += new TextDecoder().decode(value);
        }
        reader.releaseLock();
        await Bun.sleep(1500);
        figures.push(rssMb(proc.pid));
      } finally {
        proc.kill('SIGTERM');
        await proc.exited;
      }
    }
  } finally {
    await issuer.stop();
    rmSync(work, { recursive: true, force: true });
  }
  figures.sort((a, b) => a - b);
  return Math.round(figures[1]! * 10) / 10;
}

if (import.meta.main) {
  console.log(JSON.stringify(await benchExecutables(), null, 2));
}
