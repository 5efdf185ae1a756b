/**
 * Encryption as a service (docs/spike-api.md §8): `POST /v1/cipher/encrypt` and
 * `POST /v1/cipher/decrypt`, in stream mode (`Content-Type: application/octet-stream`, the body
 * is `version ‖ nonce ‖ ciphertext ‖ tag`) or JSON mode. Both formats are those of
 * src/core/crypto/cipher.ts and its vectors; this module only reads requests and writes answers.
 *
 * The optional context (§8 "Context") comes from the JSON `context` field or, in stream mode,
 * from the `spike-cipher-context` header (base64); absent or empty means upstream's shared key.
 *
 * Encrypt reads its body before authorising (§3); decrypt authorises first (§8). Stream-mode
 * failures of the ciphertext itself answer `400 text/plain` with the table's text (§8).
 */
import { streamTextOf } from '../../api/v1/errors.ts';
import {
  CIPHER_CONTEXT_HEADER,
  jsonResponse,
  octetResponse,
  streamErrorResponse,
} from '../../api/v1/http.ts';
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { fromBase64, toBase64 } from '../../core/bytes.ts';
import {
  CIPHER_CONTEXT_VERSION,
  CIPHER_VERSION,
  type CipherKey,
  decryptCipherParts,
  decryptCipherStream,
  deriveContextKey,
  encryptCipherParts,
  encryptCipherStream,
  MAX_CONTEXT_BYTES,
} from '../../core/crypto/cipher.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import { CIPHER_EXEC_PATH } from '../../core/policy/engine.ts';
import { defineRoute, type Guard, type NexusRoute, type RouteContext } from './route.ts';

/** Bytes of the AES-GCM nonce and tag (§8). */
const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

const EXECUTE: Guard = { path: CIPHER_EXEC_PATH, permission: 'execute' };

function isStreamMode(request: Request): boolean {
  // §8: exactly this value selects stream mode; anything else (parameters included) is JSON.
  return request.headers.get('content-type') === 'application/octet-stream';
}

function tooLargeForCipher(what: 'plaintext' | 'ciphertext', max: number): SpikeError {
  return new SpikeError('api_bad_request', `${what} over ${max} bytes`);
}

/** The nonce of a JSON request: exactly 12 bytes (§8). */
export function requireNonce(nonce: Uint8Array | null): Uint8Array {
  if (nonce === null || nonce.length !== NONCE_BYTES) {
    throw new SpikeError('api_bad_request', 'invalid nonce: expected 12 bytes');
  }
  return nonce;
}

/** The stream-mode context: the header's base64, `null` when absent or empty (§8 "Context"). */
function headerContext(request: Request): Uint8Array | null {
  const value = request.headers.get(CIPHER_CONTEXT_HEADER);
  if (value === null || value === '') return null;
  // More base64 than the longest context can need is refused before decoding.
  if (value.length > Math.ceil(MAX_CONTEXT_BYTES / 3) * 4) throw contextTooLong();
  try {
    return fromBase64(value);
  } catch {
    throw new SpikeError(
      'api_bad_request',
      `invalid ${CIPHER_CONTEXT_HEADER} header: expected standard base64 with padding`,
    );
  }
}

function contextTooLong(): SpikeError {
  return new SpikeError('api_bad_request', `invalid context: over ${MAX_CONTEXT_BYTES} bytes`);
}

/** The key for a request: the cipher key, or the key of its context (§8 "Context"). */
async function keyFor(ctx: RouteContext, context: Uint8Array | null): Promise<CipherKey> {
  const keys = ctx.keys();
  if (context === null || context.length === 0) return keys.cipher;
  if (context.length > MAX_CONTEXT_BYTES) throw contextTooLong();
  return deriveContextKey(keys.cipherContext, context);
}

/** Stream-mode decrypt: the tested stream format, failures as `400 text/plain` (§8). */
async function decryptStream(ctx: RouteContext): Promise<Response> {
  const key = await keyFor(ctx, headerContext(ctx.request));
  const body = await ctx.body();
  if (body.length - 1 - NONCE_BYTES > ctx.deps.maxCipherBytes) {
    throw tooLargeForCipher('ciphertext', ctx.deps.maxCipherBytes);
  }
  try {
    return octetResponse(await decryptCipherStream(key, body));
  } catch (error) {
    if (!isSpikeError(error)) throw error;
    const text = streamTextOf(error.code);
    if (text === undefined) throw error;
    ctx.setAuditError(error.code);
    return streamErrorResponse(text);
  }
}

/** JSON-mode decrypt (§8): version 1, or 2 for a context-bound ciphertext. */
async function decryptJson(ctx: RouteContext): Promise<Response> {
  const req = await ctx.json(REQUEST.decrypt);
  if (req.version !== CIPHER_VERSION && req.version !== CIPHER_CONTEXT_VERSION) {
    throw new SpikeError(
      'api_bad_request',
      'invalid version: 1 (no context) or 2 (with a context) expected',
    );
  }
  const nonce = requireNonce(req.nonce);
  const ciphertext = req.ciphertext ?? new Uint8Array(0);
  if (ciphertext.length > ctx.deps.maxCipherBytes) {
    throw tooLargeForCipher('ciphertext', ctx.deps.maxCipherBytes);
  }
  if (ciphertext.length < TAG_BYTES) {
    throw new SpikeError('api_bad_request', 'invalid ciphertext: shorter than the 16-byte tag');
  }
  const key = await keyFor(ctx, req.context);
  const plaintext = await decryptCipherParts(key, nonce, ciphertext, req.version);
  return jsonResponse(200, { plaintext: toBase64(plaintext) });
}

/** The cipher routes. */
export const CIPHER_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.encrypt,
    async decode(ctx) {
      if (isStreamMode(ctx.request)) {
        return { stream: true, plaintext: await ctx.body(), context: null };
      }
      const req = await ctx.json(REQUEST.encrypt);
      return { stream: false, plaintext: req.plaintext ?? new Uint8Array(0), context: req.context };
    },
    guard: () => EXECUTE,
    async handle(ctx, { stream, plaintext, context }) {
      if (plaintext.length > ctx.deps.maxCipherBytes) {
        throw tooLargeForCipher('plaintext', ctx.deps.maxCipherBytes);
      }
      const key = await keyFor(ctx, stream ? headerContext(ctx.request) : context);
      if (stream) return octetResponse(await encryptCipherStream(key, plaintext));
      const parts = await encryptCipherParts(key, plaintext);
      return jsonResponse(200, {
        version: parts.version,
        nonce: toBase64(parts.nonce),
        ciphertext: toBase64(parts.ciphertext),
      });
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.decrypt,
    // Decrypt authorises before it reads the body (§8).
    decode: async () => undefined,
    guard: () => EXECUTE,
    handle: (ctx) => (isStreamMode(ctx.request) ? decryptStream(ctx) : decryptJson(ctx)),
  }),
];
