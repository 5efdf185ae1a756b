/**
 * Exact error strings, warnings and the status table of the Vault KV v2 API
 * (docs/vault-kv2.md §2, §3, §4). Clients match these byte for byte (hvac and node-vault read
 * `errors[0]`; the Go client parses a 404 with warnings as a secret), so they live in one place.
 *
 * Portable: no runtime APIs.
 */

/** Error strings of the spec's tables (exact text, casing included). */
export const VAULT_ERRORS = Object.freeze({
  permissionDenied: 'permission denied',
  sealed: 'Vault is sealed',
  unsupportedOperation: 'unsupported operation',
  internal: 'internal error',
  wrapping: 'response wrapping is not supported',
  noData: 'no data provided',
  /** delete/ and undelete/ (capital N, as HashiCorp's plugin says it). */
  noVersion: 'No version number provided',
  /** destroy/ (lower-case n). */
  noVersionDestroy: 'no version number provided',
  casMismatch: 'check-and-set parameter did not match the current version',
  casRequired: 'check-and-set parameter required for this call',
  casParse: 'error parsing check-and-set parameter',
  invalidPath: 'invalid secret path',
  invalidJson: 'failed to parse JSON input',
  tooLarge: 'http: request body too large',
  customMetadata: 'custom_metadata validation failed: ',
});

/** Warnings of §3 and §4.4. */
export const VAULT_WARNINGS = Object.freeze({
  root: 'Non-listing operations on the root of a K/V v2 mount are not supported.',
  casIgnored:
    '"cas_required" set to false, but is mandated by backend config. This value will be ignored.',
});

/** The `vault kv <sub>` a path-warning names (§3 "Paths outside these patterns"). */
export type VaultCliVerb = 'put' | 'patch' | 'get' | 'list' | 'delete';

/** The invalid-path warning of §3 for the operation `sub`. */
export function invalidPathWarning(sub: VaultCliVerb): string {
  return `Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv ${sub}' for this operation.`;
}

/** Longest Content-Type echoed in the 415 message; longer ones are cut. */
const MAX_ECHOED_MEDIA_TYPE = 128;

/**
 * The 415 message of §2 PATCH. Only the request's Content-Type header is repeated, clipped and
 * reduced to printable ASCII (it is a header, never a value of the secret).
 */
export function patchContentTypeError(provided: string): string {
  const clean = provided.replace(/[^\x20-\x7e]/g, '').slice(0, MAX_ECHOED_MEDIA_TYPE);
  return `PATCH requires Content-Type of application/merge-patch+json, provided ${clean}`;
}

/** What went wrong, independent of HTTP: the handler maps it through {@link VAULT_STATUS}. */
export type VaultErrorKind =
  | 'bad_request'
  | 'permission_denied'
  | 'not_found'
  | 'unsupported_operation'
  | 'unknown_method'
  | 'too_large'
  | 'unsupported_media_type'
  | 'internal'
  | 'sealed';

/** The status table of §2, the one place a kind becomes an HTTP status (docs/style.md rule 6). */
export const VAULT_STATUS: Readonly<Record<VaultErrorKind, number>> = Object.freeze({
  bad_request: 400,
  permission_denied: 403,
  not_found: 404,
  unsupported_operation: 405,
  unknown_method: 405,
  too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  sealed: 503,
});

/** The audit `err` field of each kind (never a message: messages may name keys). */
export const VAULT_AUDIT_CODE: Readonly<Record<VaultErrorKind, string>> = Object.freeze({
  bad_request: 'api_bad_request',
  permission_denied: 'access_unauthorized',
  not_found: 'api_not_found',
  unsupported_operation: 'api_bad_request',
  unknown_method: 'api_bad_request',
  too_large: 'api_bad_request',
  unsupported_media_type: 'api_bad_request',
  internal: 'api_internal_error',
  sealed: 'state_not_ready',
});
