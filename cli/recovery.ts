/**
 * Recovery files of `spike operator recover` (spike-api.md §10 `SPIKE_PILOT_RECOVERY_DIR`, §11
 * "Recovery file").
 *
 * Directory: `SPIKE_PILOT_RECOVERY_DIR` with `recover` appended, when set and acceptable (the
 * same rules as the Nexus data directory: not `/`, not under a system directory, an existing
 * directory or one whose parent exists); otherwise `~/.spike/recover`; otherwise
 * `.spike-$USER/recover` in the root temp directory. It is created with mode 0700.
 *
 * Files: every `spike.recovery*.txt` already there is deleted first, then one file per shard,
 * `spike.recovery.<index>.txt`, mode 0600, holding one line without a newline. Files are created
 * exclusively (`O_EXCL`), so a file or link planted between the clean-up and the write makes the
 * command fail instead of writing through it. This is the one place where shards touch a disk,
 * deliberately, at the operator's request (ARCHITECTURE.md invariant 1).
 */
import { chmodSync, mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { formatRecoveryLine, type ShardEnvelope } from '../src/core/shamir/shards.ts';
import { checkDataDir } from '../src/nexus/data-dir.ts';

export const RECOVERY_DIR_ENV = 'SPIKE_PILOT_RECOVERY_DIR';

type Env = Readonly<Record<string, string | undefined>>;

export interface RecoveryDir {
  /** Absolute directory, created with mode 0700. */
  readonly dir: string;
  readonly source: 'env' | 'home' | 'temp';
  /** Why `SPIKE_PILOT_RECOVERY_DIR` was not used, when it was set but refused. */
  readonly rejected?: string;
}

function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Resolves and creates the recovery directory (see the module header). */
export function resolveRecoveryDir(env: Env): RecoveryDir {
  let rejected: string | undefined;
  const custom = env[RECOVERY_DIR_ENV];
  if (custom !== undefined && custom !== '') {
    rejected = checkDataDir(custom);
    if (rejected === undefined) {
      const dir = join(resolve(custom), 'recover');
      try {
        makePrivateDir(dir);
        return { dir, source: 'env' };
      } catch {
        rejected = `cannot create ${dir}`;
      }
    }
  }
  const extra = rejected === undefined ? {} : { rejected };
  if (env.HOME !== undefined && env.HOME !== '') {
    const dir = join(resolve(env.HOME), '.spike', 'recover');
    try {
      makePrivateDir(dir);
      return { dir, source: 'home', ...extra };
    } catch {
      // fall through to the temp directory
    }
  }
  const user = basename(env.USER ?? '');
  const safeUser = user === '' || user === '.' || user === '..' ? 'spike' : user;
  const tmp = env.TMPDIR !== undefined && env.TMPDIR !== '' ? resolve(env.TMPDIR) : '/tmp';
  const dir = join(tmp, `.spike-${safeUser}`, 'recover');
  makePrivateDir(dir);
  return { dir, source: 'temp', ...extra };
}

/** True for the names `operator recover` cleans up (`spike.recovery*.txt`). */
export function isRecoveryFileName(name: string): boolean {
  return name.startsWith('spike.recovery') && name.endsWith('.txt');
}

/**
 * Deletes old recovery files in `dir`, then writes one file per envelope. Returns the paths.
 * @throws the file-system error (the caller reports it without any shard content).
 */
export function writeRecoveryFiles(dir: string, envelopes: readonly ShardEnvelope[]): string[] {
  for (const name of readdirSync(dir)) {
    if (isRecoveryFileName(name)) unlinkSync(join(dir, name));
  }
  const written: string[] = [];
  for (const envelope of envelopes) {
    const file = join(dir, `spike.recovery.${envelope.index}.txt`);
    writeFileSync(file, formatRecoveryLine(envelope), { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
    written.push(file);
  }
  return written;
}
