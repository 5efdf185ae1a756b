/**
 * `bun run bench`: every performance figure of BENCHMARKS.md, in one run, against a baseline
 * measured in the same run.
 *
 * Every server runs in its own process. Two load generators, both closed loops over real mTLS
 * with client certificates: the neutral one is Go (tests/bench/go/loadgen, built here with
 * `go build`; HTTP/2 with 4 connections × 16 streams, HTTP/1.1 with 64 clients), the Bun one
 * (HTTP/2, 4 sessions × 16 in flight, in this process) stays as a cross-check.
 *
 * Phases:
 *   echo      three echo servers, interleaved for --rounds rounds (median reported):
 *             Go net/http (tests/bench/go/echo), bare node:http2 (tests/bench/server.ts bare) and
 *             our transport (src/runtime/tls/server.ts with an echo handler); each measured by
 *             the Go generator over HTTP/2 and HTTP/1.1, the Bun ones by the Bun generator too
 *   nexus     Nexus secret get on SQLite (caller a workload allowed by 1 policy; Go h2, Go h1,
 *             Bun h2), the same with 1,000 policies stored, and a durable secret put (superuser)
 *   store     the store's cost as it grows (tests/bench/store-scale.ts, its own process): get,
 *             list and RSS with 100 and 100,000 secrets of 10 versions, 1,000 policies in a row
 *   life      the lifecycle and executable figures (tests/bench/lifecycle.ts, executables.ts)
 *
 * Tools beside it: tests/bench/ab.ts (interleaved A/B of checkouts' bench servers, CPU per
 * request) and tests/bench/profile.ts (a CPU profile of one bench server under load).
 *
 * Options: --seconds N (default 5 per phase), --rounds N (echo rounds, default 3),
 * --phases echo,nexus,life (default all), --json (machine-readable summary on the last line).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import { join } from 'node:path';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { benchExecutables } from './executables.ts';
import { benchLifecycle } from './lifecycle.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const seconds = Number(option('--seconds', '5')) || 5;
const rounds = Math.max(1, Number(option('--rounds', '3')) || 3);
const phases = new Set(option('--phases', 'echo,nexus,store,life').split(','));
const GO_H2 = { conns: 4, streams: 16 };
const GO_H1_CLIENTS = 64;
const SESSIONS = 4;
const IN_FLIGHT_PER_SESSION = 16;

interface PhaseResult {
  name: string;
  requests: number;
  errors: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Server CPU time (user + system) per answered request, warm-up included, in µs. */
  cpuUs?: number;
}

/** CPU time (user + system) of a process so far, in µs (/proc/<pid>/stat, clock ticks). */
function cpuUsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

const root = join(import.meta.dir, '..', '..');
const loadAtStart = os.loadavg();
const work = mkdtempSync(join(os.tmpdir(), 'spike-bench-'));
const issuer = await startDevIssuer({
  dir: join(work, 'sockets'),
  logger: { info: () => {}, warn: () => {} },
});

interface Running {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function startServer(argv: string[]): Promise<Running> {
  return startProcess(['bun', join(root, 'tests/bench/server.ts'), ...argv]);
}

/** Spawns a server that prints `READY <port>` on stdout once it listens. */
async function startProcess(cmd: string[]): Promise<Running> {
  const proc = Bun.spawn(cmd, {
    env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus') },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = proc.stdout.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench server exited early: ${text}`);
    text += new TextDecoder().decode(value);
    const m = /READY (\d+)/.exec(text);
    if (m) {
      reader.releaseLock();
      return {
        port: Number(m[1]),
        pid: proc.pid,
        async stop() {
          proc.kill('SIGTERM');
          await proc.exited;
        },
      };
    }
  }
}

async function sourceFor(name: string): Promise<X509Source> {
  const source = createX509Source({ address: issuer.addressFor(name) });
  await source.ready();
  return source;
}

/** PEM files of an identity's SVID and bundle, for the Go programs (private temp dir). */
interface PemFiles {
  cert: string;
  key: string;
  ca: string;
}

async function pemFilesFor(name: string, source: X509Source): Promise<PemFiles> {
  const dir = join(work, 'pem', name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const material = tlsMaterialOf(await source.ready());
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: join(dir, 'ca.pem') };
  writeFileSync(files.cert, material.cert);
  writeFileSync(files.key, material.key, { mode: 0o600 });
  chmodSync(files.key, 0o600);
  writeFileSync(files.ca, material.ca.join(''));
  return files;
}

/** `go build` of the Go load generator and echo server into the work directory. */
async function buildGo(): Promise<{ loadgen: string; echo: string }> {
  const out = join(work, 'go-bin');
  mkdirSync(out, { recursive: true });
  const proc = Bun.spawn(['go', 'build', '-o', `${out}/`, './loadgen', './echo'], {
    cwd: join(import.meta.dir, 'go'),
    env: { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
    stdout: 'inherit',
    stderr: 'inherit',
  });
  if ((await proc.exited) !== 0) throw new Error('go build of tests/bench/go failed');
  return { loadgen: join(out, 'loadgen'), echo: join(out, 'echo') };
}

/** One phase measured by the Go generator (see tests/bench/go/loadgen/main.go). */
async function goLoad(
  name: string,
  server: Running,
  proto: 'h2' | 'h1',
  identity: PemFiles,
  path: string,
  body: string,
): Promise<PhaseResult> {
  const proc = Bun.spawn(
    [
      go.loadgen,
      `-url=https://127.0.0.1:${server.port}${path}`,
      `-proto=${proto}`,
      `-conns=${GO_H2.conns}`,
      `-streams=${GO_H2.streams}`,
      `-clients=${GO_H1_CLIENTS}`,
      `-seconds=${seconds}`,
      '-warmup=1',
      `-body=${body}`,
      `-cert=${identity.cert}`,
      `-key=${identity.key}`,
      `-ca=${identity.ca}`,
    ],
    { stdout: 'pipe', stderr: 'inherit' },
  );
  const cpu0 = cpuUsOf(server.pid);
  const text = await new Response(proc.stdout).text();
  const cpu1 = cpuUsOf(server.pid);
  if ((await proc.exited) !== 0) throw new Error(`loadgen failed: ${text}`);
  const { total, ...r } = JSON.parse(text.trim().split('\n').at(-1) ?? '{}') as Omit<
    PhaseResult,
    'name'
  > & { total: number };
  return { name, ...r, cpuUs: (cpu1 - cpu0) / Math.max(1, total) };
}

/** Closed-loop load: SESSIONS connections × IN_FLIGHT_PER_SESSION outstanding requests each. */
async function load(
  name: string,
  port: number,
  source: X509Source,
  request: (i: number) => { path: string; body: string },
): Promise<PhaseResult> {
  const material = tlsMaterialOf((await source.ready()) as never);
  const sessions = Array.from({ length: SESSIONS }, () =>
    http2.connect(`https://127.0.0.1:${port}`, {
      ...material,
      // The server is our own bench process on loopback; identity checks are covered by tests.
      checkServerIdentity: () => undefined,
    }),
  );
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  let measuring = false;
  let stop = false;
  const one = (session: http2.ClientHttp2Session) =>
    new Promise<void>((resolve) => {
      const { path, body } = request(counter++);
      const t0 = performance.now();
      const stream = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/json',
        // As Go's client and ours send it for a body of known size.
        'content-length': String(Buffer.byteLength(body)),
      });
      let status = 0;
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', () => {});
      stream.on('end', () => {
        if (measuring) {
          if (status === 200) latencies.push(performance.now() - t0);
          else errors++;
        }
        resolve();
      });
      stream.on('error', () => {
        if (measuring) errors++;
        resolve();
      });
      stream.end(body);
    });
  const worker = async (session: http2.ClientHttp2Session) => {
    while (!stop) await one(session);
  };
  const workers = sessions.flatMap((s) =>
    Array.from({ length: IN_FLIGHT_PER_SESSION }, () => worker(s)),
  );
  await Bun.sleep(1000); // warm-up
  measuring = true;
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(workers);
  for (const s of sessions) s.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return {
    name,
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50ms: pct(0.5),
    p99ms: pct(0.99),
  };
}

const results: PhaseResult[] = [];
const pilot = await sourceFor('pilot');
const workload = await sourceFor('workload');
const extra: Record<string, unknown> = {};
const go = await buildGo();
const pem = {
  nexus: await pemFilesFor('nexus', await sourceFor('nexus')),
  pilot: await pemFilesFor('pilot', pilot),
  workload: await pemFilesFor('workload', workload),
};
const ECHO_BODY = '{"path":"bench/secret"}';

/** The median (by requests/s) of the rounds of one phase. */
function median(name: string, runs: PhaseResult[]): PhaseResult {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  return { ...sorted[Math.floor(sorted.length / 2)]!, name };
}

if (phases.has('echo')) {
  const servers: { label: string; start: () => Promise<Running>; bun: boolean }[] = [
    {
      label: 'Go net/http echo',
      start: () =>
        startProcess([
          go.echo,
          `-cert=${pem.nexus.cert}`,
          `-key=${pem.nexus.key}`,
          `-ca=${pem.nexus.ca}`,
        ]),
      bun: false,
    },
    { label: 'bare node:http2 echo', start: () => startServer(['bare']), bun: true },
    { label: 'transport echo', start: () => startServer(['echo']), bun: true },
  ];
  const runs = new Map<string, PhaseResult[]>();
  const add = (r: PhaseResult) => runs.set(r.name, [...(runs.get(r.name) ?? []), r]);
  for (let round = 0; round < rounds; round++) {
    for (const s of servers) {
      const server = await s.start();
      add(await goLoad(`${s.label} (Go h2)`, server, 'h2', pem.workload, '/echo', ECHO_BODY));
      add(await goLoad(`${s.label} (Go h1)`, server, 'h1', pem.workload, '/echo', ECHO_BODY));
      if (s.bun) {
        add(
          await load(`${s.label} (Bun h2)`, server.port, workload, () => ({
            path: '/echo',
            body: ECHO_BODY,
          })),
        );
      }
      await server.stop();
    }
  }
  for (const [name, list] of runs) results.push(median(name, list));
}

if (phases.has('nexus')) {
  for (const policies of [1, 1000]) {
    const dir = mkdtempSync(join(work, 'nexus-'));
    const server = await startServer(['nexus', dir, String(policies)]);
    const label = `get (${policies} ${policies === 1 ? 'policy' : 'policies'})`;
    const path = '/v1/store/secrets?action=get';
    results.push(await goLoad(`${label} (Go h2)`, server, 'h2', pem.workload, path, ECHO_BODY));
    if (policies === 1) {
      results.push(await goLoad(`${label} (Go h1)`, server, 'h1', pem.workload, path, ECHO_BODY));
    }
    results.push(
      await load(`${label} (Bun h2)`, server.port, workload, () => ({ path, body: ECHO_BODY })),
    );
    if (policies === 1) {
      results.push(
        await load('put (SQLite, durable) (Bun h2)', server.port, pilot, (i) => ({
          path: '/v1/store/secrets',
          body: JSON.stringify({ path: `bench/put/${i % 64}`, values: { value: `v${i}` } }),
        })),
      );
    }
    await server.stop();
  }
}

const rpsOf = (name: string) => results.find((r) => r.name === name)?.rps ?? NaN;
const ratio = (a: string, b: string) => (rpsOf(a) / rpsOf(b)).toFixed(2);
console.log(`\nSPIKE benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, bun ${Bun.version}`,
);
console.log(`load average at start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);
console.log(
  `load: Go generator h2 ${GO_H2.conns} connections × ${GO_H2.streams} streams, h1 ${GO_H1_CLIENTS} clients; Bun generator h2 ${SESSIONS} sessions × ${IN_FLIGHT_PER_SESSION} in flight; ${seconds} s per phase after 1 s warm-up, loopback; echo phases: median of ${rounds} interleaved rounds\n`,
);
console.log('| phase | requests/s | p50 ms | p99 ms | errors | server CPU µs/request |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50ms.toFixed(2)} | ${r.p99ms.toFixed(2)} | ${r.errors} | ${r.cpuUs === undefined ? '—' : r.cpuUs.toFixed(0)} |`,
  );
}
console.log('');
if (phases.has('echo')) {
  for (const gen of ['Go h2', 'Go h1', 'Bun h2']) {
    console.log(
      `transport / bare node:http2 (${gen}) = ${ratio(`transport echo (${gen})`, `bare node:http2 echo (${gen})`)} (target ≥ 0.9)`,
    );
  }
  for (const gen of ['Go h2', 'Go h1']) {
    console.log(
      `bare node:http2 / Go echo (${gen}) = ${ratio(`bare node:http2 echo (${gen})`, `Go net/http echo (${gen})`)}`,
    );
  }
}
if (phases.has('echo') && phases.has('nexus')) {
  for (const gen of ['Go h2', 'Go h1']) {
    console.log(
      `get / Go echo (${gen}) = ${ratio(`get (1 policy) (${gen})`, `Go net/http echo (${gen})`)} (target ≥ ${gen === 'Go h2' ? '0.60' : '0.55'})`,
    );
  }
}
if (phases.has('nexus')) {
  const get = rpsOf('get (1 policy) (Bun h2)');
  const get1k = rpsOf('get (1000 policies) (Bun h2)');
  console.log(`put = ${rpsOf('put (SQLite, durable) (Bun h2)').toFixed(0)}/s (Bun h2)`);
  console.log(
    `cost of 1,000 policies on get = ${(((get - get1k) / get) * 100).toFixed(1)} % (Bun h2; target < 10 %)`,
  );
}

if (phases.has('store')) {
  console.log('');
  const scale = Bun.spawn([process.execPath, join(import.meta.dir, 'store-scale.ts')], {
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const text = await new Response(scale.stdout).text();
  await scale.exited;
  const lines = text.trim().split('\n');
  for (const line of lines.slice(0, -1)) console.log(line);
  try {
    extra.store = JSON.parse(lines.at(-1) ?? 'null');
  } catch {
    console.log('store phase: no figures');
  }
}

if (phases.has('life')) {
  const life = await benchLifecycle();
  extra.lifecycle = life;
  console.log(
    `\nNexus start → ready with Keepers holding shards (from source): ${life.startToReadyMs.toFixed(0)} ms (target < 1,000 ms)`,
  );
  console.log(
    `Keeper resident memory holding a shard (from source, bun src/keeper/main.ts): ${life.keeperRssMb.toFixed(1)} MiB`,
  );
  const exe = await benchExecutables();
  extra.executables = exe;
  console.log('\nexecutables (bun build --compile):');
  for (const [name, mb] of Object.entries(exe.sizesMb))
    console.log(`  dist/${name}: ${mb.toFixed(1)} MB`);
  console.log(`compiled Keeper start → ready: ${exe.keeperStartToReadyMs.toFixed(0)} ms`);
  console.log(
    `compiled Keeper resident memory after start: ${exe.keeperRssAfterStartMb.toFixed(1)} MiB (target < 60 MB)`,
  );
  console.log(
    `compiled Keeper resident memory holding a shard, after serving mTLS: ${exe.keeperRssMb.toFixed(1)} MiB`,
  );
}

await pilot.close();
await workload.close();
await issuer.stop();
rmSync(work, { recursive: true, force: true });
if (args.includes('--json')) console.log(JSON.stringify({ results, ...extra }));
process.exit(0);
