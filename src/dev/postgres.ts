/**
 * `bun run dev -- --postgres` (src/dev/up.ts): a throwaway PostgreSQL cluster for the development
 * replicas, under the state directory (`<dir>/postgres/`), DEVELOPMENT ONLY.
 *
 * - The server binaries come from `/usr/lib/postgresql/<version>/bin` (Debian's layout, newest
 *   first) or PATH; without them the run stops with one line naming the apt command.
 * - First run: `initdb` with a random password (SCRAM) kept in `<dir>/postgres/password`
 *   (mode 0600) and a free loopback port kept in `postgresql.conf`; later runs reuse both, so the
 *   data survives restarts (`--reset` deletes it with the rest of the state directory).
 * - The server listens on 127.0.0.1 only, its unix socket in `<dir>/postgres`. As root it runs as
 *   the unprivileged user `nobody` (as .ci/postgres does); the state directory is then made
 *   traversable (0711) so that `nobody` reaches its own directory, whose siblings keep 0700 (the
 *   directories above it must be traversable too, as /tmp and home directories usually are).
 * - A server left running by an earlier run is reused; `stop()` stops it (`pg_ctl stop -m fast`).
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../runtime/run-command.ts';
import { HOST } from './options.ts';

/** One line for people without PostgreSQL. */
export const NO_POSTGRES =
  'PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH); install it ' +
  'with `sudo apt-get install -y postgresql` (Debian, Ubuntu) and run again';

export interface DevPostgres {
  /** `postgres://spike:<password>@127.0.0.1:<port>/postgres`; it carries the password. */
  readonly url: string;
  readonly port: number;
  /** True when this run created the cluster (no data before). */
  readonly created: boolean;
  stop(): Promise<void>;
}

/** The directory holding `initdb`, `pg_ctl` and `postgres`, or `undefined`. */
export function findPostgresBin(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')))
      return dir;
  }
  return undefined;
}

async function freeLoopbackPort(): Promise<number> {
  const server = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** Runs a server binary, as `nobody` when this process is root. */
function asDbUser(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = process.getuid?.() === 0;
  return runCommand(root ? ['runuser', '-u', 'nobody', '--', ...cmd] : cmd, {});
}

function nobodyIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nobody:'));
  const [, , uid, gid] = (line ?? '').split(':');
  if (uid === undefined || gid === undefined)
    throw new Error('no user nobody to run PostgreSQL as');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Creates the cluster in `pgDir/data` with a new password and port. */
async function initCluster(bin: string, pgDir: string, root: boolean): Promise<void> {
  const password = Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('hex');
  const port = await freeLoopbackPort();
  const pwfile = join(pgDir, 'initdb.pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (root) {
    const { uid, gid } = nobodyIds();
    chownSync(pgDir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const init = await asDbUser([
    join(bin, 'initdb'),
    '-D',
    join(pgDir, 'data'),
    '-U',
    'spike',
    `--pwfile=${pwfile}`,
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C.UTF-8',
  ]);
  rmSync(pwfile, { force: true });
  if (init.code !== 0) {
    rmSync(join(pgDir, 'data'), { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr.trim().split('\n').at(-1) ?? ''}`);
  }
  writeFileSync(join(pgDir, 'password'), `${password}\n`, { mode: 0o600 });
  const conf = join(pgDir, 'data', 'postgresql.conf');
  const settings = [
    `listen_addresses = '${HOST}'`,
    `port = ${port}`,
    `unix_socket_directories = '${pgDir}'`,
    'max_connections = 200',
  ];
  writeFileSync(conf, `${readFileSync(conf, 'utf8')}\n# bun run dev\n${settings.join('\n')}\n`);
}

/** Starts (or reuses) the development cluster under `stateDir`. */
export async function startDevPostgres(
  stateDir: string,
  env: Readonly<Record<string, string | undefined>>,
  note: (message: string) => void,
): Promise<DevPostgres> {
  const bin = findPostgresBin(env);
  if (bin === undefined) throw new Error(NO_POSTGRES);
  const root = process.getuid?.() === 0;
  const pgDir = join(stateDir, 'postgres');
  const data = join(pgDir, 'data');
  if (root) chmodSync(stateDir, 0o711);
  mkdirSync(pgDir, { recursive: true, mode: 0o700 });
  const created = !existsSync(join(data, 'PG_VERSION'));
  if (created) {
    note(`postgres: creating a development cluster in ${data}`);
    await initCluster(bin, pgDir, root);
  }
  const port = Number(
    /^port = ([0-9]+)$/m.exec(readFileSync(join(data, 'postgresql.conf'), 'utf8'))?.[1],
  );
  const password = readFileSync(join(pgDir, 'password'), 'utf8').trim();
  const status = await asDbUser([join(bin, 'pg_ctl'), '-D', data, 'status']);
  if (status.code === 0) {
    note(`postgres: reusing the server left running on ${HOST}:${port}`);
  } else {
    const started = await asDbUser([
      join(bin, 'pg_ctl'),
      '-D',
      data,
      '-l',
      join(pgDir, 'server.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]);
    if (started.code !== 0) {
      throw new Error(`PostgreSQL did not start (see ${join(pgDir, 'server.log')})`);
    }
    note(`postgres: listening on ${HOST}:${port} (data in ${data})`);
  }
  return {
    url: `postgres://spike:${password}@${HOST}:${port}/postgres`,
    port,
    created,
    async stop() {
      await asDbUser([join(bin, 'pg_ctl'), '-D', data, '-m', 'fast', 'stop']);
    },
  };
}

/** Stops a development cluster left running under `stateDir` (for `--stop`); false if none. */
export async function stopDevPostgres(
  stateDir: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<boolean> {
  const bin = findPostgresBin(env);
  const data = join(stateDir, 'postgres', 'data');
  if (bin === undefined || !existsSync(join(data, 'postmaster.pid'))) return false;
  return (await asDbUser([join(bin, 'pg_ctl'), '-D', data, '-m', 'fast', 'stop'])).code === 0;
}
