/**
 * End to end, compiled: the "grant a workload access" recipe run with the standalone executables
 * (`bun build --compile`, src/build.ts) and nothing else, plus its three classic failures with
 * the exact messages our tools print (docs/spike-api.md §3, §7, §11, §12; docs/spiffe.md §1.4).
 *
 * Setup: `dist/nexus` (SQLite) and three `dist/keeper` (threshold 2) under the development issuer
 * (tests/support/cluster.ts with `binaries`), all with a PATH that has no Bun on it. The workload
 * side is two compiled SDK programs: `dist/demo-workload` (src/examples/demo-workload.ts, the
 * shipped example: it prints key names, never values) and `sdk-reader`
 * (tests/support/sdk-reader.ts, compiled here: it prints the SDK's error as an application sees
 * it, or a SHA-256 of the value so the value is checked without being printed).
 *
 * The recipe, in order (the tests depend on each other):
 * 1. the superuser (`pilot` socket) writes `tenants/acme/db/creds` with `dist/spike secret put`;
 * 2. the workload (`workload` socket, `spiffe://spike.ist/workload/demo`) has its SVID but no
 *    policy: Nexus answers 401 `access_unauthorized` (classic failure 2), audited with its caller;
 *    `dist/spike` run with that identity refuses on its own role check without calling Nexus;
 * 3. `dist/spike policy create` grants the workload `read` on `^tenants/acme/db/.*$`;
 * 4. the workload reads `password`.
 * Then classic failure 1 (no registration entry: the grpc-js Workload API double answers
 * PermissionDenied `no identity issued`, as SPIRE does) and classic failure 3 (no socket: ENOENT;
 * a socket left by a dead agent: ECONNREFUSED), with `SPIKE_SPIFFE_SOURCE_TIMEOUT=2s`.
 *
 * Every message is asserted exactly, so the README can quote them and CI keeps them true.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/build.ts';
import { ensureExecutables, PATH_WITHOUT_BUN } from './bench/executables.ts';
import { type Cluster, startCluster } from './support/cluster.ts';
import { runCommand } from './support/process.ts';
import { startWorkloadDouble, type WorkloadDouble } from './support/workload-double.ts';

const WORKLOAD_ID = 'spiffe://spike.ist/workload/demo';
const SECRET_PATH = 'tenants/acme/db/creds';
const SPIFFEID_PATTERN = '^spiffe://spike\\.ist/workload/demo$';
const PATH_PATTERN = '^tenants/acme/db/.*$';
const NO_AGENT = 'is the SPIRE Agent running?';
const NO_ENTRY =
  'the Workload API issued no identity (PermissionDenied): no registration entry matches this process';
/** Short, so the identity failures (which wait for an SVID that never comes) end quickly. */
const SOURCE_TIMEOUT = { SPIKE_SPIFFE_SOURCE_TIMEOUT: '2s' };

/** A fresh random password: the one value that must never appear in any output or log. */
const PASSWORD = Array.from(crypto.getRandomValues(new Uint8Array(18)), (b) =>
  b.toString(16).padStart(2, '0'),
).join('');
const PASSWORD_SHA256 = createHash('sha256').update(PASSWORD).digest('hex');

let dist: string;
let work: string;
let reader: string;
let cluster: Cluster;
/** Everything every run printed, to check that the password never appears. */
const printed: string[] = [];

/**
 * Runs an executable from the empty work dir with a Bun-free PATH, Nexus's URL and only the
 * environment given (nothing inherited from the test process).
 */
async function run(exe: string, args: string[], env: Record<string, string>) {
  const result = await runCommand([exe, ...args], {
    cwd: work,
    env: { PATH: PATH_WITHOUT_BUN, HOME: work, SPIKE_NEXUS_API_URL: cluster.nexusUrl, ...env },
  });
  printed.push(result.stdout, result.stderr);
  return result;
}

const as = (role: string) => ({ SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor(role) });
const spike = (args: string[], env: Record<string, string>) => run(join(dist, 'spike'), args, env);
const demo = (env: Record<string, string>) => run(join(dist, 'demo-workload'), [SECRET_PATH], env);
const readPassword = async (env: Record<string, string>) => {
  const result = await run(reader, [SECRET_PATH, 'password'], env);
  return { ...result, json: JSON.parse(result.stdout) as Record<string, unknown> };
};

/** Nexus's audit lines (its stderr) whose caller is the workload. */
function workloadAudit(): Record<string, unknown>[] {
  return readFileSync(cluster.nexus.errLog, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.caller === WORKLOAD_ID);
}

/** stderr of an SDK program that waited for an SVID: the SDK's retry warnings, then `last`. */
function expectSdkWarningsThen(stderr: string, warning: string, last: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines.at(-1)).toBe(last);
  const warnings = lines.slice(0, -1);
  expect(warnings.length).toBeGreaterThan(0);
  for (const line of warnings) expect(line).toBe(warning);
}

beforeAll(async () => {
  dist = (await ensureExecutables(['nexus', 'keeper', 'spike', 'demo-workload'])).dir;
  work = mkdtempSync(join(tmpdir(), 'spike-e2e-'));
  reader = join(work, 'sdk-reader');
  const build = Bun.spawnSync(
    [process.execPath, 'build', '--compile', 'tests/support/sdk-reader.ts', '--outfile', reader],
    { cwd: PROJECT_ROOT, stdout: 'pipe', stderr: 'pipe' },
  );
  if (build.exitCode !== 0) throw new Error(`sdk-reader did not compile: ${build.stderr}`);
  const noBun = { PATH: PATH_WITHOUT_BUN };
  cluster = await startCluster({
    keepers: 3,
    threshold: 2,
    binaries: { nexus: join(dist, 'nexus'), keeper: join(dist, 'keeper') },
    nexusEnv: noBun,
    keeperEnv: noBun,
  });
  await cluster.waitReady(20_000);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('grant a workload access: compiled spike, nexus, keepers and SDK programs', () => {
  it('Nexus and the three Keepers are the compiled executables, on a PATH without Bun', () => {
    expect(cluster.keepers).toHaveLength(3);
    for (const [managed, name] of [
      [cluster.nexus, 'nexus'],
      ...cluster.keepers.map((k) => [k, 'keeper'] as const),
    ] as const) {
      const pid = managed.pid();
      expect(pid).toBeNumber();
      // `(deleted)` is appended when another run replaced dist/ since this process started.
      expect(readlinkSync(`/proc/${pid}/exe`)).toStartWith(join(dist, name));
    }
    const which = Bun.spawnSync(['/bin/sh', '-c', 'command -v bun || echo none'], {
      env: { PATH: PATH_WITHOUT_BUN },
    });
    expect(which.stdout.toString().trim()).toBe('none');
  });

  it('step 1: the superuser writes tenants/acme/db/creds with dist/spike', async () => {
    const put = await spike(
      ['secret', 'put', SECRET_PATH, 'username=admin', `password=${PASSWORD}`],
      as('pilot'),
    );
    expect(put).toEqual({ code: 0, stdout: 'OK\n', stderr: '' });
  });

  it('the workload has its own SVID (link 1 holds): dist/spike whoami', async () => {
    const whoami = await spike(['whoami', '-f', 'json'], as('workload'));
    expect(whoami.code).toBe(0);
    expect(JSON.parse(whoami.stdout)).toMatchObject({
      spiffeId: WORKLOAD_ID,
      trustDomain: 'spike.ist',
    });
  });

  it('classic failure 2, no policy: Nexus answers 401 access_unauthorized to the workload', async () => {
    const before = workloadAudit().length;

    const shown = await demo(as('workload'));
    expect(shown).toEqual({
      code: 1,
      stdout: '',
      stderr: `demo-workload: Nexus refused (401 access_unauthorized): no policy grants ${WORKLOAD_ID} read on ${SECRET_PATH}\n`,
    });

    const sdk = await readPassword(as('workload'));
    expect(sdk.code).toBe(1);
    expect(sdk.stderr).toBe('');
    expect(sdk.json).toEqual({
      ok: false,
      stage: 'getSecret',
      code: 'access_unauthorized',
      status: 401,
      message: 'SPIKE Nexus denied access',
    });

    // One audit line per refused read, carrying the caller. Authorization precedes validation
    // (§3), so a denied line names the route but not the (unvalidated) secret path.
    const lines = workloadAudit().slice(before);
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toMatchObject({
        component: 'nexus',
        caller: WORKLOAD_ID,
        route: '/v1/store/secrets?action=get',
        action: 'read',
        outcome: 'denied',
        status: 401,
        err: 'access_unauthorized',
      });
    }
  });

  it('dist/spike run with the workload identity refuses on its role check, before Nexus', async () => {
    const before = workloadAudit().length;
    const get = await spike(['secret', 'get', SECRET_PATH, 'password'], as('workload'));
    expect(get).toEqual({
      code: 1,
      stdout: '',
      stderr:
        "Error: You need the 'superuser' role to use this command (SPIFFE ID spiffe://spike.ist/spike/pilot/role/superuser); " +
        `this process is ${WORKLOAD_ID}.\n`,
    });
    expect(workloadAudit().length).toBe(before);
  });

  it('step 2: dist/spike policy create grants the workload read on tenants/acme/db/', async () => {
    const create = await spike(
      [
        'policy',
        'create',
        '--name',
        'acme-web',
        '--spiffeid-pattern',
        SPIFFEID_PATTERN,
        '--path-pattern',
        PATH_PATTERN,
        '--permissions',
        'read',
      ],
      as('pilot'),
    );
    expect(create).toEqual({ code: 0, stdout: 'Policy created successfully.\n', stderr: '' });

    const get = await spike(['policy', 'get', 'acme-web', '-f', 'json'], as('pilot'));
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({
      name: 'acme-web',
      spiffeIdPattern: SPIFFEID_PATTERN,
      pathPattern: PATH_PATTERN,
      permissions: ['read'],
    });
  });

  it('step 3: the workload (SDK, its own SVID) reads password', async () => {
    const before = workloadAudit().length;

    const shown = await demo(as('workload'));
    expect(shown).toEqual({
      code: 0,
      stdout: `demo-workload: ${WORKLOAD_ID} read ${SECRET_PATH}: 2 key(s) [password, username] (values not shown)\n`,
      stderr: '',
    });

    const sdk = await readPassword(as('workload'));
    expect(sdk.code).toBe(0);
    expect(sdk.json).toEqual({
      ok: true,
      spiffeId: WORKLOAD_ID,
      keys: ['password', 'username'],
      sha256: PASSWORD_SHA256,
    });

    const lines = workloadAudit().slice(before);
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toMatchObject({
        caller: WORKLOAD_ID,
        action: 'read',
        resource: SECRET_PATH,
        outcome: 'allowed',
        status: 200,
      });
      expect(line).not.toHaveProperty('err');
    }
  });

  describe('classic failure 1: no registration entry (Workload API PermissionDenied)', () => {
    let double: WorkloadDouble;
    beforeAll(async () => {
      // No current X509SVIDResponse: every stream ends PermissionDenied `no identity issued`.
      double = await startWorkloadDouble();
    });
    afterAll(async () => {
      await double?.stop();
    });

    it('spike whoami, spike secret get, demo-workload and the SDK each say so', async () => {
      const env = { SPIFFE_ENDPOINT_SOCKET: double.address, ...SOURCE_TIMEOUT };
      const [whoami, get, shown, sdk] = await Promise.all([
        spike(['whoami'], env),
        spike(['secret', 'get', SECRET_PATH], env),
        demo(env),
        readPassword(env),
      ]);
      expect(whoami).toEqual({ code: 1, stdout: '', stderr: `Error: ${NO_ENTRY}\n` });
      expect(get).toEqual({ code: 1, stdout: '', stderr: `Error: ${NO_ENTRY}\n` });

      expect({ code: shown.code, stdout: shown.stdout }).toEqual({ code: 1, stdout: '' });
      expectSdkWarningsThen(
        shown.stderr,
        '[workload-api] no identity issued yet (PermissionDenied): no identity issued',
        `demo-workload: ${NO_ENTRY}`,
      );

      expect(sdk.code).toBe(1);
      expect(sdk.json).toEqual({
        ok: false,
        stage: 'createClient',
        code: 'workload_api_timeout',
        message: 'no X.509-SVID within 2000 ms: Workload API PERMISSION_DENIED: no identity issued',
      });
      // They really asked the double (at least one stream each).
      expect(double.started.FetchX509SVID ?? 0).toBeGreaterThanOrEqual(4);
    });
  });

  describe('classic failure 3: the SPIRE Agent socket is wrong or the agent is down', () => {
    it('no socket file (ENOENT): every tool asks whether the SPIRE Agent is running', async () => {
      const address = 'unix:///nonexistent/agent.sock';
      expect(existsSync('/nonexistent/agent.sock')).toBe(false);
      const env = { SPIFFE_ENDPOINT_SOCKET: address, ...SOURCE_TIMEOUT };
      const [whoami, get, shown, sdk] = await Promise.all([
        spike(['whoami'], env),
        spike(['secret', 'get', SECRET_PATH], env),
        demo(env),
        readPassword(env),
      ]);
      const cli = `Error: no Workload API socket at /nonexistent/agent.sock: ${NO_AGENT}\n`;
      expect(whoami).toEqual({ code: 1, stdout: '', stderr: cli });
      expect(get).toEqual({ code: 1, stdout: '', stderr: cli });

      expect({ code: shown.code, stdout: shown.stdout }).toEqual({ code: 1, stdout: '' });
      expectSdkWarningsThen(
        shown.stderr,
        '[workload-api] Workload API stream failed (ENOENT: cannot connect to the Workload API); retrying',
        `demo-workload: no Workload API socket at ${address}: ${NO_AGENT}`,
      );

      expect(sdk.code).toBe(1);
      expect(sdk.json).toEqual({
        ok: false,
        stage: 'createClient',
        code: 'workload_api_timeout',
        message:
          'no X.509-SVID within 2000 ms: Workload API ENOENT: cannot connect to the Workload API',
      });
    });

    it('a socket file with no agent behind it (ECONNREFUSED)', async () => {
      // A listener killed with SIGKILL leaves its socket file behind, as a crashed agent does.
      const socketPath = join(work, 'dead-agent.sock');
      const holder = Bun.spawn(
        [process.execPath, '-e', "require('node:net').createServer().listen(process.env.SOCK)"],
        { env: { SOCK: socketPath }, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' },
      );
      await cluster.waitUntil(async () => existsSync(socketPath), 10_000, 'the socket file');
      holder.kill('SIGKILL');
      await holder.exited;
      expect(existsSync(socketPath)).toBe(true);

      const address = `unix://${socketPath}`;
      const env = { SPIFFE_ENDPOINT_SOCKET: address, ...SOURCE_TIMEOUT };
      const [whoami, shown, sdk] = await Promise.all([
        spike(['whoami'], env),
        demo(env),
        readPassword(env),
      ]);
      expect(whoami).toEqual({
        code: 1,
        stdout: '',
        stderr: `Error: nothing is listening on the Workload API socket at ${socketPath}: ${NO_AGENT}\n`,
      });
      expect({ code: shown.code, stdout: shown.stdout }).toEqual({ code: 1, stdout: '' });
      expectSdkWarningsThen(
        shown.stderr,
        '[workload-api] Workload API stream failed (ECONNREFUSED: cannot connect to the Workload API); retrying',
        `demo-workload: nothing is listening on the Workload API socket at ${address}: ${NO_AGENT}`,
      );
      expect(sdk.json).toEqual({
        ok: false,
        stage: 'createClient',
        code: 'workload_api_timeout',
        message:
          'no X.509-SVID within 2000 ms: Workload API ECONNREFUSED: cannot connect to the Workload API',
      });
    });
  });

  it('the password never appeared in any output, log or audit line', () => {
    expect(printed.length).toBeGreaterThan(0);
    for (const text of printed) expect(text).not.toContain(PASSWORD);
    for (const file of readdirSync(cluster.logDir)) {
      expect(readFileSync(join(cluster.logDir, file), 'utf8')).not.toContain(PASSWORD);
    }
  });
});
