/**
 * How the SDK turns Nexus answers into typed errors (docs/spike-api.md §3 "SDK reaction", §8,
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
 * The mapping itself is the one error table of the wire contract (src/api/v1/errors.ts); this
 * module only reads the body. Every error is a `SpikeError` (branch on `code`); `SpikeApiError`
 * adds the HTTP status when Nexus answered at all, so a caller can tell "Nexus said no" from "Nexus was not reached".
 * Messages are fixed text: they never carry a secret value, a path or a shard.
 */
import { clientCodeOf, clientMessageOf } from '../api/v1/errors.ts';
import { isTextPlain } from '../api/v1/http.ts';
import { isSpikeError, SpikeError, type SpikeErrorCode } from '../core/errors.ts';

/**
 * A failed SPIKE API call. `status` is the HTTP status Nexus answered with, or `undefined` when
 * no answer arrived (connection refused, reset, timeout, server identity rejected).
 */
export class SpikeApiError extends SpikeError {
  readonly status: number | undefined;
  /**
   * The rule a `400` broke, as Nexus named it (`spike-error-reason`, e.g. `invalid pathPattern:
   * not a valid RE2 expression`); `undefined` when Nexus gave none.
   */
  readonly reason: string | undefined;
  /**
   * True when no answer arrived but the request may have reached Nexus (the connection dropped
   * or timed out after it was sent): a write may have been applied. Such a write is never sent
   * again by the SDK (docs/spike-api.md §10.2); read back to find out.
   */
  readonly maybeApplied: boolean;

  constructor(
    code: SpikeErrorCode,
    message: string,
    status: number | undefined,
    options?: { cause?: unknown; reason?: string; maybeApplied?: boolean },
  ) {
    super(code, message, options);
    this.status = status;
    this.reason = options?.reason;
    this.maybeApplied = options?.maybeApplied === true;
  }
}

function bodyErr(body: Uint8Array, contentType: string | undefined): string | undefined {
  if (body.length === 0 || body.length > 4096) return undefined;
  const text = new TextDecoder().decode(body);
  if (isTextPlain(contentType)) return text.trim();
  try {
    const parsed = JSON.parse(text) as { err?: unknown };
    return typeof parsed?.err === 'string' ? parsed.err : undefined;
  } catch {
    return undefined;
  }
}

/** The error for a non-200 answer (docs/spike-api.md §3, refined as the module header says). */
export function errorForResponse(
  status: number,
  body: Uint8Array,
  contentType: string | undefined,
  reason?: string,
): SpikeApiError {
  const code = clientCodeOf(status, bodyErr(body, contentType), isTextPlain(contentType));
  const message = clientMessageOf(code, status);
  return new SpikeApiError(code, message, status, reason === undefined ? {} : { reason });
}

/** A 200 whose body is not what the route answers (or carries `err`). */
export function malformedResponse(what: string): SpikeApiError {
  return new SpikeApiError(
    'api_internal_error',
    `SPIKE Nexus sent an unreadable response (${what})`,
    200,
  );
}

/** True for a `SpikeApiError` (checks the shape, not the class: errors branch on `code`). */
export function isSpikeApiError(value: unknown): value is SpikeApiError {
  return isSpikeError(value) && 'status' in value;
}
