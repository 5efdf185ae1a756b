/**
 * The one table from `SpikeError` codes to HTTP answers (docs/style.md rule 6; docs/spike-api.md §3 table,
 * §8, §9), read by both ends of the wire: Nexus and the Keeper answer with it, the SDK maps an
 * answer back to a code with it.
 *
 * The domain throws codes and never knows a status; this is the single place to audit what a
 * client learns from a failure. Codes that are not wire codes (identity, configuration, internal
 * faults) all leave as `500 api_internal_error`, so nothing about local state leaks. A failed
 * JSON-mode decryption is a 500 as upstream answers it; stream-mode decryption answers
 * `400 text/plain` with the entry's `streamText` (§8).
 *
 * The SDK side follows the upstream Go SDK: the status decides (400, 401, 404, 503; anything else
 * is `net_peer_connection`), and the body's `err` refines it only when `err` is a wire code whose
 * own status is the one answered (409 `state_already_initialized`, 400
 * `crypto_cipher_verification_failed`), or for the stream-mode texts of §8.
 *
 * Portable: no runtime APIs.
 */
import type { SpikeErrorCode, WireErrorCode } from '../../core/errors.ts';

export type { WireErrorCode };

/** A status and the `err` value sent with it. */
export interface HttpError {
  readonly status: number;
  readonly err: WireErrorCode;
}

/** One row of the table: the server's answer and what a client makes of it. */
export interface ErrorRow extends HttpError {
  /** The code the SDK reports for this answer (JSON mode). */
  readonly client: SpikeErrorCode;
  /** The body of a stream-mode decrypt failure (§8), `400 text/plain`. */
  readonly streamText?: string;
  /** The SDK's message for `client` (fixed text: never a value, path or shard). */
  readonly message?: string;
}

const INTERNAL = { status: 500, err: 'api_internal_error', client: 'net_peer_connection' } as const;

/** Every `SpikeErrorCode` → its HTTP answer. Exhaustive: a new code must be placed here. */
export const ERROR_TABLE: Readonly<Record<SpikeErrorCode, ErrorRow>> = Object.freeze({
  api_bad_request: {
    status: 400,
    err: 'api_bad_request',
    client: 'api_bad_request',
    message: 'SPIKE Nexus rejected the request as invalid',
  },
  access_unauthorized: {
    status: 401,
    err: 'access_unauthorized',
    client: 'access_unauthorized',
    message: 'SPIKE Nexus denied access',
  },
  api_not_found: {
    status: 404,
    err: 'api_not_found',
    client: 'api_not_found',
    message: 'SPIKE Nexus has no such entity',
  },
  // The upstream SDK reports any 5xx as a connection failure.
  api_internal_error: INTERNAL,
  state_not_ready: {
    status: 503,
    err: 'state_not_ready',
    client: 'state_not_ready',
    message: 'SPIKE Nexus is not ready yet',
  },
  // The transport's refusal over its connection cap (docs/spike-api.md §12): retry later.
  server_busy: {
    status: 503,
    err: 'server_busy',
    client: 'server_busy',
    message: 'the SPIKE server is at its connection limit',
  },
  // A watch cursor older than the change log's retention window (docs/spike-api.md "Watch"):
  // the client re-reads what it watches and reconnects without a cursor.
  watch_cursor_expired: {
    status: 410,
    err: 'watch_cursor_expired',
    client: 'watch_cursor_expired',
    message: 'the watch cursor is older than the change log keeps',
  },
  state_already_initialized: {
    status: 409,
    err: 'state_already_initialized',
    client: 'state_already_initialized',
    message: 'SPIKE Nexus already holds its root key',
  },
  // A restore whose shares do not give the verified key: the operator's input was wrong (§9).
  crypto_cipher_verification_failed: {
    status: 400,
    err: 'crypto_cipher_verification_failed',
    client: 'crypto_cipher_verification_failed',
    message: 'the shards did not reconstruct the expected root key',
  },
  // Malformed ciphertext from the client: 400 in JSON mode, the text in stream mode (§8).
  crypto_failed_to_read_version: {
    status: 400,
    err: 'api_bad_request',
    client: 'api_bad_request',
    streamText: 'crypto_failed_to_read_version',
    message: 'ciphertext too short to hold a version byte',
  },
  crypto_unsupported_version: {
    status: 400,
    err: 'api_bad_request',
    client: 'api_bad_request',
    streamText: 'crypto_unsupported_version',
    message: 'unsupported ciphertext version',
  },
  crypto_failed_to_read_nonce: {
    status: 400,
    err: 'api_bad_request',
    client: 'api_bad_request',
    streamText: 'crypto_failed_to_read_nonce',
    message: 'ciphertext too short to hold a nonce',
  },
  // A context that does not fit the ciphertext, or a tag failure under a context [Ours, §8
  // "Context"]: the caller's input is wrong, so 400 in both modes.
  crypto_context_mismatch: {
    status: 400,
    err: 'api_bad_request',
    client: 'api_bad_request',
    streamText: 'crypto_context_mismatch',
    message: 'the cipher context does not fit the ciphertext',
  },
  // Tag check failed: 500 as upstream in JSON mode; in stream mode a fixed text.
  crypto_decryption_failed: {
    ...INTERNAL,
    streamText: 'decryption failed',
    message: 'decryption failed',
  },
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

function isCode(code: string): code is SpikeErrorCode {
  return Object.hasOwn(ERROR_TABLE, code);
}

/** The HTTP answer for a code; unknown strings (a foreign error) are a 500. */
export function httpErrorOf(code: string): HttpError {
  return isCode(code) ? ERROR_TABLE[code] : INTERNAL;
}

/** The stream-mode text of a code (§8), or `undefined` when the code has none. */
export function streamTextOf(code: SpikeErrorCode): string | undefined {
  return ERROR_TABLE[code].streamText;
}

/** What a status alone means to a client (docs/spike-api.md §3 "SDK reaction"). */
function clientCodeForStatus(status: number): SpikeErrorCode {
  for (const code of [
    'api_bad_request',
    'access_unauthorized',
    'api_not_found',
    'state_not_ready',
  ] as const) {
    if (ERROR_TABLE[code].status === status) return code;
  }
  return 'net_peer_connection';
}

const BY_STREAM_TEXT: ReadonlyMap<string, SpikeErrorCode> = new Map(
  Object.entries(ERROR_TABLE).flatMap(([code, row]) =>
    row.streamText === undefined ? [] : [[row.streamText, code as SpikeErrorCode] as const],
  ),
);

/**
 * The code a client reports for an answer (see the module header): `err` is the body's `err`
 * field (JSON) or its trimmed text (`text/plain`), `undefined` when the body gave none.
 */
export function clientCodeOf(
  status: number,
  err: string | undefined,
  textPlain: boolean,
): SpikeErrorCode {
  if (err !== undefined) {
    if (textPlain && status === 400) {
      const code = BY_STREAM_TEXT.get(err);
      if (code !== undefined) return code;
    }
    if (isCode(err)) {
      const row = ERROR_TABLE[err];
      // Only a wire code sent as itself, with its own status, refines the status.
      if (row.err === err && row.status === status) return row.client;
    }
  }
  return clientCodeForStatus(status);
}

/** The fixed SDK message for a client code. */
export function clientMessageOf(code: SpikeErrorCode, status: number): string {
  if (code === 'net_peer_connection') return `SPIKE Nexus answered with HTTP status ${status}`;
  return ERROR_TABLE[code].message ?? code;
}
