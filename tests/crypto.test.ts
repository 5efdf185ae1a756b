/**
 * Crypto core: HKDF purpose keys and KCV (docs/spike-api.md §9), at-rest envelopes with associated
 * data, and the §8 cipher stream format. Known answers come from tests/vectors (see its README);
 * `@noble/ciphers` is the independent AES-GCM implementation everything is cross-checked with.
 */
import { describe, expect, it } from 'bun:test';
import { gcm } from '@noble/ciphers/aes.js';
import { concatBytes, fromHex, toHex, utf8 } from '../src/core/bytes.ts';
import {
  decryptCipherParts,
  decryptCipherStream,
  encryptCipherParts,
  encryptCipherStream,
} from '../src/core/crypto/cipher.ts';
import {
  DECRYPTION_FAILED,
  gcmDecrypt,
  gcmEncrypt,
  open,
  policyAad,
  seal,
  secretAad,
  secretMetaAad,
} from '../src/core/crypto/envelope.ts';
import { computeKcv, deriveKeys, generateRootKey, KEY_INFO } from '../src/core/crypto/keys.ts';
import { isSpikeError } from '../src/core/errors.ts';
import gcmVectors from './vectors/aes-gcm.json';
import kdfVectors from './vectors/key-derivation.json';

/** Raw HKDF output with Web Crypto `deriveBits` (for the cross-checks with noble). */
async function hkdfBytes(rootKey: Uint8Array, info: string, length: number): Promise<Uint8Array> {
  const base = await crypto.subtle.importKey('raw', rootKey as BufferSource, 'HKDF', false, [
    'deriveBits',
  ]);
  const bits = await crypto.subtle.deriveBits(
    {
      name: 'HKDF',
      hash: 'SHA-256',
      salt: new Uint8Array(0),
      info: utf8.encode(info) as BufferSource,
    },
    base,
    length * 8,
  );
  return new Uint8Array(bits);
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: string): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(isSpikeError(caught)).toBe(true);
  const e = caught as { code: string; message: string; cause?: unknown };
  expect(e.code).toBe(code);
  if (message !== undefined) expect(e.message).toBe(message);
}

function importAes(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', raw as BufferSource, 'AES-GCM', false, [
    'encrypt',
    'decrypt',
  ]);
}

describe('key derivation (§9)', () => {
  for (const v of kdfVectors.keys) {
    it(`matches the independent HKDF vector: ${v.comment}`, async () => {
      const root = fromHex(v.rootKey);
      const keys = await deriveKeys(root);
      expect(keys.kcv).toBe(v.kcv);
      expect(await computeKcv(root)).toBe(v.kcv);
      // The derived CryptoKeys are the vector's bytes: a ciphertext made by noble under the
      // expected raw key opens under each derived key, and vice versa.
      const nonce = new Uint8Array(12).fill(7);
      const msg = utf8.encode(`message for ${v.comment}`);
      for (const [name, hex] of [
        ['storage', v.storage],
        ['cipher', v.cipher],
        ['bootstrapVerify', v.bootstrapVerify],
      ] as const) {
        const sealed = gcm(fromHex(hex), nonce).encrypt(msg);
        expect(toHex(await gcmDecrypt(keys[name], nonce, sealed))).toBe(toHex(msg));
        expect(toHex(await gcmEncrypt(keys[name], nonce, msg))).toBe(toHex(sealed));
      }
      // The caller's array is left as it was.
      expect(toHex(root)).toBe(v.rootKey);
    });
  }

  it('Web Crypto deriveBits agrees with the vectors (info strings and lengths are §9)', async () => {
    const v = kdfVectors.keys[0]!;
    const root = fromHex(v.rootKey);
    expect(KEY_INFO.storage).toEqual({ info: 'spike/v1/storage', length: 32 });
    expect(KEY_INFO.keyCheck).toEqual({ info: 'spike/v1/key-check', length: 16 });
    expect(toHex(await hkdfBytes(root, KEY_INFO.storage.info, 32))).toBe(v.storage);
    expect(toHex(await hkdfBytes(root, KEY_INFO.cipher.info, 32))).toBe(v.cipher);
    expect(toHex(await hkdfBytes(root, KEY_INFO.bootstrapVerify.info, 32))).toBe(v.bootstrapVerify);
    expect(toHex(await hkdfBytes(root, KEY_INFO.keyCheck.info, 16))).toBe(v.kcv);
  });

  it('the purpose keys are distinct and not extractable', async () => {
    const keys = await deriveKeys(generateRootKey());
    expect(keys.kcv).toMatch(/^[0-9a-f]{32}$/);
    for (const k of [keys.storage, keys.cipher, keys.bootstrapVerify]) {
      expect(k.extractable).toBe(false);
      expect(k.algorithm.name).toBe('AES-GCM');
      await expect(crypto.subtle.exportKey('raw', k)).rejects.toThrow();
    }
    const nonce = new Uint8Array(12);
    const sealed = await gcmEncrypt(keys.storage, nonce, utf8.encode('x'));
    await expect(gcmDecrypt(keys.cipher, nonce, sealed)).rejects.toThrow();
    await expect(gcmDecrypt(keys.bootstrapVerify, nonce, sealed)).rejects.toThrow();
  });

  it('different root keys give different KCVs; bad lengths are RangeErrors', async () => {
    const a = await computeKcv(generateRootKey());
    const b = await computeKcv(generateRootKey());
    expect(a).not.toBe(b);
    await expect(deriveKeys(new Uint8Array(31))).rejects.toThrow(RangeError);
    await expect(computeKcv(new Uint8Array(33))).rejects.toThrow(RangeError);
    await expect(deriveKeys(new Uint8Array(32))).resolves.toBeDefined();
  });
});

describe('AES-256-GCM known answers', () => {
  for (const v of gcmVectors.gcm) {
    it(v.comment, async () => {
      const key = await importAes(fromHex(v.key));
      const aad = v.aad === '' ? undefined : fromHex(v.aad);
      expect(toHex(await gcmEncrypt(key, fromHex(v.nonce), fromHex(v.plaintext), aad))).toBe(
        v.sealed,
      );
      expect(toHex(await gcmDecrypt(key, fromHex(v.nonce), fromHex(v.sealed), aad))).toBe(
        v.plaintext,
      );
    });
  }
});

describe('associated data formats (§9)', () => {
  it('spells the three formats byte for byte', () => {
    expect(utf8.decode(secretAad('db/creds', 12))).toBe('spike/v1/secret\0db/creds\x0012');
    expect(utf8.decode(secretMetaAad('db/creds'))).toBe('spike/v1/secret-meta\0db/creds');
    expect(utf8.decode(policyAad('web readers'))).toBe('spike/v1/policy\0web readers');
    expect(toHex(secretAad('a', 1))).toBe(`${toHex(utf8.encode('spike/v1/secret'))}00610031`);
    expect(() => secretAad('a', 0)).toThrow(RangeError);
    expect(() => secretAad('a', 1.5)).toThrow(RangeError);
  });
});

describe('envelopes (seal / open)', () => {
  for (const v of gcmVectors.envelopes) {
    it(`opens the stored vector: ${v.comment}`, async () => {
      const keys = await deriveKeys(fromHex(v.rootKey));
      const aad = v.kind === 'secret' ? secretAad(v.path!, v.version!) : policyAad(v.name!);
      expect(toHex(aad)).toBe(v.aad);
      const envelope = fromHex(v.envelope);
      expect(envelope[0]).toBe(1);
      expect(toHex(await open(keys.storage, envelope, aad))).toBe(v.plaintext);
      // Bound to its row: another version, path or policy name fails.
      const other =
        v.kind === 'secret' ? secretAad(v.path!, v.version! + 1) : policyAad(`${v.name}x`);
      await rejectsWith(
        open(keys.storage, envelope, other),
        'api_internal_error',
        DECRYPTION_FAILED,
      );
    });
  }

  it('seal output is 0x01 ‖ fresh nonce ‖ ct ‖ tag, and noble opens it', async () => {
    const root = generateRootKey();
    const keys = await deriveKeys(root);
    const rawStorage = await hkdfBytes(root, 'spike/v1/storage', 32);
    const aad = secretAad('apps/web', 7);
    const msg = utf8.encode('{"password":"correct horse"}');
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const env = await seal(keys.storage, msg, aad);
      expect(env.length).toBe(1 + 12 + msg.length + 16);
      expect(env[0]).toBe(1);
      const nonce = env.subarray(1, 13);
      nonces.add(toHex(nonce));
      expect(utf8.decode(gcm(rawStorage, nonce, aad).decrypt(env.subarray(13)))).toBe(
        utf8.decode(msg),
      );
    }
    expect(nonces.size).toBe(200);
  });

  it('opens what noble seals, and rejects every single-byte change with one fixed error', async () => {
    const root = generateRootKey();
    const keys = await deriveKeys(root);
    const raw = await hkdfBytes(root, 'spike/v1/storage', 32);
    const aad = policyAad('p');
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const env = concatBytes(
      Uint8Array.of(1),
      nonce,
      gcm(raw, nonce, aad).encrypt(utf8.encode('hi')),
    );
    expect(utf8.decode(await open(keys.storage, env, aad))).toBe('hi');
    for (let i = 0; i < env.length; i++) {
      const bad = env.slice();
      bad[i] = bad[i]! ^ 0x01;
      await rejectsWith(open(keys.storage, bad, aad), 'api_internal_error', DECRYPTION_FAILED);
    }
    await rejectsWith(
      open(keys.storage, env.subarray(0, 28), aad),
      'api_internal_error',
      DECRYPTION_FAILED,
    );
    await rejectsWith(
      open(keys.storage, new Uint8Array(0), aad),
      'api_internal_error',
      DECRYPTION_FAILED,
    );
    const otherKeys = await deriveKeys(generateRootKey());
    await rejectsWith(open(otherKeys.storage, env, aad), 'api_internal_error', DECRYPTION_FAILED);
    // The fixed error carries no cause that could say more.
    try {
      await open(otherKeys.storage, env, aad);
    } catch (e) {
      expect((e as Error).cause).toBeUndefined();
    }
  });
});

describe('cipher stream format (§8)', () => {
  for (const v of gcmVectors.cipherStream.valid) {
    it(`decrypts the stored vector: ${v.comment}`, async () => {
      const keys = await deriveKeys(fromHex(v.rootKey));
      expect(toHex(await decryptCipherStream(keys.cipher, fromHex(v.stream)))).toBe(v.plaintext);
      // Not under the storage key: the cipher service has its own key.
      await rejectsWith(
        decryptCipherStream(keys.storage, fromHex(v.stream)),
        'crypto_decryption_failed',
      );
    });
  }

  for (const v of gcmVectors.cipherStream.invalid) {
    it(`rejects ${v.comment} with ${v.code}`, async () => {
      const keys = await deriveKeys(fromHex(gcmVectors.cipherStream.valid[0]!.rootKey));
      await rejectsWith(
        decryptCipherStream(keys.cipher, fromHex(v.stream)),
        v.code,
        v.code === 'crypto_decryption_failed' ? 'decryption failed' : v.code,
      );
    });
  }

  it('round-trips, and noble decrypts the stream under the raw cipher key', async () => {
    const root = generateRootKey();
    const keys = await deriveKeys(root);
    const raw = await hkdfBytes(root, 'spike/v1/cipher', 32);
    for (const size of [0, 1, 15, 16, 17, 65536]) {
      const msg = crypto.getRandomValues(new Uint8Array(size));
      const stream = await encryptCipherStream(keys.cipher, msg);
      expect(stream.length).toBe(1 + 12 + size + 16);
      expect(stream[0]).toBe(1);
      expect(toHex(await decryptCipherStream(keys.cipher, stream))).toBe(toHex(msg));
      expect(toHex(gcm(raw, stream.subarray(1, 13)).decrypt(stream.subarray(13)))).toBe(toHex(msg));
    }
  });

  it('JSON-mode parts round-trip and check the nonce length', async () => {
    const keys = await deriveKeys(generateRootKey());
    const parts = await encryptCipherParts(keys.cipher, utf8.encode('json mode'));
    expect(parts.version).toBe(1);
    expect(parts.nonce.length).toBe(12);
    expect(utf8.decode(await decryptCipherParts(keys.cipher, parts.nonce, parts.ciphertext))).toBe(
      'json mode',
    );
    await rejectsWith(
      decryptCipherParts(keys.cipher, parts.nonce.subarray(0, 11), parts.ciphertext),
      'crypto_failed_to_read_nonce',
    );
    const bad = parts.ciphertext.slice();
    bad[0] = bad[0]! ^ 0x80;
    await rejectsWith(
      decryptCipherParts(keys.cipher, parts.nonce, bad),
      'crypto_decryption_failed',
      'decryption failed',
    );
  });
});
