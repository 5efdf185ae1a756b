/**
 * Encryption as a service (docs/spike-api.md §8): `POST /v1/cipher/encrypt` and
 * `POST /v1/cipher/decrypt`, in stream mode (`Content-Type: application/octet-stream`, the body
 * is `0x01 ‖ nonce ‖ ciphertext ‖ tag`) or JSON mode. Both formats are those of
 * src/core/crypto/cipher.ts and its vectors; this module only reads requests and writes answers.
 *
 * Encrypt reads its body before authorising (§3); decrypt authorises first (§8). Stream-mode
 * failures of the ciphertext itself answer `400 text/plain` with the table's text (§8).
 */
import { streamTextOf } from '../../api/v1/errors.ts';
import { jsonResponse, octetResponse, streamErrorResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { toBase64 } from '../../core/bytes.ts';
import {
  decryptCipherParts,
  decryptCipherStream,
  encryptCipherParts,
  encryptCipherStream,
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

/** Stream-mode decrypt: the tested stream format, failures as `400 text/plain` (§8). */
async function decryptStream(ctx: RouteContext): Promise<Response> {
  const body = await ctx.body();
  if (body.length - 1 - NONCE_BYTES > ctx.deps.maxCipherBytes) {
    throw tooLargeForCipher('ciphertext', ctx.deps.maxCipherBytes);
  }
  const keys = ctx.keys();
  try {
    return octetResponse(await decryptCipherStream(keys.cipher, body));
  } catch (error) {
    if (!isSpikeError(error)) throw error;
    const text = streamTextOf(error.code);
    if (text === undefined) throw error;
    ctx.setAuditError(error.code);
    return streamErrorResponse(text);
  }
}

/** The cipher routes. */
export const CIPHER_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.encrypt,
    async decode(ctx) {
      if (isStreamMode(ctx.request)) return { stream: true, plaintext: await ctx.body() };
      const req = await ctx.json(REQUEST.encrypt);
      return { stream: false, plaintext: req.plaintext ?? new Uint8Array(0) };
    },
    guard: () => EXECUTE,
    async handle(ctx, { stream, plaintext }) {
      if (plaintext.length > ctx.deps.maxCipherBytes) {
        throw tooLargeForCipher('plaintext', ctx.deps.maxCipherBytes);
      }
      const key = ctx.keys().cipher;
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
    async handle(ctx) {
      if (isStreamMode(ctx.request)) return decryptStream(ctx);
      const req = await ctx.json(REQUEST.decrypt);
      if (req.version !== 1) {
        throw new SpikeError('api_bad_request', 'invalid version: only version 1 exists');
      }
      const nonce = requireNonce(req.nonce);
      const ciphertext = req.ciphertext ?? new Uint8Array(0);
      if (ciphertext.length > ctx.deps.maxCipherBytes) {
        throw tooLargeForCipher('ciphertext', ctx.deps.maxCipherBytes);
      }
      if (ciphertext.length < TAG_BYTES) {
        throw new SpikeError('api_bad_request', 'invalid ciphertext: shorter than the tag');
      }
      const plaintext = await decryptCipherParts(ctx.keys().cipher, nonce, ciphertext);
      return jsonResponse(200, { plaintext: toBase64(plaintext) });
    },
  }),
];
