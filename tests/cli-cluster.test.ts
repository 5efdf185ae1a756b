/**
 * `spike operator recover|restore` through the real CLI (`bun cli/main.ts …`, one process per
 * run) against a real deployment (tests/support/cluster.ts: one Nexus process, three Keeper
 * processes, SQLite, mTLS with development SVIDs), docs/spike-api.md §9 and §11.
 *
 * One cluster serves the whole file and the tests run in order: while Nexus is healthy, `recover`
 * (recover role only) writes the 0600 recovery files and a `restore` is refused (409); then one
 * total loss (Nexus and every Keeper killed and restarted empty) leaves Nexus not ready (exit 3),
 * `restore` refuses the wrong role and malformed or upstream lines, and two shards (one piped on
 * stdin, one typed at the hidden prompt of a pseudo-terminal) bring Nexus back with its secrets;
 * Nexus then refills the Keepers and refuses further shards.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Cluster, startCluster } from './support/cluster.ts';
import { type CommandResult, cleanEnv, ROOT, runCli } from './support/process.ts';

const NOT_READY = 'SPIKE is not ready yet. Please wait a moment and try again.\n';
const ALREADY_HELD = 'already holds its root key';

type Run = CommandResult;

// Each test runs several CLI processes against a cluster of four servers; on a loaded 2-core
// machine one of them once took over 5 s (bun's default). Bound by generous limits instead.
setDefaultTimeout(120_000);

let cluster: Cluster;
/** `SPIKE_PILOT_RECOVERY_DIR` of every run; the files land in `<base>/recover`. */
let recoveryBase: string;
/** `HOME` of every run (the fallback recovery directory lives under it). */
let home: string;
/** The recovery lines `spike operator recover` wrote, by index (1..3 at positions 0..2). */
let lines: string[] = [];

/** The environment of a CLI process with the identity of `role`. */
function cliEnv(role: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...cleanEnv(),
    HOME: home,
    SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor(role),
    SPIKE_NEXUS_API_URL: cluster.nexusUrl,
    SPIKE_PILOT_RECOVERY_DIR: recoveryBase,
    ...extra,
  };
}

function spike(
  args: string[],
  role: string,
  stdin?: string,
  env: Record<string, string> = {},
): Promise<Run> {
  return runCli(args, { env: cliEnv(role, env), stdin });
}

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), waits for the hidden prompt, then
 * types `line` and Enter. Returns everything the terminal showed.
 */
async function spikeOnTerminal(
  args: string[],
  role: string,
  line: string,
): Promise<{ code: number; output: string }> {
  const script = Bun.which('script');
  if (script === null) throw new Error('this test needs util-linux `script` for a pty');
  const command = [process.execPath, 'cli/main.ts', ...args].map((a) => `'${a}'`).join(' ');
  const proc = Bun.spawn([script, '-qec', command, '/dev/null'], {
    cwd: ROOT,
    env: cliEnv(role),
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let output = '';
  const decoder = new TextDecoder();
  const reader = proc.stdout.getReader();
  let typed = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    output += decoder.decode(value, { stream: true });
    if (!typed && output.includes('Enter recovery shard: ')) {
      typed = true;
      // The CLI switches the terminal to raw mode (no echo) before printing the prompt.
      proc.stdin.write(`${line}\r`);
      await proc.stdin.flush();
    }
  }
  proc.stdin.end();
  return { code: await proc.exited, output };
}

/** The statuses of Nexus's audit lines (its stderr, across restarts) for the restore route. */
function restoreStatuses(): number[] {
  return fs
    .readFileSync(cluster.nexus.errLog, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { route?: string; status?: number })
    .filter((record) => record.route === '/v1/operator/restore')
    .map((record) => record.status ?? 0);
}

function expectOk(run: Run): void {
  if (run.code !== 0) throw new Error(`exit ${run.code}: ${run.stderr}`);
  expect(run.stderr).toBe('');
}

/** The recovery lines, failing clearly when the recover test did not produce them. */
function recoveryLines(): string[] {
  if (lines.length !== 3) throw new Error('no recovery lines: the recover test failed');
  return lines;
}

beforeAll(async () => {
  recoveryBase = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-cli-recovery-'));
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-cli-home-'));
  cluster = await startCluster({ keepers: 3, threshold: 2 });
  await cluster.waitReady(60_000);
}, 180_000);

afterAll(async () => {
  await cluster?.close();
  fs.rmSync(recoveryBase, { recursive: true, force: true });
  fs.rmSync(home, { recursive: true, force: true });
});

describe('spike operator against Nexus with Keepers', () => {
  it('recover: recover role only; 0600 files replace older spike.recovery*.txt', async () => {
    const dir = path.join(recoveryBase, 'recover');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'spike.recovery.9.txt'), 'stale');
    fs.writeFileSync(path.join(dir, 'spike.recovery.txt'), 'stale');
    fs.writeFileSync(path.join(dir, 'keep.txt'), 'unrelated');

    const put = await spike(['secret', 'put', 'cluster/db', 'pass=kept', 'user=app'], 'pilot');
    expect([put.code, put.stdout]).toEqual([0, 'OK\n']);

    // `pilot` is the superuser: it may not recover.
    const [wrongRole, recovered] = await Promise.all([
      spike(['operator', 'recover'], 'pilot'),
      spike(['operator', 'recover'], 'recover'),
    ]);
    expect(wrongRole.code).toBe(1);
    expect(wrongRole.stderr).toContain("You need the 'recover' role");
    expectOk(recovered);
    expect(recovered.stdout).toContain('SPIKE Recovery shards saved to the recovery directory:');
    expect(recovered.stdout).toContain(`  ${dir}\n`);
    expect(recovered.stdout).toContain('You encrypt these shards and keep them safe.');

    expect(fs.readdirSync(dir).sort()).toEqual([
      'keep.txt',
      'spike.recovery.1.txt',
      'spike.recovery.2.txt',
      'spike.recovery.3.txt',
    ]);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    lines = [1, 2, 3].map((i) => {
      const file = path.join(dir, `spike.recovery.${i}.txt`);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      return fs.readFileSync(file, 'utf8');
    });
    for (const [i, line] of lines.entries()) {
      expect(line).toMatch(
        new RegExp(`^spike-recovery:1:${i + 1}:[0-9a-f]{32}:[0-9a-f]{32}:[0-9a-f]{66}$`),
      );
    }
  });

  it('restore while Nexus holds its key: refused (409), exit 1', async () => {
    const again = await spike(['operator', 'restore'], 'restore', recoveryLines()[0]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(ALREADY_HELD);
    expect(restoreStatuses()).toEqual([409]);
  });

  it('a refused SPIKE_PILOT_RECOVERY_DIR falls back to ~/.spike/recover', async () => {
    const run = await spike(['operator', 'recover'], 'recover', undefined, {
      SPIKE_PILOT_RECOVERY_DIR: '/etc',
    });
    expectOk(run);
    const dir = path.join(home, '.spike', 'recover');
    expect(run.stdout).toContain(`  ${dir}\n`);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'spike.recovery.1.txt',
      'spike.recovery.2.txt',
      'spike.recovery.3.txt',
    ]);
    // Same generation, same shards as the first recover.
    expect(fs.readFileSync(path.join(dir, 'spike.recovery.2.txt'), 'utf8')).toBe(
      recoveryLines()[1]!,
    );
  });

  it('total loss: Nexus comes back not ready (exit 3)', async () => {
    await cluster.nexus.kill();
    await Promise.all(cluster.keepers.map((k) => k.kill()));
    await Promise.all(cluster.keepers.map((k) => k.start()));
    await cluster.nexus.start();
    await cluster.waitUntil(async () => (await cluster.nexusReady()) === 503, 60_000, 'Nexus up');

    const [status, list, get] = await Promise.all([
      spike(['status'], 'pilot'),
      spike(['secret', 'list'], 'pilot'),
      spike(['secret', 'get', 'cluster/db'], 'pilot'),
    ]);
    expect([status.code, status.stdout]).toEqual([3, 'SPIKE Nexus is not ready.\n']);
    expect([list.code, list.stderr]).toEqual([3, NOT_READY]);
    expect([get.code, get.stderr]).toEqual([3, NOT_READY]);
  }, 120_000);

  it('restore refuses the wrong role, malformed lines and upstream lines', async () => {
    const [wrong, badLine, upstream] = await Promise.all([
      spike(['operator', 'restore'], 'pilot', recoveryLines()[0]),
      spike(['operator', 'restore'], 'restore', 'spike-recovery:1:1:zz\n'),
      spike(['operator', 'restore'], 'restore', `spike:1:${'ab'.repeat(32)}`),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("You need the 'restore' role");
    expect([badLine.code, badLine.stderr]).toEqual([1, 'Error: Invalid shard format.\n']);
    expect([upstream.code, upstream.stderr]).toEqual([1, 'Error: Invalid shard format.\n']);
    // The CLI refused all three itself: nothing reached Nexus.
    expect(restoreStatuses()).toEqual([409]);
    expect(await cluster.nexusReady()).toBe(503);
  });

  it('restore: one shard on stdin, one at the hidden prompt; Nexus is back', async () => {
    const [one, , three] = recoveryLines();
    const first = await spike(['operator', 'restore'], 'restore', `\n  ${one}\n`);
    expectOk(first);
    expect(first.stdout).toContain(' Shards collected: 1\n');
    expect(first.stdout).toContain(' Shards remaining: 1\n');
    expect(await cluster.nexusReady()).toBe(503);

    // The second shard is typed at the hidden prompt of a terminal (a pty from `script`).
    const second = await spikeOnTerminal(['operator', 'restore'], 'restore', three!);
    expect(second.code).toBe(0);
    expect(second.output).toContain('(your input will be hidden as you paste/type it)');
    expect(second.output).toContain('Enter recovery shard: ');
    expect(second.output).toContain('SPIKE is now restored and ready to use.');
    // Nothing typed is echoed.
    expect(second.output).not.toContain(three!.slice(20, 60));

    await cluster.waitReady(60_000);
    const [status, pass, user] = await Promise.all([
      spike(['status'], 'pilot'),
      spike(['secret', 'get', 'cluster/db', 'pass'], 'pilot'),
      spike(['secret', 'get', 'cluster/db', 'user'], 'pilot'),
    ]);
    expect([status.code, status.stdout]).toEqual([0, 'SPIKE Nexus is ready.\n']);
    expect([pass.code, pass.stdout]).toEqual([0, 'kept\n']);
    expect([user.code, user.stdout]).toEqual([0, 'app\n']);
  });

  it('after the restore: Keepers refilled, further shards refused (409)', async () => {
    const again = await spike(['operator', 'restore'], 'restore', recoveryLines()[1]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(ALREADY_HELD);
    expect(restoreStatuses()).toEqual([409, 200, 200, 409]);
    // Nexus pushed a new generation to the (empty) Keepers.
    await cluster.waitUntil(
      async () =>
        (await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)))).every((s) => s === 200),
      60_000,
      'Keepers refilled',
    );
  }, 120_000);
});
