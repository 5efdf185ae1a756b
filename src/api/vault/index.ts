/**
 * The Vault KV v2 wire contract (docs/vault-kv2.md): paths, envelopes, exact error strings and
 * the status table, shared by the Nexus handler (src/nexus/vault) and the tests. A second
 * contract module beside the SPIKE v1 one. Portable: no runtime APIs.
 */
export {
  formatGoDurationSeconds,
  formatVaultTime,
  parseGoBool,
  vaultEnvelope,
  vaultErrorBody,
} from './envelope.ts';
export {
  invalidPathWarning,
  patchContentTypeError,
  VAULT_AUDIT_CODE,
  VAULT_ERRORS,
  VAULT_STATUS,
  VAULT_WARNINGS,
  type VaultCliVerb,
  type VaultErrorKind,
} from './errors.ts';
export {
  parseVaultDuration,
  validateCustomMetadata,
} from './fields.ts';
export {
  DEFAULT_VAULT_MOUNT,
  isValidVaultMount,
  isVaultRequestPath,
  type KvOperation,
  listChildren,
  parseVaultPath,
  type VaultPath,
} from './paths.ts';
