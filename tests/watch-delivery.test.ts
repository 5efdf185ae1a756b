/**
 * Secret delivery end to end (issue 14, criteria 4–6, client half) with real processes: one
 * cluster (tests/support/cluster.ts: Nexus and three Keepers over mTLS, development SVIDs), the
 * real CLI as child processes (`bun cli/main.ts …`) and the SDK in this process.
 *
 * - `spike secret watch --json` prints one JSON line per write, in order, and exits 0 on SIGINT;
 * - `spike run` (as a plain workload with a read policy) restarts its child exactly once per
 *   change and not at all for a write of the same values; `--signal SIGHUP` signals it exactly
 *   once instead; SIGTERM reaches the child and `spike run` exits with the child's code;
 * - `spike agent` writes its file with mode 0600, leaves it (same mtime, no command run) on a
 *   write of the same values, rewrites it and runs its command once on a change;
 * - the SDK's `watch` loses nothing across a Nexus SIGKILL and restart: the sequence numbers it
 *   yields are consecutive and the paths in write order.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Subprocess, spawn } from 'bun';
import { createClient, type SpikeClient, type WatchEvent } from '../src/sdk/client.ts';
import { type Cluster, type NexusClient, startCluster } from './support/cluster.ts';
import { cleanEnv, ROOT, waitUntil } from './support/process.ts';

// Several processes on a loaded 2-core machine: generous bounds only.
setDefaultTimeout(180_000);

const WORKLOAD_ID = 'spiffe://spike.ist/workload/demo';
const SECRET = 'apps/web/db';

let cluster: Cluster;
let pilot: NexusClient;
let work: string;
const started: Subprocess[] = [];

function cliEnv(role: string): Record<string, string> {
  return {
    ...cleanEnv(),
    HOME: work,
    SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor(role),
    SPIKE_NEXUS_API_URL: cluster.nexusUrl,
  };
}

/** Starts `spike <args>` as `role`; stdout and stderr go to files under `work`. */
function startCli(name: string, args: string[], role: string): Subprocess {
  const proc = spawn([process.execPath, 'cli/main.ts', ...args], {
    cwd: ROOT,
    env: cliEnv(role),
    stdin: 'ignore',
    stdout: Bun.file(path.join(work, `${name}.out`)),
    stderr: Bun.file(path.join(work, `${name}.err`)),
  });
  started.push(proc);
  return proc;
}

const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
const lines = (file: string) => read(file).split('\n').filter(Boolean);

async function put(p: string, values: Record<string, string>): Promise<void> {
  const res = await pilot.post('/v1/store/secrets', { path: p, values });
  expect(res.status).toBe(200);
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-watch-delivery-'));
  cluster = await startCluster();
  await cluster.waitReady(60_000);
  pilot = await cluster.client('pilot');
  const policy = await pilot.post('/v1/acl/policy', {
    name: 'web-read',
    spiffeidPattern: `^${WORKLOAD_ID.replaceAll('.', '\\.')}$`,
    pathPattern: '^apps/web/.*$',
    permissions: ['read'],
  });
  expect(policy.status).toBe(200);
  await put(SECRET, { user: 'app', pass: 'one' });
});

afterAll(async () => {
  for (const proc of started) proc.kill('SIGKILL');
  await pilot?.close();
  await cluster?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('spike secret watch', () => {
  it('prints JSON lines for each write in order, and exits 0 on SIGINT', async () => {
    const out = path.join(work, 'watch.out');
    const proc = startCli('watch', ['secret', 'watch', 'apps/', '--json'], 'pilot');
    // The stream starts at the head: write until the watcher shows it is connected.
    let n = 0;
    await waitUntil(
      async () => {
        await put('apps/watched', { n: String(n++) });
        await Bun.sleep(300);
        return lines(out).length > 0;
      },
      60_000,
      'the first watch line',
    );
    const before = lines(out).length;
    await put('apps/other', { a: '1' });
    await put('apps/other', { a: '2' });
    await waitUntil(async () => lines(out).length >= before + 2, 30_000, 'two more lines');
    const events = lines(out).map((l) => JSON.parse(l));
    const last = events.slice(-2);
    expect(last.map((e) => [e.path, e.version, e.kind])).toEqual([
      ['apps/other', 1, 'put'],
      ['apps/other', 2, 'put'],
    ]);
    for (let i = 1; i < events.length; i++)
      expect(events[i].seq).toBeGreaterThan(events[i - 1].seq);
    expect(read(out)).not.toContain('"a"');
    proc.kill('SIGINT');
    expect(await proc.exited).toBe(0);
  });
});

describe('spike run', () => {
  it('restarts the child exactly once per change, never for the same values; SIGTERM is forwarded', async () => {
    const log = path.join(work, 'run.log');
    const script = `echo "start $DB_PASS $USER_NAME" >> '${log}'; exec sleep 1000`;
    const proc = startCli(
      'run',
      [
        'run',
        '--secret',
        SECRET,
        '--env',
        'DB_PASS=pass',
        '--env',
        'USER_NAME=user',
        '--',
        'sh',
        '-c',
        script,
      ],
      'workload',
    );
    await waitUntil(async () => lines(log).length === 1, 60_000, 'the first start');
    expect(lines(log)).toEqual(['start one app']);

    await put(SECRET, { user: 'app', pass: 'one' }); // same values, new version
    await Bun.sleep(2500);
    expect(lines(log)).toEqual(['start one app']);

    await put(SECRET, { user: 'app', pass: 'two' });
    await waitUntil(async () => lines(log).length >= 2, 30_000, 'the restart');
    await Bun.sleep(2500);
    expect(lines(log)).toEqual(['start one app', 'start two app']);

    proc.kill('SIGTERM');
    // The child (sleep) dies of SIGTERM: 128 + 15.
    expect(await proc.exited).toBe(143);
    expect(read(path.join(work, 'run.err'))).not.toContain('two');
  });

  it('--signal SIGHUP signals the child once per change instead of restarting it', async () => {
    const log = path.join(work, 'hup.log');
    const script = `trap 'echo hup >> "${log}"' HUP; echo "start $PASS" >> '${log}'; while true; do sleep 0.2; done`;
    const proc = startCli(
      'hup',
      ['run', '-s', SECRET, '--signal', 'SIGHUP', '--', 'sh', '-c', script],
      'workload',
    );
    await waitUntil(async () => lines(log).length === 1, 60_000, 'the first start');
    expect(lines(log)).toEqual(['start two']);
    await put(SECRET, { user: 'app', pass: 'two' });
    await Bun.sleep(2000);
    await put(SECRET, { user: 'app', pass: 'three' });
    await waitUntil(async () => lines(log).length >= 2, 30_000, 'the signal');
    await Bun.sleep(2000);
    expect(lines(log)).toEqual(['start two', 'hup']);
    proc.kill('SIGINT');
    await proc.exited;
  });
});

describe('spike agent', () => {
  it('writes 0600 atomically, leaves the file alone on the same values, runs the command on change', async () => {
    const dir = path.join(work, 'agent');
    fs.mkdirSync(dir);
    const dest = path.join(dir, 'out', 'db.env');
    const cmdLog = path.join(dir, 'reloads.log');
    fs.writeFileSync(
      path.join(dir, 'agent.yaml'),
      [
        'templates:',
        '  - destination: out/db.env',
        '    contents: |',
        `      DB_USER={{ secret "${SECRET}" "user" }}`,
        `      DB_PASS={{ secret "${SECRET}" "pass" }}`,
        '    command: echo reload >> reloads.log',
        '',
      ].join('\n'),
    );
    const proc = startCli('agent', ['agent', '--config', path.join(dir, 'agent.yaml')], 'workload');
    await waitUntil(async () => lines(cmdLog).length === 1, 60_000, 'the first render');
    expect(read(dest)).toBe('DB_USER=app\nDB_PASS=three\n');
    expect(fs.statSync(dest).mode & 0o777).toBe(0o600);
    const first = fs.statSync(dest);

    await put(SECRET, { pass: 'three', user: 'app' }); // same values
    await Bun.sleep(2500);
    expect(fs.statSync(dest).mtimeMs).toBe(first.mtimeMs);
    expect(fs.statSync(dest).ino).toBe(first.ino);
    expect(lines(cmdLog)).toEqual(['reload']);

    await put(SECRET, { user: 'app', pass: 'four' });
    await waitUntil(async () => read(dest).includes('four'), 30_000, 'the second render');
    await waitUntil(async () => lines(cmdLog).length >= 2, 30_000, 'the reload command');
    await Bun.sleep(1500);
    expect(read(dest)).toBe('DB_USER=app\nDB_PASS=four\n');
    expect(fs.statSync(dest).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dest).ino).not.toBe(first.ino); // renamed over, not rewritten in place
    expect(lines(cmdLog)).toEqual(['reload', 'reload']);
    // No temporary file is left beside it; no value in the agent's output.
    expect(fs.readdirSync(path.dirname(dest))).toEqual(['db.env']);
    expect(read(path.join(work, 'agent.err'))).not.toContain('four');
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});

describe('SDK watch', () => {
  it('resumes across a Nexus SIGKILL and restart with no gap', async () => {
    const client: SpikeClient = await createClient({
      socket: cluster.issuer.addressFor('pilot'),
      apiUrl: cluster.nexusUrl,
      nexusTrustDomains: ['spike.ist'],
      retry: { attempts: 10, initialMs: 100, maxMs: 1000 },
      logger: { info() {}, warn() {}, error() {} },
    });
    const controller = new AbortController();
    const seen: WatchEvent[] = [];
    let opened = 0;
    const consuming = (async () => {
      for await (const e of client.watch('resume/', {
        signal: controller.signal,
        onOpen: () => opened++,
        reconnect: { initialMs: 100, maxMs: 1000 },
      })) {
        seen.push(e);
      }
    })();
    await waitUntil(async () => opened === 1, 30_000, 'the watch stream');
    for (let i = 0; i < 5; i++) await put(`resume/${i}`, { i: String(i) });
    await waitUntil(async () => seen.length === 5, 30_000, 'five events');
    await cluster.nexus.kill('SIGKILL');
    await cluster.nexus.start();
    await cluster.waitReady(60_000);
    await pilot.close();
    pilot = await cluster.client('pilot');
    for (let i = 5; i < 10; i++) await put(`resume/${i}`, { i: String(i) });
    await waitUntil(async () => seen.length >= 10, 60_000, 'ten events');
    controller.abort();
    await consuming;
    await client.close();
    expect(opened).toBeGreaterThanOrEqual(2);
    expect(seen.map((e) => e.path)).toEqual(Array.from({ length: 10 }, (_, i) => `resume/${i}`));
    const first = seen[0]!.seq;
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => first + i));
    expect(seen.every((e) => e.kind === 'put' && e.version === 1)).toBe(true);
  });
});
