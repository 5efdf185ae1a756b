/**
 * One error class for expected outcomes, with a string `code` to switch on.
 *
 * Codes that cross the wire are exactly the SPIKE v1 codes (docs/spike-api.md §3, §8, §9);
 * the others are local (identity, configuration). Messages never carry secret material:
 * callers pass fixed text, and decryption failures always use the same message.
 * Programmer mistakes throw built-in `TypeError` / `RangeError` instead (docs/style.md rule 8).
 */

/** The `err` codes that travel on the wire (docs/spike-api.md §3, §8, §9). */
export type WireErrorCode =
  | 'api_bad_request'
  | 'access_unauthorized'
  | 'api_not_found'
  | 'api_internal_error'
  | 'state_not_ready'
  | 'state_already_initialized'
  | 'server_busy'
  | 'watch_cursor_expired'
  | 'crypto_cipher_verification_failed';

export type SpikeErrorCode =
  | WireErrorCode
  | 'crypto_failed_to_read_version'
  | 'crypto_unsupported_version'
  | 'crypto_failed_to_read_nonce'
  | 'crypto_decryption_failed'
  | 'crypto_context_mismatch'
  | 'net_peer_connection'
  // identity (docs/spiffe.md)
  | 'spiffe_invalid_id'
  | 'spiffe_invalid_trust_domain'
  | 'spiffe_invalid_address'
  | 'svid_invalid'
  | 'svid_untrusted'
  | 'svid_unauthorized'
  | 'workload_api_error'
  | 'workload_api_timeout'
  // local
  | 'config_invalid';

export class SpikeError extends Error {
  override readonly name = 'SpikeError';
  readonly code: SpikeErrorCode;

  constructor(code: SpikeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True for any `SpikeError`, also across duplicate module copies (checks the shape, not the class). */
export function isSpikeError(value: unknown): value is SpikeError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { name?: unknown }).name === 'SpikeError' &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}
