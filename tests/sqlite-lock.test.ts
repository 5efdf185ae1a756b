/**
 * Issue 11, finding 4 (a locked SQLite file), black-box: a real Nexus process with the sqlite
 * backend (and real Keepers), and another process (tests/fixtures/hold-sqlite-lock.ts,
 * `BEGIN IMMEDIATE` through bun:sqlite, as a backup job or an operator's `sqlite3` would) holding
 * the write lock of Nexus's `spike.db` for about 6 s.
 *
 * Required (issue 11): the event loop never blocks on the lock (`/health` and secret reads keep
 * answering, reads served from the WAL: 200 within 1 s); a write during the lock answers quickly
 * (≤ 1.5 s) with 503, a `Retry-After` header and `{"err":"state_not_ready"}`, never 500; once the
 * lock is released, writes succeed.
 */
import { afterAll, beforeAll, describe, it, setDefaultTimeout } from 'bun:test';
import { join } from 'node:path';
import { type Subprocess, spawn } from 'bun';
import {
  call,
  eventually,
  putSecret,
  Requirements,
  show,
  type WireAnswer,
  waitKeepersFilled,
} from './hardening/support.ts';
import { type Cluster, type NexusClient, startCluster } from './support/cluster.ts';
import { cleanEnv } from './support/process.ts';

setDefaultTimeout(180_000);

const HOLDER = join(import.meta.dir, 'fixtures', 'hold-sqlite-lock.ts');
const PUT = '/v1/store/secrets';
const GET = '/v1/store/secrets?action=get';
/** How long the probes run while the lock is held (the lock is released right after). */
const PROBE_WINDOW_MS = 5_000;
const READ_WITHIN_MS = 1_000;
const BUSY_WRITE_WITHIN_MS = 1_500;

let cluster: Cluster;
let locker: Subprocess<'pipe', 'pipe', 'pipe'> | undefined;

/** Reads `stream` until a line equal to `line` arrives; throws after `timeoutMs`. */
async function waitLine(
  stream: ReadableStream<Uint8Array>,
  line: string,
  timeoutMs: number,
): Promise<void> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the lock holder did not print "${line}" within ${timeoutMs} ms`);
      seen += decoder.decode(value, { stream: true });
      if (seen.split('\n').includes(line)) return;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/** `GET /health` on Nexus's plain health port (same process, same event loop), timed. */
async function health(): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  try {
    const response = await fetch(`http://127.0.0.1:${cluster.nexusHealthPort}/health`, {
      signal: AbortSignal.timeout(10_000),
    });
    await response.arrayBuffer();
    return { status: response.status, ms: performance.now() - started };
  } catch {
    return { status: 0, ms: performance.now() - started };
  }
}

beforeAll(async () => {
  cluster = await startCluster({ keepers: 2, threshold: 2 });
  await cluster.waitReady(60_000);
  await waitKeepersFilled(cluster);
  await putSecret(cluster, 'lock/read', { v: 'before' });
  await putSecret(cluster, 'lock/write', { v: 'before' });
}, 180_000);

afterAll(async () => {
  if (locker !== undefined && locker.exitCode === null) {
    locker.kill('SIGKILL');
    await locker.exited;
  }
  await cluster?.close();
});

describe('issue 11 finding 4: another process holds the SQLite write lock', () => {
  it('reads and /health keep answering, writes get a quick 503 with Retry-After, and succeed after', async () => {
    const req = new Requirements('finding 4 (locked SQLite)');
    const writer: NexusClient = await cluster.client('pilot');
    const reader: NexusClient = await cluster.client('pilot');
    const writes: WireAnswer[] = [];
    const reads: WireAnswer[] = [];
    const probes: { status: number; ms: number }[] = [];
    try {
      locker = spawn([process.execPath, HOLDER], {
        env: {
          ...cleanEnv(),
          DB_PATH: join(cluster.dataDir, 'spike.db'),
          HOLD_MAX_MS: '20000',
        },
        stdin: 'pipe',
        stdout: 'pipe',
        stderr: 'pipe',
      });
      await waitLine(locker.stdout, 'locked', 20_000);
      const lockedAt = performance.now();

      // Writes during the lock, one after another (at most three, all inside the window).
      const writing = (async () => {
        for (let n = 0; n < 3 && performance.now() - lockedAt < PROBE_WINDOW_MS - 1_000; n++) {
          writes.push(
            await call(writer, PUT, { path: 'lock/write', values: { v: `during-${n}` } }),
          );
          await Bun.sleep(200);
        }
      })();
      // Reads and /health while the writes wait on the lock.
      await Bun.sleep(150);
      while (performance.now() - lockedAt < PROBE_WINDOW_MS) {
        const [probe, read] = await Promise.all([
          health(),
          call(reader, GET, { path: 'lock/read' }),
        ]);
        probes.push(probe);
        reads.push(read);
        await Bun.sleep(250);
      }
      await writing;
    } finally {
      // Release the lock (≈ 5-6 s after it was taken) and wait for the holder to commit.
      locker?.stdin.end();
      if (locker !== undefined) {
        await Promise.race([locker.exited, Bun.sleep(15_000)]);
      }
    }

    req.need(writes.length > 0, 'no write was attempted during the lock');
    for (const [n, w] of writes.entries()) {
      req.need(w.status !== 500, `write ${n + 1} during the lock must never be 500 (${show(w)})`);
      req.need(
        w.status === 503 && w.json?.err === 'state_not_ready',
        `write ${n + 1} during the lock must answer 503 {"err":"state_not_ready"}, got ${show(w)} ${w.text}`,
      );
      req.need(
        /^[1-9][0-9]*$/.test(w.headers['retry-after'] ?? ''),
        `write ${n + 1} during the lock must carry Retry-After: <seconds>, got ${JSON.stringify(w.headers['retry-after'])}`,
      );
      req.need(
        w.ms <= BUSY_WRITE_WITHIN_MS,
        `write ${n + 1} during the lock must answer within ${BUSY_WRITE_WITHIN_MS} ms, took ${Math.round(w.ms)} ms`,
      );
    }
    const slowReads = reads.filter(
      (r) => r.status !== 200 || r.json?.data?.v !== 'before' || r.ms > READ_WITHIN_MS,
    );
    req.need(
      slowReads.length === 0,
      `secret reads during the lock must answer 200 (from the WAL) within ${READ_WITHIN_MS} ms; ` +
        `${slowReads.length} of ${reads.length} did not: ${slowReads.map(show).join(', ')}`,
    );
    const slowProbes = probes.filter((p) => p.status !== 200 || p.ms > READ_WITHIN_MS);
    req.need(
      slowProbes.length === 0,
      `the event loop must never block: /health during the lock must answer 200 within ` +
        `${READ_WITHIN_MS} ms; ${slowProbes.length} of ${probes.length} did not ` +
        `(${slowProbes.map((p) => `${p.status} after ${Math.round(p.ms)} ms`).join(', ')})`,
    );
    req.need(
      probes.length >= 5,
      `a free event loop answers a probe every ~0.3 s during the ${PROBE_WINDOW_MS / 1000} s ` +
        `lock window; only ${probes.length} probes completed`,
    );

    // After the release: writes succeed (a short retry on 503 allowed, as Retry-After asks).
    let after: WireAnswer | undefined;
    const written = await eventually(
      async () => {
        after = await call(writer, PUT, { path: 'lock/write', values: { v: 'after' } });
        return after.status === 200;
      },
      10_000,
      300,
    );
    req.need(
      written,
      `after the lock is released a write must succeed, got ${after === undefined ? 'nothing' : show(after)}`,
    );
    if (written) {
      const read = await call(reader, GET, { path: 'lock/write' });
      req.need(
        read.status === 200 && read.json?.data?.v === 'after',
        `the write after the release must read back, got ${show(read)}`,
      );
    }
    await writer.close();
    await reader.close();
    req.done();
  });
});
