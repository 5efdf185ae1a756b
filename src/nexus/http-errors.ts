/**
 * The one table from `SpikeError` codes to HTTP statuses and wire `err` codes (STYLE.md rule 6,
 * spec/spike-api.md §3 table, §8, §9).
 *
 * The domain throws codes and never knows a status; this is the single place to audit what a
 * client learns from a failure. Codes that are not wire codes (identity, configuration, internal
 * faults) all leave as `500 api_internal_error`, so nothing about local state leaks. A failed
 * JSON-mode decryption is a 500 as upstream answers it [U]; stream-mode decryption has its own
 * text answers (§8), produced by the cipher route from the same codes.
 */
import type { SpikeErrorCode } from '../core/errors.ts';

/** A status and the `err` value sent with it. */
export interface HttpError {
  readonly status: number;
  readonly err: WireErrorCode;
}

/** The `err` codes Nexus puts on the wire. */
export type WireErrorCode =
  | 'api_bad_request'
  | 'access_unauthorized'
  | 'api_not_found'
  | 'api_internal_error'
  | 'state_not_ready'
  | 'state_already_initialized'
  | 'crypto_cipher_verification_failed';

const INTERNAL: HttpError = { status: 500, err: 'api_internal_error' };

/** Every `SpikeErrorCode` → its HTTP answer. Exhaustive: a new code must be placed here. */
const HTTP_ERRORS: Readonly<Record<SpikeErrorCode, HttpError>> = Object.freeze({
  api_bad_request: { status: 400, err: 'api_bad_request' },
  access_unauthorized: { status: 401, err: 'access_unauthorized' },
  api_not_found: { status: 404, err: 'api_not_found' },
  api_internal_error: INTERNAL,
  state_not_ready: { status: 503, err: 'state_not_ready' },
  state_already_initialized: { status: 409, err: 'state_already_initialized' },
  // A restore whose shares do not give the verified key: the operator's input was wrong (§9).
  crypto_cipher_verification_failed: { status: 400, err: 'crypto_cipher_verification_failed' },
  // Malformed ciphertext from the client (JSON mode; stream mode answers in text, §8).
  crypto_failed_to_read_version: { status: 400, err: 'api_bad_request' },
  crypto_unsupported_version: { status: 400, err: 'api_bad_request' },
  crypto_failed_to_read_nonce: { status: 400, err: 'api_bad_request' },
  // Tag check failed: 500 as upstream [U]; the code says nothing more.
  crypto_decryption_failed: INTERNAL,
  net_peer_connection: INTERNAL,
  spiffe_invalid_id: INTERNAL,
  spiffe_invalid_trust_domain: INTERNAL,
  spiffe_invalid_address: INTERNAL,
  svid_invalid: INTERNAL,
  svid_untrusted: INTERNAL,
  svid_unauthorized: INTERNAL,
  workload_api_error: INTERNAL,
  workload_api_timeout: INTERNAL,
  config_invalid: INTERNAL,
});

/** The HTTP answer for a code; unknown strings (a foreign error) are a 500. */
export function httpErrorOf(code: string): HttpError {
  return Object.hasOwn(HTTP_ERRORS, code) ? HTTP_ERRORS[code as SpikeErrorCode] : INTERNAL;
}
