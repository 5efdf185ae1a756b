/**
 * Purpose keys derived from the Nexus root key (docs/spike-api.md §9, docs/architecture.md decision 7).
 *
 * One 32-byte root key never encrypts anything itself: HKDF-SHA-256 (IKM = root key, empty salt)
 * derives one AES-256-GCM key per purpose (`spike/v1/storage`, `spike/v1/cipher`,
 * `spike/v1/bootstrap-verify`) and a 16-byte key-check value (`spike/v1/key-check`) that lets
 * Nexus recognise the right key after a restart without storing anything secret. The AES keys are
 * non-extractable `CryptoKey`s, so the raw bytes exist only inside Web Crypto.
 *
 * Portable: Web Crypto only, no runtime APIs.
 */
import { toHex, utf8 } from '../bytes.ts';
import type { DerivedKeys } from '../ports.ts';

/** Length of the root key in bytes (docs/spike-api.md §9). */
export const ROOT_KEY_LENGTH = 32;

/** HKDF `info` strings and output lengths in bytes (docs/spike-api.md §9, exact text). */
export const KEY_INFO = {
  storage: { info: 'spike/v1/storage', length: 32 },
  cipher: { info: 'spike/v1/cipher', length: 32 },
  bootstrapVerify: { info: 'spike/v1/bootstrap-verify', length: 32 },
  keyCheck: { info: 'spike/v1/key-check', length: 16 },
} as const;

const EMPTY_SALT = new Uint8Array(0);

function checkRootKey(rootKey: Uint8Array): void {
  if (!(rootKey instanceof Uint8Array)) throw new TypeError('root key must be a Uint8Array');
  if (rootKey.length !== ROOT_KEY_LENGTH) throw new RangeError('root key must be 32 bytes');
}

/** Copies into a fresh `ArrayBuffer`-backed array (Web Crypto's `BufferSource`), for zeroing later. */
function ownBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

async function importRoot(rootKey: Uint8Array): Promise<CryptoKey> {
  const copy = ownBytes(rootKey);
  try {
    return await crypto.subtle.importKey('raw', copy, 'HKDF', false, ['deriveKey', 'deriveBits']);
  } finally {
    copy.fill(0);
  }
}

function hkdfParams(info: string): HkdfParams {
  return {
    name: 'HKDF',
    hash: 'SHA-256',
    salt: EMPTY_SALT,
    info: utf8.encode(info) as BufferSource,
  };
}

function deriveAesKey(base: CryptoKey, info: string): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(hkdfParams(info), base, { name: 'AES-GCM', length: 256 }, false, [
    'encrypt',
    'decrypt',
  ]);
}

/**
 * The cipher key twice from one HKDF output: as the AES-GCM key of `/v1/cipher/*` (the same key
 * `deriveAesKey` gives) and as the HKDF base of the per-context keys (docs/spike-api.md §8).
 */
async function deriveCipherKeys(base: CryptoKey): Promise<[CryptoKey, CryptoKey]> {
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      hkdfParams(KEY_INFO.cipher.info),
      base,
      KEY_INFO.cipher.length * 8,
    ),
  );
  try {
    return await Promise.all([
      crypto.subtle.importKey('raw', bits, 'AES-GCM', false, ['encrypt', 'decrypt']),
      crypto.subtle.importKey('raw', bits, 'HKDF', false, ['deriveKey', 'deriveBits']),
    ]);
  } finally {
    bits.fill(0);
  }
}

async function deriveKcv(base: CryptoKey): Promise<string> {
  const bits = await crypto.subtle.deriveBits(
    hkdfParams(KEY_INFO.keyCheck.info),
    base,
    KEY_INFO.keyCheck.length * 8,
  );
  return toHex(new Uint8Array(bits));
}

/**
 * Derives the purpose keys and the KCV from a 32-byte root key (docs/spike-api.md §9).
 *
 * The caller's array is neither kept nor modified: zero it when done. Throws `RangeError` for a
 * key that is not 32 bytes.
 */
export async function deriveKeys(rootKey: Uint8Array): Promise<DerivedKeys> {
  checkRootKey(rootKey);
  const base = await importRoot(rootKey);
  const [storage, [cipher, cipherContext], bootstrapVerify, kcv] = await Promise.all([
    deriveAesKey(base, KEY_INFO.storage.info),
    deriveCipherKeys(base),
    deriveAesKey(base, KEY_INFO.bootstrapVerify.info),
    deriveKcv(base),
  ]);
  return Object.freeze({ storage, cipher, cipherContext, bootstrapVerify, kcv });
}

/**
 * The key-check value of a root key: HKDF-SHA-256 with info `spike/v1/key-check`, 16 bytes, as
 * 32 lowercase hex characters (docs/spike-api.md §9). Safe to store and log: it reveals nothing about
 * the key beyond letting a holder of the key recognise it.
 */
export async function computeKcv(rootKey: Uint8Array): Promise<string> {
  checkRootKey(rootKey);
  return deriveKcv(await importRoot(rootKey));
}

/** A fresh random root key from the platform CSPRNG. Zero it once it is split and derived. */
export function generateRootKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(ROOT_KEY_LENGTH));
}
