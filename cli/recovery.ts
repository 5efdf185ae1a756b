/**
 * Recovery files of `spike operator recover` (docs/spike-api.md §10 `SPIKE_PILOT_RECOVERY_DIR`, §11
 * "Recovery file").
 *
 * Directory: `SPIKE_PILOT_RECOVERY_DIR` with `recover` appended, when set and acceptable (the
 * same rules as the Nexus data directory: not `/`, not under a system directory, an existing
 * directory or one whose parent exists); otherwise `~/.spike/recover`; otherwise
 * `.spike-$USER/recover` in the root temp directory. It is created with mode 0700. These are the
 * rules of every private SPIKE directory (src/runtime/private-dir.ts).
 *
 * Files: every `spike.recovery*.txt` already there is deleted first, then one file per shard,
 * `spike.recovery.<index>.txt`, mode 0600, holding one line without a newline. Files are created
 * exclusively (`O_EXCL`), so a file or link planted between the clean-up and the write makes the
 * command fail instead of writing through it. This is the one place where shards touch a disk,
 * deliberately, at the operator's request (docs/architecture.md invariant 1).
 */
import { chmodSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatRecoveryLine, type ShardEnvelope } from '../src/core/shamir/shards.ts';
import { type PrivateDirResolution, resolvePrivateDir } from '../src/runtime/private-dir.ts';

const RECOVERY_DIR_ENV = 'SPIKE_PILOT_RECOVERY_DIR';

type Env = Readonly<Record<string, string | undefined>>;

/** The recovery directory, which rule chose it, and why `SPIKE_PILOT_RECOVERY_DIR` was refused. */
export type RecoveryDir = PrivateDirResolution;

/**
 * Resolves and creates the recovery directory (see the module header).
 * @throws SpikeError `config_invalid` when even the temp-directory fallback cannot be created.
 */
export function resolveRecoveryDir(env: Env): RecoveryDir {
  return resolvePrivateDir(env, {
    variable: RECOVERY_DIR_ENV,
    suffix: 'recover',
    description: 'recovery directory',
  });
}

/** True for the names `operator recover` cleans up (`spike.recovery*.txt`). */
function isRecoveryFileName(name: string): boolean {
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
