/**
 * Encryption as a service: the formats of `/v1/cipher/*` (docs/spike-api.md §8).
 *
 * Without a context (the default, upstream's format): AES-256-GCM under the HKDF cipher key,
 * 12-byte random nonce, 16-byte tag, no associated data, format version 1. Stream mode carries
 * `0x01 ‖ nonce ‖ ciphertext ‖ tag` in one body; JSON mode carries the version, nonce and
 * `ciphertext ‖ tag` as separate fields.
 *
 * With a context [Ours, as Vault transit's derived keys]: the key is HKDF-SHA-256 of the cipher
 * key with `info = "spike/v1/cipher-context/" ‖ context` (empty salt), the context is also the
 * associated data, and the format version is 2 (`0x02 ‖ nonce ‖ ciphertext ‖ tag`), so a
 * ciphertext says whether it needs a context. Workloads that use different contexts cannot open
 * each other's ciphertexts.
 *
 * Errors carry the §8 codes; a failed tag check without a context reads "decryption failed"; a
 * context that does not fit the ciphertext is `crypto_context_mismatch`.
 *
 * Portable: Web Crypto only.
 */
import { concatBytes, utf8 } from '../bytes.ts';
import { SpikeError } from '../errors.ts';
import {
  bufferSource,
  DECRYPTION_FAILED,
  ENVELOPE_VERSION,
  gcmDecrypt,
  gcmEncrypt,
  NONCE_LENGTH,
  randomNonce,
} from './envelope.ts';

/** The format version without a context (docs/spike-api.md §8). */
export const CIPHER_VERSION = ENVELOPE_VERSION;
/** The format version of a ciphertext bound to a context (§8 "Context"). */
export const CIPHER_CONTEXT_VERSION = 0x02;
/** Longest context accepted, in bytes (§8 "Context"). */
export const MAX_CONTEXT_BYTES = 1024;
/** HKDF `info` prefix of a context key; the context bytes follow it (§8 "Context"). */
const CONTEXT_INFO_PREFIX = 'spike/v1/cipher-context/';

/** The key a call uses: the cipher key alone, or a context key and its context. */
export type CipherKey = CryptoKey | ContextKey;

/** A key derived for one context, with the context it binds as associated data. */
export interface ContextKey {
  readonly key: CryptoKey;
  readonly context: Uint8Array;
}

/** The JSON-mode parts of a ciphertext. */
export interface CipherParts {
  readonly version: 1 | 2;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** The messages of `crypto_context_mismatch`: they name the rule, never the context. */
const CONTEXT_MESSAGES = Object.freeze({
  required: 'ciphertext is bound to a context: decrypt with the same context',
  unexpected: 'ciphertext has no context: decrypt without one',
  failed: 'decryption failed under this context (wrong context or altered ciphertext)',
});

function isContextKey(key: CipherKey): key is ContextKey {
  return (key as Partial<ContextKey>).context instanceof Uint8Array;
}

/**
 * The key of one context: HKDF-SHA-256 from `cipherContext` (the cipher key as an HKDF key,
 * `DerivedKeys.cipherContext`), empty salt, `info = CONTEXT_INFO_PREFIX ‖ context`.
 *
 * @throws RangeError for an empty context or one over {@link MAX_CONTEXT_BYTES} (callers
 * validate first).
 */
export async function deriveContextKey(
  cipherContext: CryptoKey,
  context: Uint8Array,
): Promise<ContextKey> {
  if (context.length === 0 || context.length > MAX_CONTEXT_BYTES) {
    throw new RangeError(`context must be 1-${MAX_CONTEXT_BYTES} bytes`);
  }
  const own = Uint8Array.from(context);
  const info = concatBytes(utf8.encode(CONTEXT_INFO_PREFIX), own);
  const key = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: bufferSource(info) },
    cipherContext,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
  return { key, context: own };
}

/** Encrypts for stream mode: `version ‖ nonce(12) ‖ ciphertext ‖ tag(16)` (§8). */
export async function encryptCipherStream(
  key: CipherKey,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const { version, nonce, ciphertext } = await encryptCipherParts(key, plaintext);
  return concatBytes(Uint8Array.of(version), nonce, ciphertext);
}

/**
 * Decrypts the stream layout. Errors (§8): empty input → `crypto_failed_to_read_version`;
 * version neither 1 nor 2 → `crypto_unsupported_version`; fewer than 12 nonce bytes →
 * `crypto_failed_to_read_nonce`; a context that does not fit → `crypto_context_mismatch`; wrong
 * key, tampering or a short tag without a context → `crypto_decryption_failed` ("decryption
 * failed").
 */
export async function decryptCipherStream(key: CipherKey, data: Uint8Array): Promise<Uint8Array> {
  if (data.length < 1) {
    throw new SpikeError('crypto_failed_to_read_version', 'crypto_failed_to_read_version');
  }
  const version = data[0];
  if (version !== CIPHER_VERSION && version !== CIPHER_CONTEXT_VERSION) {
    throw new SpikeError('crypto_unsupported_version', 'crypto_unsupported_version');
  }
  if (data.length < 1 + NONCE_LENGTH) {
    throw new SpikeError('crypto_failed_to_read_nonce', 'crypto_failed_to_read_nonce');
  }
  return decryptCipherParts(
    key,
    data.subarray(1, 1 + NONCE_LENGTH),
    data.subarray(1 + NONCE_LENGTH),
    version,
  );
}

/** Encrypts for JSON mode: a fresh nonce and `ciphertext ‖ tag`; version 2 with a context. */
export async function encryptCipherParts(
  key: CipherKey,
  plaintext: Uint8Array,
): Promise<CipherParts> {
  const nonce = randomNonce();
  if (!isContextKey(key)) {
    return { version: 1, nonce, ciphertext: await gcmEncrypt(key, nonce, plaintext) };
  }
  const ciphertext = await gcmEncrypt(key.key, nonce, plaintext, key.context);
  return { version: 2, nonce, ciphertext };
}

/**
 * Decrypts JSON-mode fields of format `version` (1 when absent). A nonce that is not 12 bytes →
 * `crypto_failed_to_read_nonce`; a version that does not fit the key (a context for a version-1
 * ciphertext, none for version 2) or a tag failure under a context → `crypto_context_mismatch`;
 * a tag failure without a context → `crypto_decryption_failed` ("decryption failed"). Checking
 * that the `version` field is 1 or 2 and the size limits is the caller's validation (§8: 400).
 */
export async function decryptCipherParts(
  key: CipherKey,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  version = CIPHER_VERSION,
): Promise<Uint8Array> {
  if (nonce.length !== NONCE_LENGTH) {
    throw new SpikeError('crypto_failed_to_read_nonce', 'crypto_failed_to_read_nonce');
  }
  const bound = isContextKey(key);
  if (bound !== (version === CIPHER_CONTEXT_VERSION)) {
    const message = bound ? CONTEXT_MESSAGES.unexpected : CONTEXT_MESSAGES.required;
    throw new SpikeError('crypto_context_mismatch', message);
  }
  try {
    if (!bound) return await gcmDecrypt(key, nonce, ciphertext);
    return await gcmDecrypt(key.key, nonce, ciphertext, key.context);
  } catch {
    if (bound) throw new SpikeError('crypto_context_mismatch', CONTEXT_MESSAGES.failed);
    throw new SpikeError('crypto_decryption_failed', DECRYPTION_FAILED);
  }
}
