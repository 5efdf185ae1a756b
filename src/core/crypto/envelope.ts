/**
 * Encryption at rest: one AES-256-GCM envelope per stored row (docs/spike-api.md §9).
 *
 * Envelope layout: `0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. The leading version
 * byte lets a later format coexist with this one (docs/style.md rule 9). Every envelope gets a fresh
 * random 96-bit nonce; with random nonces a key must be rotated before 2³² encryptions.
 *
 * Associated data binds a ciphertext to the row that holds it, so a ciphertext copied to another
 * path, version or policy fails to open. Builders for the three formats of §9 live here too.
 *
 * Every failure to open says the same thing (`api_internal_error`, "decryption failed"): which
 * check failed is of use only to an attacker (jose's `JWEDecryptionFailed`).
 *
 * Portable: Web Crypto only.
 */
import { concatBytes, utf8 } from '../bytes.ts';
import { SpikeError } from '../errors.ts';

/** Format version byte at the start of every envelope. */
export const ENVELOPE_VERSION = 0x01;
/** AES-GCM nonce length in bytes (96 bits). */
export const NONCE_LENGTH = 12;
/** AES-GCM tag length in bytes. */
const TAG_LENGTH = 16;
/** Bytes an envelope adds to its plaintext. */
const ENVELOPE_OVERHEAD = 1 + NONCE_LENGTH + TAG_LENGTH;

/** The fixed message of every decryption failure. */
export const DECRYPTION_FAILED = 'decryption failed';

/** A Web Crypto `BufferSource` view of the bytes (copies only when backed by a shared buffer). */
export function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (bytes.buffer instanceof ArrayBuffer) return bytes as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

/** A fresh random 96-bit nonce. */
export function randomNonce(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
}

/** One AES-256-GCM operation with an explicit 96-bit nonce and optional associated data. */
type GcmOperation = (
  key: CryptoKey,
  nonce: Uint8Array,
  input: Uint8Array,
  aad?: Uint8Array,
) => Promise<Uint8Array>;

function gcm(operation: 'encrypt' | 'decrypt'): GcmOperation {
  return async (key, nonce, input, aad) => {
    const params: AesGcmParams = { name: 'AES-GCM', iv: bufferSource(nonce), tagLength: 128 };
    if (aad !== undefined) params.additionalData = bufferSource(aad);
    return new Uint8Array(await crypto.subtle[operation](params, key, bufferSource(input)));
  };
}

/** AES-256-GCM encryption of the plaintext `input`; returns `ciphertext ‖ tag`. */
export const gcmEncrypt: GcmOperation = gcm('encrypt');

/** AES-256-GCM decryption of `input` = `ciphertext ‖ tag`; rejects (Web Crypto's error) on failure. */
export const gcmDecrypt: GcmOperation = gcm('decrypt');

/**
 * Encrypts `plaintext` under `key` (the storage key) bound to `aad`; returns the envelope
 * `0x01 ‖ nonce ‖ ciphertext ‖ tag` (docs/spike-api.md §9).
 */
export async function seal(
  key: CryptoKey,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  const nonce = randomNonce();
  const sealed = await gcmEncrypt(key, nonce, plaintext, aad);
  return concatBytes(Uint8Array.of(ENVELOPE_VERSION), nonce, sealed);
}

/**
 * Opens an envelope made by {@link seal} with the same key and associated data.
 *
 * Any failure (short input, unknown version, wrong key, wrong `aad`, tampering) throws
 * `SpikeError('api_internal_error', 'decryption failed')` with no cause.
 */
export async function open(
  key: CryptoKey,
  envelope: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  if (envelope.length < ENVELOPE_OVERHEAD || envelope[0] !== ENVELOPE_VERSION) {
    throw new SpikeError('api_internal_error', DECRYPTION_FAILED);
  }
  try {
    return await gcmDecrypt(
      key,
      envelope.subarray(1, 1 + NONCE_LENGTH),
      envelope.subarray(1 + NONCE_LENGTH),
      aad,
    );
  } catch {
    throw new SpikeError('api_internal_error', DECRYPTION_FAILED);
  }
}

const SEP = Uint8Array.of(0);

/** Domain labels of the associated-data formats (docs/spike-api.md §9, exact text). */
const AAD_LABEL = {
  secret: 'spike/v1/secret',
  secretMeta: 'spike/v1/secret-meta',
  policy: 'spike/v1/policy',
} as const;

/** `spike/v1/secret` ‖ 0x00 ‖ path ‖ 0x00 ‖ decimal version: one secret version's data. */
export function secretAad(path: string, version: number): Uint8Array {
  if (!Number.isSafeInteger(version) || version < 1) throw new RangeError('invalid version');
  return concatBytes(
    utf8.encode(AAD_LABEL.secret),
    SEP,
    utf8.encode(path),
    SEP,
    utf8.encode(String(version)),
  );
}

/** `spike/v1/secret-meta` ‖ 0x00 ‖ path: encrypted per-path metadata (custom metadata). */
export function secretMetaAad(path: string): Uint8Array {
  return concatBytes(utf8.encode(AAD_LABEL.secretMeta), SEP, utf8.encode(path));
}

/** `spike/v1/policy` ‖ 0x00 ‖ name: a policy's patterns and permissions. */
export function policyAad(name: string): Uint8Array {
  return concatBytes(utf8.encode(AAD_LABEL.policy), SEP, utf8.encode(name));
}
