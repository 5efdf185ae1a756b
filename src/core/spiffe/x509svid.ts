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
 * - the chain must be in order (leaf first, each certificate issued by the next) and end at a root
 *   that is byte-identical to one in the bundle **of the leaf's trust domain** (§5 Federation: a
 *   TLS stack given the union of several bundles accepts a chain to any of them);
 * - every certificate on the path must be within its validity window at `now`, with no skew;
 * - an unknown critical extension anywhere on the path rejects the chain (RFC 5280 §4.2).
 *
 * Certificates are parsed by @peculiar/x509 and signatures checked with Web Crypto, so this file
 * runs unchanged on Bun, Deno and edge runtimes. Only parsing is cached (by exact DER bytes);
 * every trust, signature and time decision is made afresh on each call.
 *
 * Errors: `svid_invalid` for malformed or rule-breaking certificates and keys, `svid_untrusted`
 * for a missing bundle, an unknown authority or a validity failure. Messages follow go-spiffe and
 * never contain key material.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { equalBytes } from '../bytes.ts';
import { SpikeError } from '../errors.ts';
import { readDerElement, splitDerCertificates } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './id.ts';
import type { X509Bundles, X509Svid } from './types.ts';

/** Longest chain we look at (leaf + intermediates + optional root); real chains have 1–4. */
const MAX_CHAIN_LENGTH = 16;

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlDistributionPoints: '2.5.29.31',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
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

const KU = x509.KeyUsageFlags;

/** What we need from one parsed certificate. */
interface Cert {
  readonly der: Uint8Array;
  readonly x: x509.X509Certificate;
  /** The outer signatureAlgorithm OID, hex of its content octets. */
  readonly signatureOid: string;
  readonly subject: string;
  readonly issuer: string;
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
function checkCertificateFraming(der: Uint8Array): string {
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
  return hexOf(der.subarray(oid.contentStart, oid.end));
}

/**
 * Signature algorithms accepted on leaves and intermediates (as Go: no SHA-1, no MD5): ECDSA and
 * RSA PKCS#1 v1.5 with SHA-256/384/512, RSASSA-PSS, Ed25519. Roots' self-signatures are never
 * checked, so roots are not restricted.
 */
const SIGNATURE_OIDS: ReadonlySet<string> = new Set([
  '2a8648ce3d040302', // ecdsa-with-SHA256
  '2a8648ce3d040303', // ecdsa-with-SHA384
  '2a8648ce3d040304', // ecdsa-with-SHA512
  '2a864886f70d01010b', // sha256WithRSAEncryption
  '2a864886f70d01010c', // sha384WithRSAEncryption
  '2a864886f70d01010d', // sha512WithRSAEncryption
  '2a864886f70d01010a', // RSASSA-PSS
  '2b6570', // Ed25519
]);

function checkSignatureAlgorithm(cert: Cert): void {
  if (!SIGNATURE_OIDS.has(cert.signatureOid)) {
    throw invalid('x509: certificate signed with an insecure or unsupported algorithm');
  }
}

/**
 * Parsed certificates, keyed by their complete DER bytes (as a binary string, compared exactly, so
 * a hit is a certificate with the very same bytes). Parsing is a pure function of those bytes and
 * `Cert` is never mutated, so reuse is safe; nothing time-dependent or trust-dependent is cached.
 * It spares the per-connection parse of the roots, intermediates and repeat clients (~1 ms each
 * with @peculiar/x509). Bounded; the oldest entry goes first.
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

function parseCertUncached(der: Uint8Array<ArrayBuffer>): Cert {
  const signatureOid = checkCertificateFraming(der);
  let x: x509.X509Certificate;
  let extensions: x509.Extension[];
  try {
    x = new x509.X509Certificate(der);
    // Read once: @peculiar caches an empty list if this getter throws half-way.
    extensions = x.extensions;
    // Touch the fields we use so malformed ones fail here, as parse errors.
    void x.notBefore;
    void x.notAfter;
    void x.serialNumber;
  } catch (error) {
    throw invalid('failed to parse certificate', error);
  }
  const seen = new Set<string>();
  let ca: Cert['ca'];
  let keyUsage: Cert['keyUsage'];
  let extKeyUsage: Cert['extKeyUsage'];
  let san: Cert['san'];
  let unhandledCritical = false;
  for (const ext of extensions) {
    if (seen.has(ext.type)) throw invalid('certificate contains a duplicate extension');
    seen.add(ext.type);
    if (ext.critical && !HANDLED_EXTENSIONS.has(ext.type)) unhandledCritical = true;
    if (ext instanceof x509.BasicConstraintsExtension) {
      ca = { ca: ext.ca, pathLength: ext.pathLength };
    } else if (ext instanceof x509.KeyUsagesExtension) {
      keyUsage = { usages: ext.usages, critical: ext.critical };
    } else if (ext instanceof x509.ExtendedKeyUsageExtension) {
      extKeyUsage = ext.usages.map((u) => String(u));
    } else if (ext instanceof x509.SubjectAlternativeNameExtension) {
      const uris = ext.names.items.filter((n) => n.type === 'url').map((n) => n.value);
      san = { uris, critical: ext.critical };
    }
  }
  return {
    der,
    x,
    signatureOid,
    subject: x.subject,
    issuer: x.issuer,
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
  if (leaf.subject === '' && leaf.san?.critical !== true) {
    throw invalid('leaf certificate with an empty subject must have a critical SAN extension');
  }
  if (leaf.unhandledCritical) throw invalid('x509: unhandled critical extension');
  checkSignatureAlgorithm(leaf);
  return id;
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
  return t >= cert.x.notBefore.getTime() && t <= cert.x.notAfter.getTime();
}

function checkTime(cert: Cert, now: Date): void {
  if (!isTimeValid(cert, now)) throw untrusted('certificate has expired or is not yet valid');
}

/** True when `cert` names `issuer` as its issuer and `issuer`'s key made its signature. */
async function isSignedBy(cert: Cert, issuer: Cert): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.x.verify({ publicKey: issuer.x.publicKey, signatureOnly: true });
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
    notAfter: leaf.x.notAfter,
    serial: leaf.x.serialNumber.toLowerCase(),
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

function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** The algorithm OID and (for EC) curve OID of an AlgorithmIdentifier, as hex of the contents. */
function readAlgorithm(bytes: Uint8Array, el: { contentStart: number; end: number }) {
  const oid = readDerElement(bytes, el.contentStart, el.end);
  if (oid.tag !== 0x06) throw new Error('algorithm is not an OID');
  let params: string | undefined;
  if (oid.end < el.end) {
    const p = readDerElement(bytes, oid.end, el.end);
    if (p.end !== el.end) throw new Error('trailing data in AlgorithmIdentifier');
    if (p.tag === 0x06) params = hexOf(bytes.subarray(p.contentStart, p.end));
  }
  return { oid: hexOf(bytes.subarray(oid.contentStart, oid.end)), params };
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
  const spki = new Uint8Array(leaf.x.publicKey.rawData);
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
