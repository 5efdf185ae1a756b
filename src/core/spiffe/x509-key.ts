/**
 * Private key checks for our own X.509-SVID (docs/spiffe.md §4): the key from the Workload API
 * must be an unencrypted PKCS#8 key of a supported algorithm that matches the leaf's public key.
 * Used by ./x509svid.ts `validateOwnX509Svid`.
 *
 * Portable: Web Crypto only.
 */
import { toHex } from '../bytes.ts';
import { type DerElement, readDerElement } from './der.ts';
import { type Cert, invalid, readAlgorithmId } from './x509-cert.ts';

/** Public-key algorithm OIDs (hex of the content octets). */
export const KEY_OIDS = {
  ec: '2a8648ce3d0201', // 1.2.840.10045.2.1 id-ecPublicKey
  rsa: '2a864886f70d010101', // 1.2.840.113549.1.1.1 rsaEncryption
  ed25519: '2b6570', // 1.3.101.112
} as const;

/** Named-curve OIDs (hex of the content octets) → Web Crypto curve names. */
export const CURVES: Record<string, string> = {
  '2a8648ce3d030107': 'P-256', // 1.2.840.10045.3.1.7
  '2b81040022': 'P-384', // 1.3.132.0.34
  '2b81040023': 'P-521', // 1.3.132.0.35
};

/** The algorithm OID and (for EC) curve OID of an AlgorithmIdentifier, as hex of the contents. */
function readAlgorithm(bytes: Uint8Array, el: DerElement) {
  const { oid, params: p } = readAlgorithmId(bytes, el);
  const params = p?.tag === 0x06 ? toHex(bytes.subarray(p.contentStart, p.end)) : undefined;
  return { oid, params };
}

/**
 * Reads a PrivateKeyInfo (RFC 5208 / 5958): SEQUENCE { INTEGER 0|1, AlgorithmIdentifier,
 * OCTET STRING, ... }. EncryptedPrivateKeyInfo (AlgorithmIdentifier first), SEC1 (OCTET STRING
 * second) and PKCS#1 (INTEGER second) fail here.
 */
function readPkcs8Algorithm(key: Uint8Array): { oid: string; params: string | undefined } {
  const outer = readDerElement(key, 0);
  if (outer.tag !== 0x30 || outer.end !== key.length) throw new Error('not a DER SEQUENCE');
  const version = readDerElement(key, outer.contentStart, outer.end);
  if (version.tag !== 0x02 || version.end - version.contentStart !== 1) {
    throw new Error('no PKCS#8 version');
  }
  const v = key[version.contentStart];
  if (v !== 0 && v !== 1) throw new Error('unknown PKCS#8 version');
  const alg = readDerElement(key, version.end, outer.end);
  if (alg.tag !== 0x30) throw new Error('no AlgorithmIdentifier');
  const priv = readDerElement(key, alg.end, outer.end);
  if (priv.tag !== 0x04) throw new Error('no private key octets');
  return readAlgorithm(key, alg);
}

/** Reads SubjectPublicKeyInfo's AlgorithmIdentifier. */
export function readSpkiAlgorithm(spki: Uint8Array): { oid: string; params: string | undefined } {
  const outer = readDerElement(spki, 0);
  const alg = readDerElement(spki, outer.contentStart, outer.end);
  if (alg.tag !== 0x30) throw new Error('no AlgorithmIdentifier');
  return readAlgorithm(spki, alg);
}

type KeyParams = {
  import: AlgorithmIdentifier | EcKeyImportParams | RsaHashedImportParams;
  sign: AlgorithmIdentifier | EcdsaParams;
};

function keyParamsFor(alg: { oid: string; params: string | undefined }): KeyParams | undefined {
  switch (alg.oid) {
    case KEY_OIDS.ec: {
      const namedCurve = alg.params === undefined ? undefined : CURVES[alg.params];
      if (namedCurve === undefined) return undefined;
      return { import: { name: 'ECDSA', namedCurve }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    }
    case KEY_OIDS.rsa:
      return {
        import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
    case KEY_OIDS.ed25519:
      return { import: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
    default:
      return undefined;
  }
}

/**
 * Requires an unencrypted PKCS#8 DER key (RSA, ECDSA or Ed25519) whose public half is the leaf's:
 * the key signs a random challenge that the leaf's public key must verify (§8 rows 14, 15).
 */
export async function checkPrivateKey(privateKey: Uint8Array, leaf: Cert): Promise<void> {
  if (!(privateKey instanceof Uint8Array)) throw new TypeError('private key must be Uint8Array');
  let keyAlg: { oid: string; params: string | undefined };
  try {
    keyAlg = readPkcs8Algorithm(privateKey);
  } catch {
    throw invalid('private key must be an unencrypted PKCS#8 DER key');
  }
  let leafAlg: { oid: string; params: string | undefined };
  const spki = leaf.spki;
  try {
    leafAlg = readSpkiAlgorithm(spki);
  } catch (error) {
    throw invalid('failed to read the leaf public key', error);
  }
  const params = keyParamsFor(leafAlg);
  if (params === undefined) throw invalid('unsupported leaf public key type');
  if (keyAlg.oid !== leafAlg.oid || keyAlg.params !== leafAlg.params) {
    throw invalid('leaf certificate does not match private key');
  }
  let signer: CryptoKey;
  let verifier: CryptoKey;
  try {
    signer = await crypto.subtle.importKey(
      'pkcs8',
      new Uint8Array(privateKey),
      params.import,
      false,
      ['sign'],
    );
  } catch {
    throw invalid('private key must be an unencrypted PKCS#8 DER key');
  }
  try {
    verifier = await crypto.subtle.importKey('spki', spki, params.import, false, ['verify']);
  } catch (error) {
    throw invalid('failed to import the leaf public key', error);
  }
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  let ok = false;
  try {
    const signature = await crypto.subtle.sign(params.sign, signer, challenge);
    ok = await crypto.subtle.verify(params.sign, verifier, signature, challenge);
  } catch {
    ok = false;
  }
  if (!ok) throw invalid('leaf certificate does not match private key');
}
