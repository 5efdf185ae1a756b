/**
 * The standalone executables of `bun run build` (src/build.ts; docs/architecture.md decision 11; the
 * packaging issue's "each starts on a machine without Bun").
 *
 * `dist/` is built (or reused when newer than every source) once for the file. Every executable
 * then runs from an empty temp directory with `PATH=/usr/bin:/bin` (no Bun on it) and nothing of
 * the checkout: `dist/spike --help`; two `dist/keeper` and one `dist/nexus` on SQLite under the
 * development issuer, which must run the embedded migrations, boot (split the root key across
 * the Keepers) and answer `/ready` on the plain health port; then `dist/spike` writes and reads a
 * secret over mTLS with the superuser SVID, and SIGTERM stops every process with exit 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { ensureExecutables, PATH_WITHOUT_BUN } from './bench/executables.ts';
import { freePort, plainStatus, runCommand, waitUntil } from './support/process.ts';

let dist: string;
let work: string;
let issuer: DevIssuer;
const procs: Subprocess[] = [];

beforeAll(async () => {
  dist = (await ensureExecutables()).dir;
  work = mkdtempSync(join(tmpdir(), 'spike-exe-'));
  issuer = await startDevIssuer({
    dir: join(work, 'sockets'),
    keepers: 2,
    logger: { info: () => {}, warn: () => {} },
  });
}, 60_000);

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await issuer?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs an executable from the empty work dir with a Bun-free PATH; captures its output. */
function runExe(name: string, args: string[], env: Record<string, string> = {}) {
  return runCommand([join(dist, name), ...args], {
    cwd: work,
    env: { PATH: PATH_WITHOUT_BUN, HOME: work, ...env },
  });
}

function startExe(name: string, env: Record<string, string>): Subprocess<'ignore', 'pipe', 'pipe'> {
  const proc = Bun.spawn([join(dist, name)], {
    cwd: work,
    env: { PATH: PATH_WITHOUT_BUN, HOME: work, SPIKE_SYSTEM_LOG_LEVEL: 'INFO', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  procs.push(proc);
  return proc;
}

/** Polls `/ready` on a plain health port until it answers `expected`. */
function waitForReady(port: number, expected: number, what: string): Promise<number> {
  return waitUntil(async () => (await plainStatus(port, '/ready')) === expected, 15_000, what);
}

describe('standalone executables (bun build --compile)', () => {
  it('no Bun is reachable on the PATH the executables get', async () => {
    const which = Bun.spawnSync(['/bin/sh', '-c', 'command -v bun || echo none'], {
      env: { PATH: PATH_WITHOUT_BUN },
    });
    expect(which.stdout.toString().trim()).toBe('none');
  });

  it('dist/spike --help exits 0 and lists the commands', async () => {
    const result = await runExe('spike', ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('USAGE spike');
    for (const command of ['whoami', 'secret', 'policy', 'cipher', 'operator', 'status']) {
      expect(result.stdout).toContain(command);
    }
  });

  it('dist/spike whoami prints the SVID of its Workload API socket', async () => {
    const result = await runExe('spike', ['whoami', '-f', 'json'], {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('pilot'),
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).spiffeId).toBe(
      'spiffe://spike.ist/spike/pilot/role/superuser',
    );
  });

  it('dist/keeper ×2 and dist/nexus (SQLite) boot, serve, and stop cleanly', async () => {
    const [k1, k2, k1h, k2h, nexusPort, nexusHealth] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    const keepers = [
      [k1!, k1h!],
      [k2!, k2h!],
    ].map(([tls, health], i) =>
      startExe('keeper', {
        SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(`keeper-${i + 1}`),
        SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${tls}`,
        SPIKE_KEEPER_HEALTH_PORT: `127.0.0.1:${health}`,
      }),
    );
    await waitForReady(k1h!, 503, 'keeper-1 (empty) to answer');
    await waitForReady(k2h!, 503, 'keeper-2 (empty) to answer');
    expect(await plainStatus(k1h!, '/health')).toBe(200);

    const nexus = startExe('nexus', {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus'),
      SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${nexusPort}`,
      SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${nexusHealth}`,
      SPIKE_NEXUS_DATA_DIR: work,
      SPIKE_NEXUS_KEEPER_PEERS: `https://127.0.0.1:${k1},https://127.0.0.1:${k2}`,
      SPIKE_NEXUS_SHAMIR_SHARES: '2',
      SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
    });
    await waitForReady(nexusHealth!, 200, 'nexus /ready = 200');
    // The migrations ran inside the executable: the database exists where the config says.
    expect(existsSync(join(work, 'data', 'spike.db'))).toBe(true);
    // First boot pushed a shard to each Keeper.
    await waitForReady(k1h!, 200, 'keeper-1 to hold a shard');
    await waitForReady(k2h!, 200, 'keeper-2 to hold a shard');

    const pilotEnv = {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('pilot'),
      SPIKE_NEXUS_API_URL: `https://127.0.0.1:${nexusPort}`,
    };
    const put = await runExe('spike', ['secret', 'put', 'apps/compiled', 'answer=42'], pilotEnv);
    expect({ code: put.code, stdout: put.stdout.trim(), stderr: put.stderr }).toEqual({
      code: 0,
      stdout: 'OK',
      stderr: '',
    });
    const get = await runExe('spike', ['secret', 'get', 'apps/compiled', 'answer'], pilotEnv);
    expect(get.code).toBe(0);
    expect(get.stdout.trim()).toBe('42');

    for (const proc of [nexus, ...keepers]) proc.kill('SIGTERM');
    const codes = await Promise.all([nexus, ...keepers].map((p) => p.exited));
    expect(codes).toEqual([0, 0, 0]);
    const nexusLog = await new Response(nexus.stdout).text();
    expect(nexusLog).toContain('root key installed; nexus is ready');
  }, 40_000);
});
