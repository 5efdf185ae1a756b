/**
 * Encryption as a service: the formats of `/v1/cipher/*` (docs/spike-api.md §8).
 *
 * AES-256-GCM under the HKDF cipher key, 12-byte random nonce, 16-byte tag, no associated data,
 * format version 1. Stream mode carries `0x01 ‖ nonce ‖ ciphertext ‖ tag` in one body; JSON mode
 * carries the version, nonce and `ciphertext ‖ tag` as separate fields. Errors carry the §8 codes;
 * a failed tag check always reads "decryption failed".
 *
 * Portable: Web Crypto only.
 */
import { concatBytes } from '../bytes.ts';
import { SpikeError } from '../errors.ts';
import {
  DECRYPTION_FAILED,
  ENVELOPE_VERSION,
  gcmDecrypt,
  gcmEncrypt,
  NONCE_LENGTH,
  randomNonce,
} from './envelope.ts';

/** The only cipher format version (docs/spike-api.md §8). */
export const CIPHER_VERSION = ENVELOPE_VERSION;

/** Encrypts for stream mode: returns `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)` (§8). */
export async function encryptCipherStream(
  key: CryptoKey,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const { nonce, ciphertext } = await encryptCipherParts(key, plaintext);
  return concatBytes(Uint8Array.of(CIPHER_VERSION), nonce, ciphertext);
}

/**
 * Decrypts the stream layout. Errors (§8): empty input → `crypto_failed_to_read_version`;
 * version ≠ 1 → `crypto_unsupported_version`; fewer than 12 nonce bytes →
 * `crypto_failed_to_read_nonce`; wrong key, tampering or a short tag → `crypto_decryption_failed`
 * with the message "decryption failed".
 */
export async function decryptCipherStream(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  if (data.length < 1) {
    throw new SpikeError('crypto_failed_to_read_version', 'crypto_failed_to_read_version');
  }
  if (data[0] !== CIPHER_VERSION) {
    throw new SpikeError('crypto_unsupported_version', 'crypto_unsupported_version');
  }
  if (data.length < 1 + NONCE_LENGTH) {
    throw new SpikeError('crypto_failed_to_read_nonce', 'crypto_failed_to_read_nonce');
  }
  return decryptCipherParts(
    key,
    data.subarray(1, 1 + NONCE_LENGTH),
    data.subarray(1 + NONCE_LENGTH),
  );
}

/** Encrypts for JSON mode: a fresh nonce and `ciphertext ‖ tag` (version is always 1). */
export async function encryptCipherParts(
  key: CryptoKey,
  plaintext: Uint8Array,
): Promise<{ version: 1; nonce: Uint8Array; ciphertext: Uint8Array }> {
  const nonce = randomNonce();
  return { version: 1, nonce, ciphertext: await gcmEncrypt(key, nonce, plaintext) };
}

/**
 * Decrypts JSON-mode fields. A nonce that is not 12 bytes → `crypto_failed_to_read_nonce`;
 * tag failure → `crypto_decryption_failed` ("decryption failed"). Checking the `version` field
 * and size limits is the caller's validation (§8: 400).
 */
export async function decryptCipherParts(
  key: CryptoKey,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  if (nonce.length !== NONCE_LENGTH) {
    throw new SpikeError('crypto_failed_to_read_nonce', 'crypto_failed_to_read_nonce');
  }
  try {
    return await gcmDecrypt(key, nonce, ciphertext);
  } catch {
    throw new SpikeError('crypto_decryption_failed', DECRYPTION_FAILED);
  }
}
