/**
 * `bun run bench`: every performance figure of BENCHMARKS.md, in one run, against a baseline
 * measured in the same run.
 *
 * Phases (server in its own process, load generated here over real mTLS with HTTP/2):
 *   ceiling   bare mTLS transport with an echo handler
 *   get       Nexus secret get on SQLite, caller a workload allowed by 1 policy
 *   get-1k    the same with 1,000 policies stored (999 that do not match the caller)
 *   put       Nexus secret put on SQLite (durable: WAL, synchronous=FULL), caller superuser
 * Then the lifecycle figures (tests/bench/lifecycle.ts) when present.
 *
 * Options: --seconds N (default 5 per phase), --json (machine-readable summary on the last line).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import { join } from 'node:path';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/server.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { benchExecutables } from './executables.ts';
import { benchLifecycle } from './lifecycle.ts';

const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf('--seconds') + 1] || 5) || 5;
const SESSIONS = 4;
const IN_FLIGHT_PER_SESSION = 16;

interface PhaseResult {
  name: string;
  requests: number;
  errors: number;
  rps: number;
  p50ms: number;
  p99ms: number;
}

const root = join(import.meta.dir, '..', '..');
const work = mkdtempSync(join(os.tmpdir(), 'spike-bench-'));
const issuer = await startDevIssuer({
  dir: join(work, 'sockets'),
  logger: { info: () => {}, warn: () => {} },
});

async function startServer(argv: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  const proc = Bun.spawn(['bun', join(root, 'tests/bench/server.ts'), ...argv], {
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

{
  const server = await startServer(['echo']);
  results.push(
    await load('ceiling (mTLS echo)', server.port, workload, () => ({
      path: '/echo',
      body: '{"path":"bench/secret"}',
    })),
  );
  await server.stop();
}
for (const policies of [1, 1000]) {
  const dir = mkdtempSync(join(work, 'nexus-'));
  const server = await startServer(['nexus', dir, String(policies)]);
  results.push(
    await load(
      `get (${policies} ${policies === 1 ? 'policy' : 'policies'})`,
      server.port,
      workload,
      () => ({
        path: '/v1/store/secrets?action=get',
        body: '{"path":"bench/secret"}',
      }),
    ),
  );
  if (policies === 1) {
    results.push(
      await load('put (SQLite, durable)', server.port, pilot, (i) => ({
        path: '/v1/store/secrets',
        body: JSON.stringify({ path: `bench/put/${i % 64}`, values: { value: `v${i}` } }),
      })),
    );
  }
  await server.stop();
}

const rpsOf = (prefix: string) => results.find((r) => r.name.startsWith(prefix))!.rps;
const ceiling = rpsOf('ceiling');
const get = rpsOf('get (1 policy)');
const get1k = rpsOf('get (1000 policies)');
const put = rpsOf('put');
console.log(`\nSPIKE benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, bun ${Bun.version}`,
);
console.log(
  `load: ${SESSIONS} HTTP/2 sessions × ${IN_FLIGHT_PER_SESSION} in flight, ${seconds} s per phase, loopback\n`,
);
console.log('| phase | requests/s | p50 ms | p99 ms | errors |');
console.log('|---|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50ms.toFixed(2)} | ${r.p99ms.toFixed(2)} | ${r.errors} |`,
  );
}
console.log('');
console.log(`get / ceiling = ${(get / ceiling).toFixed(2)} (target ≥ 0.5)`);
console.log(`put = ${put.toFixed(0)}/s (target ≥ 2,000/s)`);
console.log(
  `cost of 1,000 policies on get = ${(((get - get1k) / get) * 100).toFixed(1)} % (target < 10 %)`,
);

const extra: Record<string, unknown> = {};
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

await pilot.close();
await workload.close();
await issuer.stop();
rmSync(work, { recursive: true, force: true });
if (args.includes('--json')) console.log(JSON.stringify({ results, ...extra }));
process.exit(0);
