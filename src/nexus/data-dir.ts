/**
 * Where the SQLite backend keeps its database: the `SPIKE_NEXUS_DATA_DIR` rules of
 * spec/spike-api.md §10 (upstream behaviour kept).
 *
 * 1. `SPIKE_NEXUS_DATA_DIR`, when set and acceptable: made absolute, it must not be `/` nor lie
 *    under `/etc /sys /proc /dev /bin /sbin /usr /lib /lib64 /boot /root`, and it must be an
 *    existing directory or have an existing parent. `data` is appended.
 * 2. Otherwise `$HOME/.spike/data` when a home directory is known.
 * 3. Otherwise `.spike-$USER/data` in the root temp directory (`$TMPDIR`, else `/tmp`); `$USER`
 *    is reduced to one path element (`spike` when empty, `.` or `..`).
 *
 * The chosen directory is created with mode 0700 (and set to 0700 if it already existed). A
 * rejected or unusable `SPIKE_NEXUS_DATA_DIR` falls back to the next option and the reason is
 * returned so the caller can log it. The database file inside is {@link DATABASE_FILE}.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SpikeError } from '../core/errors.ts';

/** Database file name inside the data directory. */
export const DATABASE_FILE = 'spike.db';

/** System directories that never hold Nexus data (§10). */
export const RESTRICTED_DIRS: readonly string[] = [
  '/etc',
  '/sys',
  '/proc',
  '/dev',
  '/bin',
  '/sbin',
  '/usr',
  '/lib',
  '/lib64',
  '/boot',
  '/root',
];

export interface DataDirResolution {
  /** The absolute data directory, created with mode 0700. */
  readonly dir: string;
  /** Which rule chose it. */
  readonly source: 'env' | 'home' | 'temp';
  /** Why `SPIKE_NEXUS_DATA_DIR` was not used, when it was set but refused. */
  readonly rejected?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Why a configured directory is refused, or `undefined` when it is acceptable. */
export function checkDataDir(dir: string): string | undefined {
  if (dir === '') return 'empty path';
  const abs = resolve(dir);
  if (abs === '/') return `${abs} is restricted`;
  for (const r of RESTRICTED_DIRS) {
    if (abs === r || abs.startsWith(`${r}/`)) return `${abs} is restricted`;
  }
  const st = statSync(abs, { throwIfNoEntry: false });
  if (st !== undefined) return st.isDirectory() ? undefined : `${abs} is not a directory`;
  const parent = statSync(dirname(abs), { throwIfNoEntry: false });
  if (parent === undefined) return `parent directory of ${abs} does not exist`;
  return undefined;
}

function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

function tempUser(env: Env): string {
  const user = basename(env.USER ?? '');
  return user === '' || user === '.' || user === '..' ? 'spike' : user;
}

/**
 * Resolves and creates the Nexus data directory from the environment (§10). Throws
 * `config_invalid` only when even the temp-directory fallback cannot be created.
 */
export function resolveDataDir(env: Env): DataDirResolution {
  let rejected: string | undefined;
  const custom = env.SPIKE_NEXUS_DATA_DIR;
  if (custom !== undefined && custom !== '') {
    rejected = checkDataDir(custom);
    if (rejected === undefined) {
      const dir = join(resolve(custom), 'data');
      try {
        makePrivateDir(dir);
        return { dir, source: 'env' };
      } catch {
        rejected = `cannot create ${dir}`;
      }
    }
  }
  const extra = rejected === undefined ? {} : { rejected };
  const home = env.HOME;
  if (home !== undefined && home !== '') {
    const dir = join(resolve(home), '.spike', 'data');
    try {
      makePrivateDir(dir);
      return { dir, source: 'home', ...extra };
    } catch {
      // fall through to the temp directory
    }
  }
  const tmp = env.TMPDIR !== undefined && env.TMPDIR !== '' ? resolve(env.TMPDIR) : '/tmp';
  const dir = join(tmp, `.spike-${tempUser(env)}`, 'data');
  try {
    makePrivateDir(dir);
  } catch {
    throw new SpikeError('config_invalid', `cannot create the data directory ${dir}`);
  }
  return { dir, source: 'temp', ...extra };
}
