/**
 * How the SDK turns Nexus answers into typed errors (spec/spike-api.md §3 "SDK reaction", §8,
 * §9).
 *
 * A non-200 answer is mapped by its status alone, as the upstream Go SDK does: 404 →
 * `api_not_found`, 401 → `access_unauthorized`, 400 → `api_bad_request`, 503 →
 * `state_not_ready`, anything else → `net_peer_connection`. The body is read only where the
 * status cannot tell the cases apart and the spec gives the body a meaning: 409 on restore
 * (`state_already_initialized`), 400 `crypto_cipher_verification_failed` on restore, and the
 * `text/plain` codes of stream-mode decryption (§8). A 200 that carries `err`, or whose body is
 * not what the route answers, is `api_internal_error` ("the answer could not be read"); the
 * SDK never reports such a call as a success.
 *
 * Every error is a `SpikeError` (branch on `code`); `SpikeApiError` adds the HTTP status when
 * Nexus answered at all, so a caller can tell "Nexus said no" from "Nexus was not reached".
 * Messages are fixed text: they never carry a secret value, a path or a shard.
 */
import { SpikeError, type SpikeErrorCode } from '../core/errors.ts';

/**
 * A failed SPIKE API call. `status` is the HTTP status Nexus answered with, or `undefined` when
 * no answer arrived (connection refused, reset, timeout, server identity rejected).
 */
export class SpikeApiError extends SpikeError {
  readonly status: number | undefined;

  constructor(
    code: SpikeErrorCode,
    message: string,
    status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = status;
  }
}

/** The status table of spike-api.md §3 ("SDK reaction"). */
export function codeForStatus(status: number): SpikeErrorCode {
  switch (status) {
    case 400:
      return 'api_bad_request';
    case 401:
      return 'access_unauthorized';
    case 404:
      return 'api_not_found';
    case 503:
      return 'state_not_ready';
    default:
      return 'net_peer_connection';
  }
}

const MESSAGES: Partial<Record<SpikeErrorCode, string>> = {
  api_bad_request: 'SPIKE Nexus rejected the request as invalid',
  access_unauthorized: 'SPIKE Nexus denied access',
  api_not_found: 'SPIKE Nexus has no such entity',
  state_not_ready: 'SPIKE Nexus is not ready yet',
  state_already_initialized: 'SPIKE Nexus already holds its root key',
  crypto_cipher_verification_failed: 'the shards did not reconstruct the expected root key',
  crypto_failed_to_read_version: 'ciphertext too short to hold a version byte',
  crypto_unsupported_version: 'unsupported ciphertext version',
  crypto_failed_to_read_nonce: 'ciphertext too short to hold a nonce',
  crypto_decryption_failed: 'decryption failed',
};

/** Body codes that refine a status (see the module header). */
const REFINED: Readonly<Record<number, readonly SpikeErrorCode[]>> = {
  400: ['crypto_cipher_verification_failed'],
  409: ['state_already_initialized'],
};

/** Stream-mode decrypt failure texts (§8) → codes. */
const STREAM_TEXT: Readonly<Record<string, SpikeErrorCode>> = {
  crypto_failed_to_read_version: 'crypto_failed_to_read_version',
  crypto_unsupported_version: 'crypto_unsupported_version',
  crypto_failed_to_read_nonce: 'crypto_failed_to_read_nonce',
  'decryption failed': 'crypto_decryption_failed',
};

function bodyErr(body: Uint8Array, contentType: string | undefined): string | undefined {
  if (body.length === 0 || body.length > 4096) return undefined;
  const text = new TextDecoder().decode(body);
  if (contentType?.startsWith('text/plain')) return text.trim();
  try {
    const parsed = JSON.parse(text) as { err?: unknown };
    return typeof parsed?.err === 'string' ? parsed.err : undefined;
  } catch {
    return undefined;
  }
}

/** The error for a non-200 answer (spike-api.md §3, refined as the module header says). */
export function errorForResponse(
  status: number,
  body: Uint8Array,
  contentType: string | undefined,
): SpikeApiError {
  let code = codeForStatus(status);
  const err = bodyErr(body, contentType);
  if (err !== undefined) {
    if (status === 400 && contentType?.startsWith('text/plain') && STREAM_TEXT[err]) {
      code = STREAM_TEXT[err];
    } else if (REFINED[status]?.includes(err as SpikeErrorCode)) {
      code = err as SpikeErrorCode;
    }
  }
  const message =
    code === 'net_peer_connection'
      ? `SPIKE Nexus answered with HTTP status ${status}`
      : (MESSAGES[code] ?? code);
  return new SpikeApiError(code, message, status);
}

/** A 200 whose body is not what the route answers (or carries `err`). */
export function malformedResponse(what: string): SpikeApiError {
  return new SpikeApiError(
    'api_internal_error',
    `SPIKE Nexus sent an unreadable response (${what})`,
    200,
  );
}
