/**
 * X.509-SVID validation for our own SVIDs (Workload API) and for peers (mTLS), spec/spiffe.md §4.
 *
 * We apply the union of go-spiffe's `x509svid.ParseRaw` (own SVID) and `x509svid.Verify` (peer)
 * to both, plus the SPIFFE X509-SVID profile:
 *
 * - leaf: exactly one URI SAN holding a SPIFFE ID with a non-root path, cA = false, keyUsage present
 *   and critical with digitalSignature and without keyCertSign / cRLSign, EKU (if present) with
 *   serverAuth and clientAuth;
 * - every signing certificate: cA = true, keyCertSign (when keyUsage is present on a root; always
 *   on intermediates), pathLen honoured, URI SAN (if any) a trust domain ID without a path;
 * - the chain must be in order (leaf first, each certificate issued by the next: issuer and subject
 *   names byte-identical, as Go compares them, and the signature valid) and end at a root that is
 *   byte-identical to one in the bundle **of the leaf's trust domain** (§5 Federation: a TLS stack
 *   given the union of several bundles accepts a chain to any of them);
 * - every certificate on the path must be within its validity window at `now`, with no skew;
 * - an unknown critical extension anywhere on the path rejects the chain (RFC 5280 §4.2);
 * - leaves and intermediates must be signed with ECDSA, RSA PKCS#1 v1.5 or RSASSA-PSS over
 *   SHA-256/384/512, or Ed25519 (as Go: no SHA-1, no MD5).
 *
 * Certificates are decoded by @peculiar/asn1-x509 (the RFC 5280 ASN.1 schema, ARCHITECTURE.md
 * decision 6) and signatures checked with Web Crypto directly, so this file runs unchanged on Bun,
 * Deno and edge runtimes. We deliberately avoid @peculiar/x509 here: it pulls in a DI container
 * and the CMS/PKCS#12/CSR schemas (~8 MB resident), which every Keeper would carry for nothing.
 * Only parsing is cached (by exact DER bytes); every trust, signature and time decision is made
 * afresh on each call.
 *
 * Errors: `svid_invalid` for malformed or rule-breaking certificates and keys, `svid_untrusted`
 * for a missing bundle, an unknown authority or a validity failure. Messages follow go-spiffe and
 * never contain key material.
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
  KeyUsageFlags as KU,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { equalBytes, toHex } from '../bytes.ts';
import { SpikeError } from '../errors.ts';
import { type DerElement, readDerElement, splitDerCertificates } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './id.ts';
import type { X509Bundles, X509Svid } from './types.ts';

/** Longest chain we look at (leaf + intermediates + optional root); real chains have 1–4. */
const MAX_CHAIN_LENGTH = 16;

const OID = {
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
interface Cert {
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

function invalid(message: string, cause?: unknown): SpikeError {
  return new SpikeError('svid_invalid', message, cause === undefined ? undefined : { cause });
}

function untrusted(message: string): SpikeError {
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

function checkSignatureAlgorithm(cert: Cert): void {
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
function parseCert(der: Uint8Array): Cert {
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

/** The leaf rules of spec/spiffe.md §4; returns the leaf's SPIFFE ID. */
function checkLeaf(leaf: Cert): SpiffeId {
  const uris = leaf.san?.uris ?? [];
  if (uris.length === 0) throw invalid('certificate contains no URI SAN');
  if (uris.length > 1) throw invalid('certificate contains more than one URI SAN');
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'invalid SPIFFE ID';
    throw invalid(`could not get leaf SPIFFE ID: ${reason}`);
  }
  if (id.path === '') throw invalid('leaf certificate SPIFFE ID must have a non-root path');
  if (leaf.ca?.ca === true) throw invalid('leaf certificate with CA flag set to true');
  const ku = leaf.keyUsage;
  if (ku !== undefined && (ku.usages & KU.keyCertSign) !== 0) {
    throw invalid('leaf certificate with KeyCertSign key usage');
  }
  if (ku !== undefined && (ku.usages & KU.cRLSign) !== 0) {
    throw invalid('leaf certificate with KeyCrlSign key usage');
  }
  if (ku === undefined) throw invalid('leaf certificate must have a key usage extension');
  if ((ku.usages & KU.digitalSignature) === 0) {
    throw invalid("leaf certificate must have 'digitalSignature' set as key usage");
  }
  if (!ku.critical) throw invalid('leaf certificate key usage extension must be critical');
  const eku = leaf.extKeyUsage;
  if (
    eku !== undefined &&
    !eku.includes(OID.anyExtendedKeyUsage) &&
    !(eku.includes(OID.serverAuth) && eku.includes(OID.clientAuth))
  ) {
    throw invalid('leaf certificate extended key usage must include serverAuth and clientAuth');
  }
  if (leaf.emptySubject && leaf.san?.critical !== true) {
    throw invalid('leaf certificate with an empty subject must have a critical SAN extension');
  }
  if (leaf.unhandledCritical) throw invalid('x509: unhandled critical extension');
  checkSignatureAlgorithm(leaf);
  return id;
}

/**
 * The synchronous part of the leaf rules (spec/spiffe.md §4) on one DER certificate, for places
 * that cannot wait for a promise (a TLS client's `checkServerIdentity`). It checks no signature
 * or chain: callers must still run {@link verifyPeerX509Svid} before trusting the peer.
 *
 * @returns the leaf's SPIFFE ID and its serial number (lowercase hex).
 * @throws SpikeError `svid_invalid`
 */
export function inspectLeafCertificate(der: Uint8Array): { id: SpiffeId; serial: string } {
  const leaf = parseCert(der);
  return { id: checkLeaf(leaf), serial: leaf.serial };
}

/** The signing-certificate rules of spec/spiffe.md §4, for an intermediate from the chain. */
function checkIntermediate(cert: Cert): void {
  if (cert.ca?.ca !== true) throw invalid('signing certificate must have CA flag set to true');
  if (cert.keyUsage === undefined || (cert.keyUsage.usages & KU.keyCertSign) === 0) {
    throw invalid("signing certificate must have 'keyCertSign' set as key usage");
  }
  checkSigningSan(cert);
  if (cert.unhandledCritical) throw invalid('x509: unhandled critical extension');
  checkSignatureAlgorithm(cert);
}

/** A signing certificate's URI SAN, if present, is a trust domain ID (no path). */
function checkSigningSan(cert: Cert): void {
  for (const uri of cert.san?.uris ?? []) {
    let id: SpiffeId;
    try {
      id = parseSpiffeId(uri);
    } catch {
      throw invalid('signing certificate URI SAN is not a SPIFFE ID');
    }
    if (id.path !== '') throw invalid('signing certificate SPIFFE ID must not have a path');
  }
}

/** Root rules: it signs certificates, so it must not say otherwise (Go's rules, plus KU). */
function isUsableRoot(root: Cert): boolean {
  if (root.ca !== undefined && !root.ca.ca) return false;
  if (root.keyUsage !== undefined && (root.keyUsage.usages & KU.keyCertSign) === 0) return false;
  return !root.unhandledCritical;
}

function isTimeValid(cert: Cert, now: Date): boolean {
  const t = now.getTime();
  return t >= cert.notBefore.getTime() && t <= cert.notAfter.getTime();
}

function checkTime(cert: Cert, now: Date): void {
  if (!isTimeValid(cert, now)) throw untrusted('certificate has expired or is not yet valid');
}

/** Bytes per coordinate of the curves Web Crypto supports (IEEE P1363 signature halves). */
const CURVE_SIZES: Readonly<Record<string, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/**
 * X.509 carries ECDSA signatures as DER `SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3);
 * Web Crypto wants `r‖s`, each left-padded to the curve size. `undefined` for anything else,
 * including negative or oversized integers (never produced by a correct signer).
 */
function ecdsaSignatureToP1363(sig: Uint8Array, size: number): Uint8Array<ArrayBuffer> | undefined {
  const seq = readDerElement(sig, 0);
  if (seq.tag !== 0x30 || seq.end !== sig.length) return undefined;
  const r = readDerElement(sig, seq.contentStart, seq.end);
  const s = readDerElement(sig, r.end, seq.end);
  if (s.end !== seq.end) return undefined;
  const out = new Uint8Array(2 * size);
  for (const [i, el] of [r, s].entries()) {
    let octets = sig.subarray(el.contentStart, el.end);
    if (el.tag !== 0x02 || octets.length === 0 || (octets[0]! & 0x80) !== 0) return undefined;
    while (octets.length > 0 && octets[0] === 0) octets = octets.subarray(1);
    if (octets.length > size) return undefined;
    out.set(octets, (i + 1) * size - octets.length);
  }
  return out;
}

/**
 * True when `cert` names `issuer` as its issuer and `issuer`'s key made its signature. Web Crypto
 * checks that the key's type (from its SubjectPublicKeyInfo) fits the algorithm, so an EC key can
 * never verify an RSA signature and the like.
 */
async function isSignedBy(cert: Cert, issuer: Cert): Promise<boolean> {
  const scheme = cert.scheme;
  if (scheme === undefined || !equalBytes(cert.issuer, issuer.subject)) return false;
  try {
    let importParams: AlgorithmIdentifier | EcKeyImportParams | RsaHashedImportParams = scheme;
    let verifyParams: AlgorithmIdentifier | EcdsaParams | RsaPssParams = scheme;
    let signature = cert.signature;
    if (scheme.name === 'ECDSA') {
      const key = readSpkiAlgorithm(issuer.spki);
      const namedCurve = key.params === undefined ? undefined : CURVES[key.params];
      if (key.oid !== KEY_OIDS.ec || namedCurve === undefined) return false;
      const p1363 = ecdsaSignatureToP1363(signature, CURVE_SIZES[namedCurve]!);
      if (p1363 === undefined) return false;
      signature = p1363;
      importParams = { name: 'ECDSA', namedCurve };
    } else if (scheme.name === 'RSA-PSS') {
      verifyParams = { name: 'RSA-PSS', saltLength: scheme.saltLength };
    }
    const publicKey = await crypto.subtle.importKey('spki', issuer.spki, importParams, false, [
      'verify',
    ]);
    return await crypto.subtle.verify(verifyParams, publicKey, signature, cert.tbs);
  } catch {
    return false;
  }
}

/** pathLen of a CA with `below` intermediates between it and the leaf. */
function pathLengthAllows(cert: Cert, below: number): boolean {
  const max = cert.ca?.pathLength;
  return max === undefined || below <= max;
}

/**
 * The shared part of own and peer validation: leaf rules, bundle choice by the leaf's trust domain,
 * ordered path to a bundle root, validity and critical extensions everywhere.
 */
async function verifyChain(
  certs: readonly Cert[],
  bundles: X509Bundles,
  now: Date,
  expectedId?: string,
): Promise<SpiffeId> {
  const leaf = certs[0]!;
  const id = checkLeaf(leaf);
  if (expectedId !== undefined && expectedId !== id.toString()) {
    throw invalid("SPIFFE ID field does not match the certificate's URI SAN");
  }
  for (let i = 1; i < certs.length; i++) {
    // A trailing root (some TLS stacks send it) is judged by the bundle comparison below.
    if (i === certs.length - 1 && isInBundle(certs[i]!, bundles.get(id.trustDomain))) break;
    checkIntermediate(certs[i]!);
  }
  const bundle = bundles.get(id.trustDomain);
  if (bundle === undefined) {
    throw untrusted(`no X.509 bundle found for trust domain: "${id.trustDomain}"`);
  }
  const roots: Cert[] = [];
  for (const der of bundle) {
    try {
      roots.push(parseCert(der));
    } catch {
      // A malformed bundle entry can anchor nothing; the others still may.
    }
  }
  checkTime(leaf, now);
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i]!;
    // Does a root of the leaf's trust domain issue `cert`?
    let expiredRoot = false;
    for (const root of roots) {
      if (!isUsableRoot(root) || !pathLengthAllows(root, i)) continue;
      if (!(await isSignedBy(cert, root))) continue;
      if (!isTimeValid(root, now)) {
        expiredRoot = true;
        continue;
      }
      // Found the anchor: anything left must be that very root, sent along by the peer.
      const rest = certs.length - (i + 1);
      if (rest === 0 || (rest === 1 && equalBytes(certs[i + 1]!.der, root.der))) return id;
      throw untrusted('certificate chain contains certificates beyond its root');
    }
    if (expiredRoot) throw untrusted('certificate has expired or is not yet valid');
    const next = certs[i + 1];
    if (next === undefined) break;
    if (!pathLengthAllows(next, i)) {
      throw invalid('signing certificate path length constraint violated');
    }
    if (!(await isSignedBy(cert, next))) break;
    checkTime(next, now);
  }
  throw untrusted('x509: certificate signed by unknown authority');
}

function isInBundle(cert: Cert, bundle: readonly Uint8Array[] | undefined): boolean {
  return bundle?.some((root) => equalBytes(root, cert.der)) ?? false;
}

function parseChain(ders: readonly Uint8Array[]): Cert[] {
  if (ders.length === 0) throw invalid('x509svid: empty certificates chain');
  if (ders.length > MAX_CHAIN_LENGTH) throw invalid('certificate chain is too long');
  return ders.map(parseCert);
}

/**
 * Splits and checks a Workload API `bundle` field: concatenated DER root certificates
 * (spec/spiffe.md §4 "Split", §8 rows 16, 17, 21). Empty bytes give zero roots, which is allowed
 * and lets nothing verify.
 *
 * @throws SpikeError `svid_invalid` if the framing is not strict DER or an element is not an
 *   X.509 certificate.
 */
export function parseX509Bundle(bytes: Uint8Array): Uint8Array[] {
  const roots = splitDerCertificates(bytes);
  for (const root of roots) parseCert(root);
  return roots;
}

/**
 * Validates our own X.509-SVID from a Workload API `X509SVID` message (spec/spiffe.md §4, "Own
 * SVID" column; §8 rows 1–18, 21, 27): strict DER split, leaf and intermediate rules, `spiffeId`
 * equal to the URI SAN, unencrypted PKCS#8 DER key matching the leaf, chain to a root of the leaf
 * trust domain's bundle, validity at `now` with no skew.
 *
 * @throws SpikeError `svid_invalid` or `svid_untrusted`; on failure the caller keeps its previous
 *   good state.
 */
export async function validateOwnX509Svid(
  input: { spiffeId: string; chain: Uint8Array; privateKey: Uint8Array; hint: string },
  bundles: X509Bundles,
  now: Date,
): Promise<X509Svid> {
  const ders = splitDerCertificates(input.chain);
  const certs = parseChain(ders);
  const id = await verifyChain(certs, bundles, now, input.spiffeId);
  const leaf = certs[0]!;
  await checkPrivateKey(input.privateKey, leaf);
  return {
    id: id.toString(),
    trustDomain: id.trustDomain,
    chain: ders,
    privateKey: new Uint8Array(input.privateKey),
    hint: input.hint,
    notAfter: new Date(leaf.notAfter.getTime()),
    serial: leaf.serial,
  };
}

/**
 * Validates a peer's certificate chain from a TLS handshake (spec/spiffe.md §4, "Peer" column;
 * §5; spike-api.md §2) and returns the leaf's SPIFFE ID. The chain is leaf first; it may end with
 * the root, which must then be byte-identical to a root of the leaf trust domain's bundle (§8
 * row 10).
 *
 * @throws SpikeError `svid_invalid` or `svid_untrusted`; the caller refuses the connection.
 */
export async function verifyPeerX509Svid(
  chain: readonly Uint8Array[],
  bundles: X509Bundles,
  now: Date,
): Promise<string> {
  const certs = parseChain(chain);
  const id = await verifyChain(certs, bundles, now);
  return id.toString();
}

// ---------------------------------------------------------------------------------------------
// Private key checks (own SVID only)

const KEY_OIDS = {
  ec: '2a8648ce3d0201', // 1.2.840.10045.2.1 id-ecPublicKey
  rsa: '2a864886f70d010101', // 1.2.840.113549.1.1.1 rsaEncryption
  ed25519: '2b6570', // 1.3.101.112
} as const;

const CURVES: Record<string, string> = {
  '2a8648ce3d030107': 'P-256', // 1.2.840.10045.3.1.7
  '2b81040022': 'P-384', // 1.3.132.0.34
  '2b81040023': 'P-521', // 1.3.132.0.35
};

/** An AlgorithmIdentifier's OID (hex of its content octets) and its parameters element, if any. */
function readAlgorithmId(
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
function readSpkiAlgorithm(spki: Uint8Array): { oid: string; params: string | undefined } {
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
async function checkPrivateKey(privateKey: Uint8Array, leaf: Cert): Promise<void> {
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
