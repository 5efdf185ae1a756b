/**
 * Where the SQLite backend keeps its database: the `SPIKE_NEXUS_DATA_DIR` rules of
 * docs/spike-api.md §10 (upstream behaviour kept).
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
 *
 * The rules are those of every private SPIKE directory; they live in src/runtime/private-dir.ts,
 * shared with the Pilot's recovery directory.
 */
import {
  checkPrivateDir,
  type PrivateDirResolution,
  resolvePrivateDir,
} from '../runtime/private-dir.ts';

/** Database file name inside the data directory. */
export const DATABASE_FILE = 'spike.db';

/** The data directory, which rule chose it, and why `SPIKE_NEXUS_DATA_DIR` was refused if it was. */
export type DataDirResolution = PrivateDirResolution;

type Env = Readonly<Record<string, string | undefined>>;

/** Why a configured data directory is refused, or `undefined` when it is acceptable (§10). */
export function checkDataDir(dir: string): string | undefined {
  return checkPrivateDir(dir);
}

/**
 * Resolves and creates the Nexus data directory from the environment (§10). Throws
 * `config_invalid` only when even the temp-directory fallback cannot be created.
 */
export function resolveDataDir(env: Env): DataDirResolution {
  return resolvePrivateDir(env, {
    variable: 'SPIKE_NEXUS_DATA_DIR',
    suffix: 'data',
    description: 'data directory',
  });
}
