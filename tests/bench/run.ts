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
 *   nexus     on one Nexus (SQLite, 1 policy), interleaved for --rounds rounds (median): the
 *             secret get through the SPIKE API and `GET /v1/secret/data/…` through the Vault API
 *             (caller a workload allowed by the policy; Go h2, Go h1, Bun h2), and durable puts
 *             through both (superuser, Bun h2); then the SPIKE get with 1,000 policies stored
 *   style     the HTTP-style comparison (tests/bench/http-style.ts, in-process, no sockets)
 *   store     the store's cost as it grows (tests/bench/store-scale.ts, its own process): get,
 *             list and RSS with 100 and 100,000 secrets of 10 versions, 1,000 policies in a row
 *   life      the lifecycle and executable figures (tests/bench/lifecycle.ts, executables.ts)
 *
 * Tools beside it: tests/bench/ab.ts (interleaved A/B of checkouts' bench servers, CPU per
 * request) and tests/bench/profile.ts (a CPU profile of one bench server under load).
 *
 * Options: --seconds N (default 5 per phase), --rounds N (echo rounds, default 3),
 * --phases echo,nexus,style,life (default all), --json (machine-readable summary on the last line).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { bunLoad, IN_FLIGHT_PER_SESSION, type PhaseResult, SESSIONS } from './bun-load.ts';
import { benchExecutables } from './executables.ts';
import { benchLifecycle, lifecycleLines } from './lifecycle.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const seconds = Number(option('--seconds', '5')) || 5;
const rounds = Math.max(1, Number(option('--rounds', '3')) || 3);
const phases = new Set(option('--phases', 'echo,nexus,store,style,life').split(','));
const GO_H2 = { conns: 4, streams: 16 };
const GO_H1_CLIENTS = 64;

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
  method = 'POST',
): Promise<PhaseResult> {
  const proc = Bun.spawn(
    [
      go.loadgen,
      `-url=https://127.0.0.1:${server.port}${path}`,
      `-method=${method}`,
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

const load = (...a: [string, number, X509Source, Parameters<typeof bunLoad>[3]]) =>
  bunLoad(...a, seconds);
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

/**
 * The SPIKE API and the Vault KV v2 API on one Nexus (1 policy), interleaved for --rounds rounds
 * (median): the same secret read as SPIKE `get` and as Vault `GET data/`, and durable writes as
 * SPIKE `put` and Vault `PUT data/` (superuser, 64 rotating paths each).
 */
async function benchApis(server: Running): Promise<void> {
  const spikeGet = '/v1/store/secrets?action=get';
  const vaultGet = '/v1/secret/data/bench/secret';
  const runs = new Map<string, PhaseResult[]>();
  const add = (r: PhaseResult) => runs.set(r.name, [...(runs.get(r.name) ?? []), r]);
  for (let round = 0; round < rounds; round++) {
    for (const proto of ['h2', 'h1'] as const) {
      const gen = proto === 'h2' ? 'Go h2' : 'Go h1';
      add(
        await goLoad(`get (1 policy) (${gen})`, server, proto, pem.workload, spikeGet, ECHO_BODY),
      );
      add(await goLoad(`vault get (${gen})`, server, proto, pem.workload, vaultGet, '', 'GET'));
    }
    add(
      await load('get (1 policy) (Bun h2)', server.port, workload, () => ({
        path: spikeGet,
        body: ECHO_BODY,
      })),
    );
    add(
      await load('vault get (Bun h2)', server.port, workload, () => ({
        path: vaultGet,
        body: '',
        method: 'GET',
      })),
    );
    add(
      await load('put (SQLite, durable) (Bun h2)', server.port, pilot, (i) => ({
        path: '/v1/store/secrets',
        body: JSON.stringify({ path: `bench/put/${i % 64}`, values: { value: `v${i}` } }),
      })),
    );
    add(
      await load('vault put (SQLite, durable) (Bun h2)', server.port, pilot, (i) => ({
        path: `/v1/secret/data/bench/vput/${i % 64}`,
        body: JSON.stringify({ data: { value: `v${i}` } }),
        method: 'PUT',
      })),
    );
  }
  for (const [name, list] of runs) results.push(median(name, list));
}

if (phases.has('nexus')) {
  for (const policies of [1, 1000]) {
    const dir = mkdtempSync(join(work, 'nexus-'));
    const server = await startServer(['nexus', dir, String(policies)]);
    if (policies === 1) {
      await benchApis(server);
    } else {
      const path = '/v1/store/secrets?action=get';
      const label = 'get (1000 policies)';
      results.push(await goLoad(`${label} (Go h2)`, server, 'h2', pem.workload, path, ECHO_BODY));
      results.push(
        await load(`${label} (Bun h2)`, server.port, workload, () => ({ path, body: ECHO_BODY })),
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
  `load: Go generator h2 ${GO_H2.conns} connections × ${GO_H2.streams} streams, h1 ${GO_H1_CLIENTS} clients; Bun generator h2 ${SESSIONS} sessions × ${IN_FLIGHT_PER_SESSION} in flight; ${seconds} s per phase after 1 s warm-up, loopback; echo and API phases: median of ${rounds} interleaved rounds\n`,
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
  for (const gen of ['Go h2', 'Go h1', 'Bun h2']) {
    const spike = results.find((r) => r.name === `get (1 policy) (${gen})`);
    const vault = results.find((r) => r.name === `vault get (${gen})`);
    const cpu =
      spike?.cpuUs === undefined || vault?.cpuUs === undefined
        ? ''
        : `, server CPU/request vault / spike = ${(vault.cpuUs / spike.cpuUs).toFixed(2)}`;
    console.log(
      `vault get / spike get (${gen}) = ${ratio(`vault get (${gen})`, `get (1 policy) (${gen})`)} requests/s${cpu} (target: vault costs ≤ 10 % more)`,
    );
  }
  console.log(
    `vault put / spike put (Bun h2) = ${ratio('vault put (SQLite, durable) (Bun h2)', 'put (SQLite, durable) (Bun h2)')}`,
  );
  console.log(
    `cost of 1,000 policies on get = ${(((get - get1k) / get) * 100).toFixed(1)} % (Bun h2; target < 10 %)`,
  );
}

if (phases.has('style')) {
  // The HTTP-style comparison of docs/architecture.md decision 2, in its own process.
  const proc = Bun.spawn(
    [
      'bun',
      join(import.meta.dir, 'http-style.ts'),
      '--seconds',
      String(seconds),
      '--rounds',
      String(Math.max(rounds, 3)),
    ],
    { stdout: 'pipe', stderr: 'inherit' },
  );
  const text = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error('tests/bench/http-style.ts failed');
  console.log(`\nHTTP style, secret get in-process (tests/bench/http-style.ts): ${text.trimEnd()}`);
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
  console.log('\nstart-up (compiled executables, issue 12 criterion 5):');
  for (const line of lifecycleLines(life)) console.log(`  ${line}`);
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
