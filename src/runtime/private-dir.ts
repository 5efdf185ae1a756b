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
 * The chosen directory is created with mode 0700 (and set to 0700 if it already existed). In the
 * shared temp directory, `.spike-$USER` is first checked ({@link checkTempBase}) and never
 * tightened or reused when another user could have planted or can move it. A
 * rejected or unusable `<variable>` falls back to the next option and the reason is returned so
 * the caller can report it.
 */
import { chmodSync, lstatSync, mkdirSync, statSync } from 'node:fs';
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

/** Any permission bit for group or other. */
const GROUP_OTHER_BITS = 0o077;
/** Write permission for group or other. */
const GROUP_OTHER_WRITE = 0o022;
/** The sticky bit: only an entry's owner (or the directory's owner) may rename or delete it. */
const STICKY_BIT = 0o1000;

/**
 * Why the temp-directory base `base` (`.spike-$USER` inside `tmp`) must not be used, or
 * `undefined` when it is safe (docs/spike-api.md §10.1). `tmp` must be a directory owned by us
 * or root, and sticky when group or other may write to it; an existing `base` must be a real
 * directory (not a symlink), owned by us, with no group or other permission bit. A missing
 * `base` is acceptable. Without POSIX user ids (Windows) nothing is checked.
 */
function checkTempBase(tmp: string, base: string): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  // Followed: `/tmp` is a root-owned symlink on macOS; the directory it names is what is checked.
  const parent = statSync(tmp, { throwIfNoEntry: false });
  if (parent === undefined) return `${tmp} does not exist`;
  if (!parent.isDirectory()) return `${tmp} is not a directory`;
  if (parent.uid !== uid && parent.uid !== 0) {
    return `${tmp} is owned by uid ${parent.uid}, not by uid ${uid} or root`;
  }
  if ((parent.mode & GROUP_OTHER_WRITE) !== 0 && (parent.mode & STICKY_BIT) === 0) {
    return `${tmp} is writable by others but not sticky (mode ${octal(parent.mode)}; want 1777)`;
  }
  const st = lstatSync(base, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (st.isSymbolicLink()) return `${base} is a symlink`;
  if (!st.isDirectory()) return `${base} is not a directory`;
  if (st.uid !== uid) return `${base} is owned by uid ${st.uid}, not by uid ${uid}`;
  if ((st.mode & GROUP_OTHER_BITS) !== 0) {
    return `${base} has mode ${octal(st.mode)}; it must grant nothing to group or other (chmod 700)`;
  }
  return undefined;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Checks `base` ({@link checkTempBase}), creates it with mode 0700 when missing (never through a
 * symlink), and checks it again, so a directory planted between the check and `mkdir` is refused.
 * @throws SpikeError `config_invalid` naming the directory and the rule.
 */
function makeTempBase(tmp: string, base: string, description: string): void {
  const refuse = (why: string): SpikeError =>
    new SpikeError('config_invalid', `refusing the ${description} fallback: ${why}`);
  const before = checkTempBase(tmp, base);
  if (before !== undefined) throw refuse(before);
  try {
    mkdirSync(base, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) {
      throw new SpikeError('config_invalid', `cannot create the ${description} ${base}`);
    }
  }
  const after = checkTempBase(tmp, base);
  if (after !== undefined) throw refuse(after);
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
 * created or is refused by {@link checkTempBase}.
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
  const base = join(tmp, `.spike-${tempUser(env)}`);
  const dir = join(base, spec.suffix);
  makeTempBase(tmp, base, spec.description);
  try {
    makePrivateDir(dir);
  } catch {
    throw new SpikeError('config_invalid', `cannot create the ${spec.description} ${dir}`);
  }
  return { dir, source: 'temp', ...extra };
}
