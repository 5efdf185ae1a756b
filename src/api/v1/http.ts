/**
 * The headers and response builders of the SPIKE v1 API (docs/spike-api.md §3, §8, §12),
 * shared by Nexus and the Keeper so that both answer byte for byte the same way.
 *
 * Every answer carries the no-store set: secrets and shards must never sit in a cache. Error
 * answers are the route's zero-valued body plus `err`, with the status from the one error table
 * (./errors.ts).
 *
 * Portable: Web `Response` and `Headers` only.
 */
import { bufferSource } from '../../core/crypto/envelope.ts';
import type { SpikeErrorCode } from '../../core/errors.ts';
import { httpErrorOf, type WireErrorCode } from './errors.ts';

/** The cache headers of every answer. */
const NO_STORE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cache-Control': 'no-store, no-cache, must-revalidate, private',
  Pragma: 'no-cache',
  Expires: '0',
});

/** Content types of the API. */
export const CONTENT_TYPES = Object.freeze({
  json: 'application/json',
  octet: 'application/octet-stream',
  text: 'text/plain; charset=utf-8',
} as const);

/** True for a `text/plain` content type, parameters or not (stream-mode decrypt errors, §8). */
export function isTextPlain(contentType: string | null | undefined): boolean {
  return contentType?.startsWith('text/plain') === true;
}

// `Headers` objects: a `Response` copies them (cheaper from `Headers` than from a record), so the
// shared objects are never changed by what happens to a response.
const JSON_HEADERS = new Headers({ ...NO_STORE_HEADERS, 'Content-Type': CONTENT_TYPES.json });
const OCTET_HEADERS = new Headers({ ...NO_STORE_HEADERS, 'Content-Type': CONTENT_TYPES.octet });
const TEXT_HEADERS = new Headers({ ...NO_STORE_HEADERS, 'Content-Type': CONTENT_TYPES.text });
const RETRY_HEADERS = new Headers({
  ...NO_STORE_HEADERS,
  'Content-Type': CONTENT_TYPES.json,
  'Retry-After': '1',
});

/** A JSON answer. */
export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** A 200 `application/octet-stream` answer (stream-mode cipher, §8). */
export function octetResponse(body: Uint8Array): Response {
  return new Response(bufferSource(body), { status: 200, headers: OCTET_HEADERS });
}

/** A 400 `text/plain` answer of stream-mode decryption (§8). */
export function streamErrorResponse(text: string): Response {
  return new Response(`${text}\n`, { status: 400, headers: TEXT_HEADERS });
}

/**
 * The header that carries the rule a `400` broke (e.g. `invalid pathPattern: not a valid RE2
 * expression`, `ciphertext over 65536 bytes`), next to the upstream body `{ ..., err }` that stays
 * as it is. Only on 400s: the text names a field or rule, never a value (every validation message
 * is fixed text); other statuses say nothing beyond their code.
 */
export const REASON_HEADER = 'spike-error-reason';

/**
 * The stream-mode cipher context [Ours, docs/spike-api.md §8 "Context"]: standard base64 of the
 * context bytes; absent or empty = no context. (JSON mode has the `context` field instead.)
 */
export const CIPHER_CONTEXT_HEADER = 'spike-cipher-context';

/** Longest reason sent; longer texts are cut. */
const MAX_REASON = 200;

/** The reason as a header value: printable ASCII only, bounded. */
function headerSafe(reason: string): string {
  const clean = reason.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_REASON ? clean.slice(0, MAX_REASON) : clean;
}

/** An error answer and the wire code it carries (for the audit line). */
export interface ErrorAnswer {
  readonly response: Response;
  readonly err: WireErrorCode;
}

/** The error answer for `code`: status from the table, `zero` plus `err` as the body. */
export function errorResponse(
  code: SpikeErrorCode | string,
  zero: Readonly<Record<string, unknown>>,
  reason?: string,
): ErrorAnswer {
  const { status, err } = httpErrorOf(code);
  const body = JSON.stringify({ ...zero, err });
  if (status === 503) {
    // Not ready yet (no root key, or a database another process holds): come back shortly.
    return { response: new Response(body, { status, headers: RETRY_HEADERS }), err };
  }
  if (status !== 400 || reason === undefined || reason === '') {
    return { response: new Response(body, { status, headers: JSON_HEADERS }), err };
  }
  const headers = new Headers(JSON_HEADERS);
  headers.set(REASON_HEADER, headerSafe(reason));
  return { response: new Response(body, { status, headers }), err };
}

/** The probe answers (§12): `/health` always, `/ready` by state. */
export function probeResponse(path: '/health' | '/ready', ready: boolean): Response {
  if (path === '/health') return jsonResponse(200, { status: 'ok' });
  if (ready) return jsonResponse(200, { status: 'ready' });
  return jsonResponse(httpErrorOf('state_not_ready').status, {
    status: 'not_ready',
    err: httpErrorOf('state_not_ready').err,
  });
}
