/**
 * The Vault API's environment (docs/vault-kv2.md §1): `SPIKE_NEXUS_VAULT_API` (default off) and
 * `SPIKE_NEXUS_VAULT_MOUNT` (default `secret`). For the Nexus entry point to read and pass on.
 */
import { DEFAULT_VAULT_MOUNT, isValidVaultMount } from '../../api/vault/index.ts';
import { SpikeError } from '../../core/errors.ts';

export interface VaultEnv {
  /** Serve the Vault KV v2 API beside the SPIKE API. */
  readonly enabled: boolean;
  readonly mount: string;
}

/**
 * Reads §1's variables. `SPIKE_NEXUS_VAULT_API` is true for `true`/`1` (any case), else false.
 *
 * @throws SpikeError `config_invalid` for a mount that is not one `[a-zA-Z0-9_-]+` segment or is
 *   a reserved name (`store`, `acl`, `cipher`, `operator`, `bootstrap`, `auth`, `sys`, `identity`).
 */
export function readVaultEnv(env: Readonly<Record<string, string | undefined>>): VaultEnv {
  const flag = env.SPIKE_NEXUS_VAULT_API?.trim().toLowerCase();
  const raw = env.SPIKE_NEXUS_VAULT_MOUNT?.trim();
  const mount = raw === undefined || raw === '' ? DEFAULT_VAULT_MOUNT : raw;
  if (!isValidVaultMount(mount)) {
    throw new SpikeError(
      'config_invalid',
      'SPIKE_NEXUS_VAULT_MOUNT must be one segment of letters, digits, _ and - and not a reserved name',
    );
  }
  return { enabled: flag === 'true' || flag === '1', mount };
}
