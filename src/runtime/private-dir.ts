/**
 * Private directories chosen from the environment, with the upstream fallback rules shared by
 * the Nexus data directory (`SPIKE_NEXUS_DATA_DIR`, src/nexus/data-dir.ts) and the Pilot recovery
 * directory (`SPIKE_PILOT_RECOVERY_DIR`, cli/recovery.ts); docs/spike-api.md §10.
 *
 * 1. `<variable>`, when set and acceptable ({@link checkPrivateDir}): made absolute, with
 *    `<suffix>` appended.
 * 2. Otherwise `$HOME/.spike/<suffix>` when a home directory is known.
 * 3. Otherwise `.spike-$USER/<suffix>` in the root temp directory (`$TMPDIR`, else `/tmp`);
 *    `$USER` is reduced to one path element (`spike` when empty, `.` or `..`).
 *
 * The chosen directory is created with mode 0700 (and set to 0700 if it already existed). A
 * rejected or unusable `<variable>` falls back to the next option and the reason is returned so
 * the caller can report it.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SpikeError } from '../core/errors.ts';

/** System directories that never hold SPIKE data (docs/spike-api.md §10). */
const RESTRICTED_DIRS: readonly string[] = [
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

/** Where a private directory was placed, and why the configured one was not used. */
export interface PrivateDirResolution {
  /** The absolute directory, created with mode 0700. */
  readonly dir: string;
  /** Which rule chose it. */
  readonly source: 'env' | 'home' | 'temp';
  /** Why the configured variable was not used, when it was set but refused. */
  readonly rejected?: string;
}

/** What {@link resolvePrivateDir} resolves. */
export interface PrivateDirSpec {
  /** The variable naming the base directory, e.g. `SPIKE_NEXUS_DATA_DIR`. */
  readonly variable: string;
  /** The last path element, appended to every base, e.g. `data`. */
  readonly suffix: string;
  /** What the directory is, for the error when nothing can be created, e.g. `data directory`. */
  readonly description: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Why a configured base directory is refused, or `undefined` when it is acceptable (docs/spike-api.md
 * §10): made absolute, it must not be `/` nor lie under one of {@link RESTRICTED_DIRS}, and it
 * must be an existing directory or have an existing parent.
 */
export function checkPrivateDir(dir: string): string | undefined {
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

/**
 * Creates `dir` (and its parents) with mode 0700, and sets it to 0700 when it already existed.
 * @throws the file-system error.
 */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

function tempUser(env: Env): string {
  const user = basename(env.USER ?? '');
  return user === '' || user === '.' || user === '..' ? 'spike' : user;
}

/**
 * Resolves and creates the private directory described by `spec` from the environment (see the
 * module header; docs/spike-api.md §10).
 *
 * @throws SpikeError `config_invalid` only when even the temp-directory fallback cannot be
 * created.
 */
export function resolvePrivateDir(env: Env, spec: PrivateDirSpec): PrivateDirResolution {
  let rejected: string | undefined;
  const custom = env[spec.variable];
  if (custom !== undefined && custom !== '') {
    rejected = checkPrivateDir(custom);
    if (rejected === undefined) {
      const dir = join(resolve(custom), spec.suffix);
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
    const dir = join(resolve(home), '.spike', spec.suffix);
    try {
      makePrivateDir(dir);
      return { dir, source: 'home', ...extra };
    } catch {
      // fall through to the temp directory
    }
  }
  const tmp = env.TMPDIR !== undefined && env.TMPDIR !== '' ? resolve(env.TMPDIR) : '/tmp';
  const dir = join(tmp, `.spike-${tempUser(env)}`, spec.suffix);
  try {
    makePrivateDir(dir);
  } catch {
    throw new SpikeError('config_invalid', `cannot create the ${spec.description} ${dir}`);
  }
  return { dir, source: 'temp', ...extra };
}
