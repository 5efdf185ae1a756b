/**
 * X.509-SVID validation for our own SVIDs (Workload API) and for peers (mTLS), docs/spiffe.md §4.
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
 * Certificates are decoded by @peculiar/asn1-x509 (the RFC 5280 ASN.1 schema, docs/architecture.md
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
import { KeyUsageFlags as KU } from '@peculiar/asn1-x509';
import { equalBytes } from '../bytes.ts';
import { readDerElement, splitDerCertificates } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './id.ts';
import type { X509Bundles, X509Svid } from './types.ts';
import {
  type Cert,
  checkSignatureAlgorithm,
  invalid,
  MAX_CHAIN_LENGTH,
  OID,
  parseCert,
  untrusted,
} from './x509-cert.ts';
import { CURVES, checkPrivateKey, KEY_OIDS, readSpkiAlgorithm } from './x509-key.ts';

/** The leaf rules of docs/spiffe.md §4; returns the leaf's SPIFFE ID. */
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
 * The synchronous part of the leaf rules (docs/spiffe.md §4) on one DER certificate, for places
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

/** The signing-certificate rules of docs/spiffe.md §4, for an intermediate from the chain. */
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
 * (docs/spiffe.md §4 "Split", §8 rows 16, 17, 21). Empty bytes give zero roots, which is allowed
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
 * Validates our own X.509-SVID from a Workload API `X509SVID` message (docs/spiffe.md §4, "Own
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
 * Validates a peer's certificate chain from a TLS handshake (docs/spiffe.md §4, "Peer" column;
 * §5; docs/spike-api.md §2) and returns the leaf's SPIFFE ID. The chain is leaf first; it may end with
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
