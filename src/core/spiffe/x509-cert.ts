/**
 * Certificate decoding for X.509-SVID validation (docs/spiffe.md §4): framing checks, the
 * signature algorithms we accept, and the parsed form (`Cert`) that ./x509svid.ts applies the
 * SPIFFE rules to. Decoded by @peculiar/asn1-x509 (docs/architecture.md decision 6); parsing is cached
 * by exact DER bytes, while every trust, signature and time decision is made in ./x509svid.ts.
 *
 * Portable: Web APIs only.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  CertificatePolicies,
  CRLDistributionPoints,
  ExtendedKeyUsage,
  GeneralNames,
  KeyUsage,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { equalBytes, toHex } from '../bytes.ts';
import { SpikeError } from '../errors.ts';
import { type DerElement, readDerElement } from './der.ts';

/** Longest chain we look at (leaf + intermediates + optional root); real chains have 1–4. */
export const MAX_CHAIN_LENGTH = 16;

/** The object identifiers we read, as dotted strings. */
export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
  rsassaPss: '1.2.840.113549.1.1.10',
} as const;

/**
 * Extensions whose semantics we enforce (or which have none for path validation), so they may be
 * critical. Name constraints are not implemented: a critical nameConstraints extension is
 * therefore "unhandled" and rejects the chain (fail closed).
 */
const HANDLED_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.crlDistributionPoints,
]);

/**
 * Extensions we do not use but whose value must still decode, or the certificate is malformed (as
 * Go, which parses these too, and as this module always did).
 */
const DECODED_EXTENSIONS: ReadonlyMap<string, new () => object> = new Map<string, new () => object>(
  [
    [OID.subjectKeyIdentifier, SubjectKeyIdentifier],
    [OID.authorityKeyIdentifier, AuthorityKeyIdentifier],
    [OID.crlDistributionPoints, CRLDistributionPoints],
    [OID.certificatePolicies, CertificatePolicies],
    [OID.authorityInfoAccess, AuthorityInfoAccessSyntax],
    [OID.issuerAltName, GeneralNames],
  ],
);

type Hash = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** How to check a certificate's signature with Web Crypto (the key comes from the issuer). */
type SignatureScheme =
  | { readonly name: 'ECDSA' | 'RSASSA-PKCS1-v1_5'; readonly hash: Hash }
  | { readonly name: 'RSA-PSS'; readonly hash: Hash; readonly saltLength: number }
  | { readonly name: 'Ed25519' };

/** What we need from one parsed certificate. */
export interface Cert {
  readonly der: Uint8Array<ArrayBuffer>;
  /** The signed bytes (tbsCertificate), exactly as received. */
  readonly tbs: Uint8Array<ArrayBuffer>;
  /** The signatureValue bits. */
  readonly signature: Uint8Array<ArrayBuffer>;
  /** `undefined` for an algorithm we refuse (SHA-1, MD5, unknown, unusable PSS parameters). */
  readonly scheme: SignatureScheme | undefined;
  /** DER of the issuer and subject Names: chaining compares them byte for byte. */
  readonly issuer: Uint8Array<ArrayBuffer>;
  readonly subject: Uint8Array<ArrayBuffer>;
  /** The subject Name holds no attribute at all. */
  readonly emptySubject: boolean;
  /** DER of subjectPublicKeyInfo, exactly as received. */
  readonly spki: Uint8Array<ArrayBuffer>;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Lower-case hex of the serial number, without the DER sign byte. */
  readonly serial: string;
  /** `undefined` when the extension is absent. */
  readonly ca: { readonly ca: boolean; readonly pathLength: number | undefined } | undefined;
  readonly keyUsage: { readonly usages: number; readonly critical: boolean } | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly san: { readonly uris: readonly string[]; readonly critical: boolean } | undefined;
  readonly unhandledCritical: boolean;
}

/** `svid_invalid`: a malformed or rule-breaking certificate or key. */
export function invalid(message: string, cause?: unknown): SpikeError {
  return new SpikeError('svid_invalid', message, cause === undefined ? undefined : { cause });
}

/** `svid_untrusted`: no bundle, an unknown authority or a validity failure. */
export function untrusted(message: string): SpikeError {
  return new SpikeError('svid_untrusted', message);
}

/**
 * Checks the outer structure of a Certificate (RFC 5280 §4.1): SEQUENCE { tbsCertificate
 * SEQUENCE, signatureAlgorithm, signatureValue BIT STRING } with nothing trailing, and the
 * signature algorithm inside the signed part identical to the outer one (as Go requires).
 */
function checkCertificateFraming(der: Uint8Array): void {
  const outer = readDerElement(der, 0);
  if (outer.end !== der.length) throw invalid('certificate has trailing data');
  const tbs = readDerElement(der, outer.contentStart, outer.end);
  const sigAlg = readDerElement(der, tbs.end, outer.end);
  const sigValue = readDerElement(der, sigAlg.end, outer.end);
  if (tbs.tag !== 0x30 || sigAlg.tag !== 0x30 || sigValue.tag !== 0x03) {
    throw invalid('failed to parse certificate');
  }
  if (sigValue.end !== outer.end) throw invalid('certificate has trailing data');
  // tbsCertificate: [0] version (optional), serialNumber INTEGER, signature AlgorithmIdentifier.
  let field = readDerElement(der, tbs.contentStart, tbs.end);
  if (field.tag === 0xa0) field = readDerElement(der, field.end, tbs.end);
  if (field.tag !== 0x02) throw invalid('failed to parse certificate');
  const innerAlg = readDerElement(der, field.end, tbs.end);
  if (
    innerAlg.tag !== 0x30 ||
    !equalBytes(der.subarray(innerAlg.start, innerAlg.end), der.subarray(sigAlg.start, sigAlg.end))
  ) {
    throw invalid('certificate signature algorithm identifiers do not match');
  }
  const oid = readDerElement(der, sigAlg.contentStart, sigAlg.end);
  if (oid.tag !== 0x06) throw invalid('failed to parse certificate');
}

/**
 * The raw bytes of the tbsCertificate fields we compare or hand to Web Crypto: decoded values come
 * from the schema, but these must be the received bytes (a re-encoding could differ). The walk
 * also holds the top level of tbsCertificate to strict DER (RFC 5280 §4.1: version, serial,
 * signature, issuer, validity, subject, subjectPublicKeyInfo, then the optional [1] [2] [3]),
 * where the BER decoder would let a mistagged or mis-sized field through.
 */
function rawTbsFields(der: Uint8Array<ArrayBuffer>) {
  const outer = readDerElement(der, 0);
  const tbs = readDerElement(der, outer.contentStart, outer.end);
  const fields: DerElement[] = [];
  for (let at = tbs.contentStart; at < tbs.end; ) {
    const field = readDerElement(der, at, tbs.end);
    fields.push(field);
    at = field.end;
  }
  if (fields[0]?.tag === 0xa0) fields.shift(); // version
  // serialNumber INTEGER, then signature, issuer, validity, subject, subjectPublicKeyInfo.
  const required = [0x02, 0x30, 0x30, 0x30, 0x30, 0x30];
  const optional = fields.slice(required.length);
  let misplaced = required.some((tag, i) => fields[i]?.tag !== tag);
  // issuerUniqueID [1], subjectUniqueID [2] (IMPLICIT BIT STRING), extensions [3], in order.
  for (const [i, { tag }] of optional.entries()) {
    if (![0x81, 0x82, 0xa3].includes(tag) || tag <= (optional[i - 1]?.tag ?? 0)) misplaced = true;
  }
  if (misplaced) throw new Error('unexpected tbsCertificate layout');
  const slice = (i: number) => der.subarray(fields[i]!.start, fields[i]!.end);
  return {
    tbs: der.subarray(tbs.start, tbs.end),
    issuer: slice(2),
    subject: slice(4),
    spki: slice(5),
  };
}

/** Accepted signature algorithms other than RSASSA-PSS (whose hash is in its parameters). */
const SIGNATURE_SCHEMES: ReadonlyMap<string, SignatureScheme> = new Map<string, SignatureScheme>([
  ['1.2.840.10045.4.3.2', { name: 'ECDSA', hash: 'SHA-256' }], // ecdsa-with-SHA256
  ['1.2.840.10045.4.3.3', { name: 'ECDSA', hash: 'SHA-384' }],
  ['1.2.840.10045.4.3.4', { name: 'ECDSA', hash: 'SHA-512' }],
  ['1.2.840.113549.1.1.11', { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }], // sha256WithRSA
  ['1.2.840.113549.1.1.12', { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' }],
  ['1.2.840.113549.1.1.13', { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512' }],
  ['1.3.101.112', { name: 'Ed25519' }],
]);

/** Hash AlgorithmIdentifier OIDs (hex of the content octets) Web Crypto can use with PSS. */
const HASH_OIDS: Readonly<Record<string, Hash>> = {
  '608648016503040201': 'SHA-256', // 2.16.840.1.101.3.4.2.1
  '608648016503040202': 'SHA-384',
  '608648016503040203': 'SHA-512',
};

const MGF1_OID = '2a864886f70d010108'; // 1.2.840.113549.1.1.8

/**
 * RSASSA-PSS-params (RFC 4055 §3.1): SEQUENCE { [0] hash DEFAULT sha1, [1] maskGen DEFAULT
 * mgf1SHA1, [2] saltLength DEFAULT 20, [3] trailerField DEFAULT 1 }. Web Crypto verifies only
 * MGF1 with the message hash and trailer 1, so anything else, and SHA-1 (also what omitted
 * parameters mean), is an unsupported algorithm, as in Go.
 */
function pssScheme(params: ArrayBuffer | null | undefined): SignatureScheme | undefined {
  if (!(params instanceof ArrayBuffer)) return undefined;
  const der = new Uint8Array(params);
  try {
    const seq = readDerElement(der, 0);
    if (seq.tag !== 0x30 || seq.end !== der.length) return undefined;
    let hash: Hash | undefined;
    let mgfHash: Hash | undefined;
    let saltLength = 20;
    let lastTag = 0;
    for (let at = seq.contentStart; at < seq.end; ) {
      const field = readDerElement(der, at, seq.end);
      at = field.end;
      // Each field is an explicit tag around one element, in increasing tag order.
      const value = readDerElement(der, field.contentStart, field.end);
      if (field.tag <= lastTag || value.end !== field.end) return undefined;
      lastTag = field.tag;
      if (field.tag === 0xa0) {
        hash = hashOf(der, value);
      } else if (field.tag === 0xa1) {
        const mgf = readAlgorithmId(der, value);
        if (mgf.oid !== MGF1_OID || mgf.params === undefined) return undefined;
        mgfHash = hashOf(der, mgf.params);
      } else if (field.tag === 0xa2) {
        const octets = der.subarray(value.contentStart, value.end);
        if (value.tag !== 0x02 || octets.length === 0 || octets.length > 2) return undefined;
        if ((octets[0]! & 0x80) !== 0) return undefined; // negative
        saltLength = octets.reduce((n, b) => n * 256 + b, 0);
      } else if (field.tag === 0xa3) {
        const octets = der.subarray(value.contentStart, value.end);
        if (value.tag !== 0x02 || octets.length !== 1 || octets[0] !== 1) return undefined;
      } else {
        return undefined;
      }
    }
    if (hash === undefined || mgfHash !== hash) return undefined;
    return { name: 'RSA-PSS', hash, saltLength };
  } catch {
    return undefined;
  }
}

/** A hash AlgorithmIdentifier (parameters NULL or absent) → its Web Crypto name. */
function hashOf(bytes: Uint8Array, el: DerElement): Hash | undefined {
  if (el.tag !== 0x30) return undefined;
  const alg = readAlgorithmId(bytes, el);
  const params = alg.params;
  if (params !== undefined && (params.tag !== 0x05 || params.end !== params.contentStart)) {
    return undefined;
  }
  return HASH_OIDS[alg.oid];
}

/** Refuses a certificate signed with an algorithm we do not accept (module header). */
export function checkSignatureAlgorithm(cert: Cert): void {
  if (cert.scheme === undefined) {
    throw invalid('x509: certificate signed with an insecure or unsupported algorithm');
  }
}

/**
 * Parsed certificates, keyed by their complete DER bytes (as a binary string, compared exactly, so
 * a hit is a certificate with the very same bytes). Parsing is a pure function of those bytes and
 * `Cert` is never mutated, so reuse is safe; nothing time-dependent or trust-dependent is cached.
 * It spares the per-connection parse of the roots, intermediates and repeat clients. Bounded; the
 * oldest entry goes first.
 */
const parsedCache = new Map<string, Cert>();
const PARSED_CACHE_MAX = 256;

function cacheKey(der: Uint8Array): string {
  let key = '';
  const CHUNK = 0x2000;
  for (let i = 0; i < der.length; i += CHUNK) {
    key += String.fromCharCode(...der.subarray(i, i + CHUNK));
  }
  return key;
}

/** Parses one DER certificate (exactly one TLV element, nothing trailing). */
export function parseCert(der: Uint8Array): Cert {
  if (!(der instanceof Uint8Array)) throw new TypeError('certificates must be Uint8Array');
  if (der.length === 0 || der[0] !== 0x30) throw invalid('certificate is not DER');
  const key = cacheKey(der);
  const hit = parsedCache.get(key);
  if (hit !== undefined) return hit;
  // A real copy: `Buffer#slice` (a Uint8Array subclass from TLS stacks) would share memory.
  const cert = parseCertUncached(new Uint8Array(der));
  if (parsedCache.size >= PARSED_CACHE_MAX) {
    parsedCache.delete(parsedCache.keys().next().value as string);
  }
  parsedCache.set(key, cert);
  return cert;
}

/** Hex of a DER INTEGER's octets without the sign byte that keeps a high bit positive. */
function serialHex(raw: ArrayBuffer): string {
  let octets = new Uint8Array(raw);
  if (octets.length > 1 && octets[0] === 0 && octets[1]! > 0x7f) octets = octets.subarray(1);
  return toHex(octets);
}

function parseCertUncached(der: Uint8Array<ArrayBuffer>): Cert {
  checkCertificateFraming(der);
  let asn: Certificate;
  let raw: ReturnType<typeof rawTbsFields>;
  let notBefore: Date;
  let notAfter: Date;
  let serial: string;
  let ca: Cert['ca'];
  let keyUsage: Cert['keyUsage'];
  let extKeyUsage: Cert['extKeyUsage'];
  let san: Cert['san'];
  let unhandledCritical = false;
  let duplicate = false;
  try {
    asn = AsnConvert.parse(der, Certificate);
    raw = rawTbsFields(der);
    const tbs = asn.tbsCertificate;
    notBefore = tbs.validity.notBefore.getTime();
    notAfter = tbs.validity.notAfter.getTime();
    serial = serialHex(tbs.serialNumber);
    // Every extension value is decoded before any rule is applied, so a malformed one is a parse
    // error even when another rule (a duplicate, say) would also reject the certificate.
    const seen = new Set<string>();
    for (const ext of tbs.extensions ?? []) {
      const id = ext.extnID;
      const value = ext.extnValue.buffer;
      if (seen.has(id)) duplicate = true;
      seen.add(id);
      if (ext.critical && !HANDLED_EXTENSIONS.has(id)) unhandledCritical = true;
      if (id === OID.basicConstraints) {
        const bc = AsnConvert.parse(value, BasicConstraints);
        ca = { ca: bc.cA, pathLength: bc.pathLenConstraint };
      } else if (id === OID.keyUsage) {
        keyUsage = { usages: AsnConvert.parse(value, KeyUsage).toNumber(), critical: ext.critical };
      } else if (id === OID.extKeyUsage) {
        extKeyUsage = AsnConvert.parse(value, ExtendedKeyUsage).map((usage) => String(usage));
      } else if (id === OID.subjectAltName) {
        const uris: string[] = [];
        for (const name of AsnConvert.parse(value, SubjectAlternativeName)) {
          const uri = name.uniformResourceIdentifier;
          if (uri !== undefined) uris.push(uri);
        }
        san = { uris, critical: ext.critical };
      } else {
        const schema = DECODED_EXTENSIONS.get(id);
        if (schema !== undefined) AsnConvert.parse(value, schema);
      }
    }
  } catch (error) {
    throw invalid('failed to parse certificate', error);
  }
  if (duplicate) throw invalid('certificate contains a duplicate extension');
  const signatureAlgorithm = asn.signatureAlgorithm;
  return {
    der,
    ...raw,
    signature: new Uint8Array(asn.signatureValue),
    scheme:
      signatureAlgorithm.algorithm === OID.rsassaPss
        ? pssScheme(signatureAlgorithm.parameters)
        : SIGNATURE_SCHEMES.get(signatureAlgorithm.algorithm),
    emptySubject: asn.tbsCertificate.subject.every((rdn) => rdn.length === 0),
    notBefore,
    notAfter,
    serial,
    ca,
    keyUsage,
    extKeyUsage,
    san,
    unhandledCritical,
  };
}

/** An AlgorithmIdentifier's OID (hex of its content octets) and its parameters element, if any. */
export function readAlgorithmId(
  bytes: Uint8Array,
  el: DerElement,
): { oid: string; params: DerElement | undefined } {
  const oid = readDerElement(bytes, el.contentStart, el.end);
  if (oid.tag !== 0x06) throw new Error('algorithm is not an OID');
  let params: DerElement | undefined;
  if (oid.end < el.end) {
    params = readDerElement(bytes, oid.end, el.end);
    if (params.end !== el.end) throw new Error('trailing data in AlgorithmIdentifier');
  }
  return { oid: toHex(bytes.subarray(oid.contentStart, oid.end)), params };
}
