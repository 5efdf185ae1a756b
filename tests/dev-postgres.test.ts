/**
 * `bun run dev -- --replicas 3 --postgres` (issue 13, criterion 5; src/dev/postgres.ts,
 * src/dev/replicas.ts): the options, and a real run on free ports and a temporary state
 * directory: a throwaway PostgreSQL cluster under `<dir>/postgres`, 3 replicas on consecutive
 * ports sharing the Keepers, the comma-separated `SPIKE_NEXUS_API_URL`, a secret written at one
 * replica and read at another, and a clean stop (the server stopped too). The real run needs the
 * PostgreSQL server binaries; it runs with `bash .ci/postgres` (which installs them and sets
 * SPIKE_TEST_DATABASE_URL), else it is skipped.
 */
import { describe, expect, it } from 'bun:test';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPostgresBin, NO_POSTGRES } from '../src/dev/postgres.ts';
import { parseOptions } from '../src/dev/up.ts';
import { cleanEnv, freePort, ROOT, runCli, waitUntil } from './support/process.ts';

const usageError = (argv: string[]) => {
  try {
    parseOptions(argv, {});
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

describe('bun run dev: --replicas and --postgres', () => {
  it('parses them and refuses replicas without PostgreSQL or with clashing ports', () => {
    const parsed = parseOptions(['--replicas', '3', '--postgres'], {});
    expect(parsed).toMatchObject({ replicas: 3, postgres: true });
    expect(parseOptions([], {})).toMatchObject({ replicas: 1, postgres: false });
    expect(parseOptions(['--postgres'], { SPIKE_DEV_REPLICAS: '2' })).toMatchObject({
      replicas: 2,
    });
    expect(usageError(['--replicas', '3'])).toBe(
      '--replicas needs --postgres: the replicas share one PostgreSQL database',
    );
    for (const bad of ['0', '10', 'x', '1.5']) {
      expect(usageError(['--replicas', bad, '--postgres'])).toBe(
        '--replicas must be a number of replicas from 1 to 9',
      );
    }
    expect(
      usageError([
        '--replicas',
        '3',
        '--postgres',
        '--nexus-port',
        '8442',
        '--keeper-ports',
        '8444,8445',
      ]),
    ).toBe('the Nexus ports 8442-8444 and the Keeper ports must differ');
  });

  it('names the apt command when PostgreSQL is not installed', () => {
    expect(NO_POSTGRES).toContain('apt-get install -y postgresql');
    expect(NO_POSTGRES.includes('\n')).toBe(false);
  });
});

const bin = findPostgresBin(process.env);
describe.skipIf(process.env.SPIKE_TEST_DATABASE_URL === undefined || bin === undefined)(
  'bun run dev -- --replicas 3 --postgres (postgres)',
  () => {
    it('postgres: starts a cluster and 3 replicas, prints every URL, and stops it all', async () => {
      const base = mkdtempSync(join(tmpdir(), 'spike-devpg-'));
      chmodSync(base, 0o711); // as root the server runs as nobody, who must reach <dir>/postgres
      const dir = join(base, 'state');
      const nexusPort = await freePort();
      const keeperPorts = [await freePort(), await freePort(), await freePort()];
      const log = join(base, 'up.log');
      const fd = openSync(log, 'a');
      const up = Bun.spawn(
        [
          process.execPath,
          'src/dev/up.ts',
          '--replicas',
          '3',
          '--postgres',
          '--dir',
          dir,
          '--nexus-port',
          String(nexusPort),
          '--keeper-ports',
          keeperPorts.join(','),
        ],
        { cwd: ROOT, env: cleanEnv(), stdout: fd, stderr: fd },
      );
      closeSync(fd);
      try {
        await waitUntil(
          async () =>
            (await Bun.file(log).text()).includes('SPIKE is ready') || up.exitCode !== null,
          180_000,
          'bun run dev ready',
        );
        const out = readFileSync(log, 'utf8');
        const urls = [0, 1, 2].map((i) => `https://127.0.0.1:${nexusPort + i}`).join(',');
        expect(out).toContain(`export SPIKE_NEXUS_API_URL=${urls}`);
        expect(out).toContain('nexus-3 is ready');
        expect(existsSync(join(dir, 'postgres', 'data', 'PG_VERSION'))).toBe(true);
        const socket = `unix://${join(dir, 'sockets', 'pilot.sock')}`;
        const at = (i: number) => ({
          SPIFFE_ENDPOINT_SOCKET: socket,
          SPIKE_NEXUS_API_URL: `https://127.0.0.1:${nexusPort + i}`,
        });
        const put = await runCli(['secret', 'put', 'secrets/ha/x', 'k=v1'], { env: at(0) });
        expect(put.code).toBe(0);
        const got = await runCli(['secret', 'get', 'secrets/ha/x', 'k'], { env: at(2) });
        expect(got.code).toBe(0);
        expect(got.stdout).toContain('v1');
      } finally {
        up.kill('SIGINT');
        await up.exited;
      }
      expect(up.exitCode).toBe(0);
      expect(existsSync(join(dir, 'postgres', 'data', 'postmaster.pid'))).toBe(false);
      rmSync(base, { recursive: true, force: true });
    }, 300_000);
  },
);
