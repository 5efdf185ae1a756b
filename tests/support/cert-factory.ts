/**
 * Test certificate factory: good and deliberately bad X.509-SVIDs (docs/spiffe.md §7, §8).
 *
 * Built on src/dev/mint.ts for the good path (the same minting code the development issuer
 * uses) and on @peculiar/x509 + Web Crypto directly for everything the product must never mint.
 * Portable: Web APIs only, so Bun and Deno suites can both use it.
 *
 * Quick start
 * ```ts
 * const pki = await createTestPki({ trustDomain: 'example.org' });
 * const svid = await pki.issue('spiffe://example.org/svc');        // leaf signed by the root
 * const deep = await pki.issue('spiffe://example.org/svc', { via: 'intermediate' });
 * await validateOwnX509Svid(
 *   { spiffeId: svid.id, chain: svid.chainBytes, privateKey: svid.privateKey, hint: '' },
 *   pki.bundles(), new Date());
 * await verifyPeerX509Svid(svid.chain, pki.bundles(), new Date());
 * ```
 *
 * `TestPki` (one trust domain):
 * - `root` / `rootDer`: the self-signed root CA (an `Authority` from mint.ts), `bundleBytes` the
 *   Workload API `bundle` field for it (the root DER), `bundles(...others)` an `X509Bundles` map
 *   with this trust domain plus the other PKIs' (federation).
 * - `intermediate`: one intermediate CA under the root (created with the PKI).
 * - `issue(id, options)`: a leaf for any ID string (even an invalid one, or one of another trust
 *   domain: `otherPki.issue('spiffe://example.org/x')` is the row 10 "union CA" leaf). Options
 *   override every field the validator checks, see `LeafOptions`.
 * - `issueIntermediate(options)`: an extra CA below the root (or below `options.parent`), with
 *   overridable CA flag, key usage, validity, URI SANs and extensions (`CaOptions`).
 * - `bad.*`: ready-made bad SVIDs for docs/spiffe.md §8, one builder per row (1–9, 12, 15, 27).
 *   Each returns a `TestSvid` chaining to this PKI's root, so the one defect is the only reason
 *   for rejection.
 *
 * Free functions: `createTestRoot(td, options)` (roots with bad flags, row 27), `toPem(der)`,
 * `encodePrivateKey(svid, encoding)` (row 15: PEM, SEC1, PKCS#1, encrypted PKCS#8),
 * `derTlv(tag, content)` (hand-built DER), `unknownCriticalExtension()`.
 *
 * Every certificate gets SKI and AKI (openssl `-x509_strict` wants AKI). Defaults follow the
 * SPIFFE profile: ECDSA P-256, leaf with one URI SAN, critical basicConstraints cA=false,
 * critical keyUsage digitalSignature|keyEncipherment|keyAgreement, EKU serverAuth+clientAuth.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { concatBytes, fromBase64, toBase64 } from '../../src/core/bytes.ts';
import type { X509Bundles } from '../../src/core/spiffe/types.ts';
import {
  type Authority,
  createIntermediateAuthority,
  createRootAuthority,
} from '../../src/dev/mint.ts';

export type { Authority };

/** Key types the factory can put in a leaf (`LeafOptions.keyType`). */
type TestKeyType = 'P-256' | 'P-384' | 'RSA' | 'Ed25519';

/** A minted leaf with everything a test needs to feed a validator or a TLS stack. */
export interface TestSvid {
  /** The (first) URI SAN requested, `''` when none. */
  readonly id: string;
  /** DER chain, leaf first, then intermediates; never the root. */
  readonly chain: Uint8Array[];
  /** `chain` concatenated: the Workload API `x509_svid` field. */
  readonly chainBytes: Uint8Array;
  /** The leaf certificate DER (`chain[0]`). */
  readonly leaf: Uint8Array;
  /** Unencrypted PKCS#8 DER private key: the Workload API `x509_svid_key` field. */
  readonly privateKey: Uint8Array;
  readonly keys: CryptoKeyPair;
  readonly keyType: TestKeyType;
  /** Serial as lowercase hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Overrides for `issue`; anything omitted follows the SPIFFE profile. */
interface LeafOptions {
  /** Signing CA: `'root'` (default), `'intermediate'` (the PKI's), or any `Authority`. */
  via?: 'root' | 'intermediate' | Authority;
  /** URI SANs; default `[id]`. `[]` leaves URIs out (with `dnsNames` for a DNS-only SAN). */
  uris?: string[];
  /** DNS SANs added to the SAN extension. */
  dnsNames?: string[];
  /** Omit the SAN extension entirely. */
  noSan?: boolean;
  /** Mark the SAN extension critical (default false). */
  sanCritical?: boolean;
  /** basicConstraints cA (default false); `null` omits basicConstraints. */
  ca?: boolean | null;
  /** keyUsage flags (x509.KeyUsageFlags); `null` omits the extension. */
  keyUsage?: number | null;
  /** Whether keyUsage is critical (default true). */
  keyUsageCritical?: boolean;
  /** EKU OIDs; default serverAuth + clientAuth; `null` omits the extension. */
  extKeyUsage?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
  /** Reference time for the default validity window (default now). */
  now?: Date;
  ttlSeconds?: number;
  /** Subject DN (default `O=SPIRE, C=US`). */
  subject?: string;
  /** Extra extensions appended as-is (e.g. `unknownCriticalExtension()`). */
  extensions?: x509.Extension[];
  keyType?: TestKeyType;
  /** Sign the leaf with its own key (issuer = subject): row 12. */
  selfSigned?: boolean;
  /** Hash the issuer's ECDSA signature uses (default SHA-256; `SHA-1` for a weak signature). */
  signatureHash?: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
}

/** Overrides for CA certificates (`issueIntermediate`, `createTestRoot`). */
export interface CaOptions {
  /** Issuer of an intermediate (default the PKI's root). Ignored for roots. */
  parent?: Authority;
  /** basicConstraints cA (default true); `null` omits basicConstraints. */
  ca?: boolean | null;
  pathLength?: number;
  /** keyUsage flags (default keyCertSign|cRLSign); `null` omits the extension. */
  keyUsage?: number | null;
  /** URI SANs (default `[spiffe://<td>]`). */
  uris?: string[];
  notBefore?: Date;
  notAfter?: Date;
  now?: Date;
  ttlSeconds?: number;
  subject?: string;
  extensions?: x509.Extension[];
}

/** The object returned by `createTestPki`. */
export interface TestPki {
  readonly trustDomain: string;
  readonly root: Authority;
  readonly rootDer: Uint8Array;
  /** The Workload API `bundle` field for this trust domain (the root, DER). */
  readonly bundleBytes: Uint8Array;
  readonly intermediate: Authority;
  /** `trustDomain → [root]`, plus each other PKI's entry (federated bundles). */
  bundles(...others: TestPki[]): X509Bundles;
  issue(id: string, options?: LeafOptions): Promise<TestSvid>;
  issueIntermediate(options?: CaOptions): Promise<Authority>;
  /** One builder per hostile row of docs/spiffe.md §8. */
  readonly bad: BadSvids;
}

/** Ready-made bad SVIDs (docs/spiffe.md §8); each chains to the PKI's root. */
interface BadSvids {
  /** Row 1: two URI SANs. */
  twoUriSans(): Promise<TestSvid>;
  /** Row 2: a DNS SAN and no URI SAN. */
  dnsOnlySan(): Promise<TestSvid>;
  /** Row 3: URI SAN `https://<td>/x`. */
  httpsUriSan(): Promise<TestSvid>;
  /** Row 4: URI SAN `spiffe://<td>` (root path). */
  rootPathId(): Promise<TestSvid>;
  /** Row 5: leaf with cA = true. */
  caLeaf(): Promise<TestSvid>;
  /** Row 6: leaf with keyCertSign. */
  leafWithKeyCertSign(): Promise<TestSvid>;
  /** Row 6: leaf with cRLSign. */
  leafWithCrlSign(): Promise<TestSvid>;
  /** Row 7: keyUsage without digitalSignature. */
  leafWithoutDigitalSignature(): Promise<TestSvid>;
  /** Row 7: no keyUsage extension at all. */
  leafWithoutKeyUsage(): Promise<TestSvid>;
  /** Row 8: signed by an intermediate with cA = false. */
  intermediateNotCa(): Promise<TestSvid>;
  /** Row 8: signed by an intermediate without keyCertSign. */
  intermediateWithoutKeyCertSign(): Promise<TestSvid>;
  /** Row 9: leaf expired an hour ago. */
  expiredLeaf(): Promise<TestSvid>;
  /** Row 9: leaf valid only from an hour from now. */
  notYetValidLeaf(): Promise<TestSvid>;
  /** Row 9: valid leaf under an expired intermediate. */
  expiredIntermediate(): Promise<TestSvid>;
  /** Row 9: valid leaf under a not-yet-valid intermediate. */
  notYetValidIntermediate(): Promise<TestSvid>;
  /** Row 12: self-signed leaf carrying a correct ID of this trust domain. */
  selfSignedLeaf(): Promise<TestSvid>;
  /** Row 27: unknown critical extension in the leaf. */
  leafWithUnknownCriticalExtension(): Promise<TestSvid>;
  /** Row 27: unknown critical extension in the intermediate. */
  intermediateWithUnknownCriticalExtension(): Promise<TestSvid>;
}

const SIGN_EC256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const KU = x509.KeyUsageFlags;
const LEAF_KEY_USAGE = KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement;
const CA_KEY_USAGE = KU.keyCertSign | KU.cRLSign;
const HOUR = 3600_000;

/** An OID no implementation knows (under the 2.25 UUID arc), for row 27. */
const UNKNOWN_EXTENSION_OID = '2.25.329800735698586629295641978511506172918';

/** A critical extension with an unknown OID and an empty-SEQUENCE value (row 27). */
export function unknownCriticalExtension(): x509.Extension {
  return new x509.Extension(UNKNOWN_EXTENSION_OID, true, new Uint8Array([0x05, 0x00]));
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, no leading zero byte
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

async function generateKeys(type: TestKeyType): Promise<{
  keys: CryptoKeyPair;
  signing: Algorithm;
}> {
  switch (type) {
    case 'P-256':
    case 'P-384': {
      const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: type }, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const hash = type === 'P-256' ? 'SHA-256' : 'SHA-384';
      return { keys, signing: { name: 'ECDSA', hash } as Algorithm };
    }
    case 'RSA': {
      const keys = (await crypto.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      )) as CryptoKeyPair;
      return { keys, signing: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm };
    }
    case 'Ed25519': {
      const keys = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      return { keys, signing: { name: 'Ed25519' } };
    }
  }
}

function uriSans(uris: string[], dns: string[] = []): x509.JsonGeneralNames {
  return [
    ...uris.map((value) => ({ type: 'url' as const, value })),
    ...dns.map((value) => ({ type: 'dns' as const, value })),
  ];
}

async function caExtensions(
  trustDomain: string,
  options: CaOptions,
  keys: CryptoKeyPair,
): Promise<x509.Extension[]> {
  const ext: x509.Extension[] = [];
  if (options.ca !== null) {
    ext.push(new x509.BasicConstraintsExtension(options.ca ?? true, options.pathLength, true));
  }
  if (options.keyUsage !== null) {
    ext.push(new x509.KeyUsagesExtension(options.keyUsage ?? CA_KEY_USAGE, true));
  }
  const uris = options.uris ?? [`spiffe://${trustDomain}`];
  if (uris.length > 0) ext.push(new x509.SubjectAlternativeNameExtension(uriSans(uris)));
  ext.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  return ext;
}

function validity(
  options: { notBefore?: Date; notAfter?: Date; now?: Date; ttlSeconds?: number },
  defaultTtlSeconds: number,
  backdateMs: number,
): { notBefore: Date; notAfter: Date } {
  const now = options.now ?? new Date();
  return {
    notBefore: options.notBefore ?? new Date(now.getTime() - backdateMs),
    notAfter:
      options.notAfter ??
      new Date(now.getTime() + (options.ttlSeconds ?? defaultTtlSeconds) * 1000),
  };
}

/**
 * A self-signed root CA with overridable flags (e.g. `extensions: [unknownCriticalExtension()]`
 * for row 27). Defaults match mint.ts `createRootAuthority`.
 */
export async function createTestRoot(
  trustDomain: string,
  options: CaOptions = {},
): Promise<Authority> {
  const keys = await generateKeys('P-256');
  const { notBefore, notAfter } = validity(options, 24 * 3600, 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: options.subject ?? `CN=${trustDomain} test root`,
    notBefore,
    notAfter,
    keys: keys.keys,
    signingAlgorithm: SIGN_EC256,
    extensions: [
      ...(await caExtensions(trustDomain, options, keys.keys)),
      ...(options.extensions ?? []),
    ],
  });
  return { certificate: new Uint8Array(cert.rawData), keys: keys.keys, chainAboveRoot: [] };
}

/** An intermediate CA below `parent` with overridable flags. */
async function createTestIntermediate(
  parent: Authority,
  trustDomain: string,
  options: CaOptions = {},
): Promise<Authority> {
  const keys = await generateKeys('P-256');
  const { notBefore, notAfter } = validity(options, 12 * 3600, 60_000);
  const parentCert = new x509.X509Certificate(parent.certificate.slice());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: options.subject ?? `CN=${trustDomain} test intermediate ${randomSerial().slice(0, 8)}`,
    issuer: parentCert.subject,
    notBefore,
    notAfter,
    publicKey: keys.keys.publicKey,
    signingKey: parent.keys.privateKey,
    signingAlgorithm: SIGN_EC256,
    extensions: [
      ...(await caExtensions(trustDomain, options, keys.keys)),
      await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey),
      ...(options.extensions ?? []),
    ],
  });
  const der = new Uint8Array(cert.rawData);
  return { certificate: der, keys: keys.keys, chainAboveRoot: [der, ...parent.chainAboveRoot] };
}

/** Issues a leaf below `issuer` (or self-signed) with every field overridable. */
async function issueTestLeaf(
  issuer: Authority,
  id: string,
  options: LeafOptions = {},
): Promise<TestSvid> {
  const keyType = options.keyType ?? 'P-256';
  const { keys, signing } = await generateKeys(keyType);
  const { notBefore, notAfter } = validity(options, 3600, 10_000);
  const ext: x509.Extension[] = [];
  if (options.ca !== null) {
    ext.push(new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true));
  }
  if (options.keyUsage !== null) {
    ext.push(
      new x509.KeyUsagesExtension(
        options.keyUsage ?? LEAF_KEY_USAGE,
        options.keyUsageCritical ?? true,
      ),
    );
  }
  if (options.extKeyUsage !== null) {
    ext.push(
      new x509.ExtendedKeyUsageExtension(
        options.extKeyUsage ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
    );
  }
  if (!options.noSan) {
    ext.push(
      new x509.SubjectAlternativeNameExtension(
        uriSans(options.uris ?? [id], options.dnsNames),
        options.sanCritical ?? false,
      ),
    );
  }
  ext.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  const signer = options.selfSigned ? keys : issuer.keys;
  ext.push(await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey));
  ext.push(...(options.extensions ?? []));
  const subject = options.subject ?? 'O=SPIRE, C=US';
  // The issuer signs with its own algorithm; a self-signed leaf with its own.
  const signingAlgorithm = options.selfSigned
    ? signing
    : ({ name: 'ECDSA', hash: options.signatureHash ?? 'SHA-256' } as Algorithm);
  const serial = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: options.selfSigned
      ? subject
      : new x509.X509Certificate(issuer.certificate.slice()).subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: signer.privateKey,
    signingAlgorithm,
    extensions: ext,
  });
  const leaf = new Uint8Array(cert.rawData);
  const chain = options.selfSigned ? [leaf] : [leaf, ...issuer.chainAboveRoot];
  return {
    id: (options.uris ?? [id])[0] ?? '',
    chain,
    chainBytes: concatBytes(...chain),
    leaf,
    privateKey: new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey)),
    keys,
    keyType,
    serial,
    notBefore,
    notAfter,
  };
}

/** Creates a trust domain's test PKI: a root and one intermediate (see the module header). */
export async function createTestPki(options: { trustDomain: string }): Promise<TestPki> {
  const { trustDomain } = options;
  const root = await createRootAuthority(trustDomain);
  const intermediate = await createIntermediateAuthority(root, trustDomain);
  const id = (path: string) => `spiffe://${trustDomain}${path}`;
  const pki: TestPki = {
    trustDomain,
    root,
    rootDer: root.certificate,
    bundleBytes: root.certificate,
    intermediate,
    bundles(...others) {
      const map = new Map<string, Uint8Array[]>([[trustDomain, [root.certificate]]]);
      for (const o of others) map.set(o.trustDomain, [o.rootDer]);
      return map;
    },
    issue(leafId, leafOptions = {}) {
      const via = leafOptions.via ?? 'root';
      const issuer = via === 'root' ? root : via === 'intermediate' ? intermediate : via;
      return issueTestLeaf(issuer, leafId, leafOptions);
    },
    issueIntermediate(caOptions = {}) {
      return createTestIntermediate(caOptions.parent ?? root, trustDomain, caOptions);
    },
    bad: {
      twoUriSans: () => pki.issue(id('/a'), { uris: [id('/a'), id('/b')] }),
      dnsOnlySan: () => pki.issue('', { uris: [], dnsNames: ['svc.example.org'] }),
      httpsUriSan: () => pki.issue(`https://${trustDomain}/x`),
      rootPathId: () => pki.issue(id('')),
      caLeaf: () => pki.issue(id('/ca-leaf'), { ca: true }),
      leafWithKeyCertSign: () =>
        pki.issue(id('/kcs'), { keyUsage: KU.digitalSignature | KU.keyCertSign }),
      leafWithCrlSign: () => pki.issue(id('/crl'), { keyUsage: KU.digitalSignature | KU.cRLSign }),
      leafWithoutDigitalSignature: () =>
        pki.issue(id('/no-ds'), { keyUsage: KU.keyEncipherment | KU.keyAgreement }),
      leafWithoutKeyUsage: () => pki.issue(id('/no-ku'), { keyUsage: null }),
      intermediateNotCa: async () =>
        pki.issue(id('/under-non-ca'), { via: await pki.issueIntermediate({ ca: false }) }),
      intermediateWithoutKeyCertSign: async () =>
        pki.issue(id('/under-no-kcs'), {
          via: await pki.issueIntermediate({ keyUsage: KU.cRLSign | KU.digitalSignature }),
        }),
      expiredLeaf: () =>
        pki.issue(id('/expired'), {
          notBefore: new Date(Date.now() - 2 * HOUR),
          notAfter: new Date(Date.now() - HOUR),
        }),
      notYetValidLeaf: () =>
        pki.issue(id('/future'), {
          notBefore: new Date(Date.now() + HOUR),
          notAfter: new Date(Date.now() + 2 * HOUR),
        }),
      expiredIntermediate: async () =>
        pki.issue(id('/under-expired'), {
          via: await pki.issueIntermediate({
            notBefore: new Date(Date.now() - 3 * HOUR),
            notAfter: new Date(Date.now() - HOUR),
          }),
          notBefore: new Date(Date.now() - 2 * HOUR),
        }),
      notYetValidIntermediate: async () =>
        pki.issue(id('/under-future'), {
          via: await pki.issueIntermediate({
            notBefore: new Date(Date.now() + HOUR),
            notAfter: new Date(Date.now() + 3 * HOUR),
          }),
        }),
      selfSignedLeaf: () =>
        // Same subject as the real root, so only the signature tells them apart.
        pki.issue(id('/self'), {
          selfSigned: true,
          subject: new x509.X509Certificate(root.certificate.slice()).subject,
        }),
      leafWithUnknownCriticalExtension: () =>
        pki.issue(id('/unknown-ext'), { extensions: [unknownCriticalExtension()] }),
      intermediateWithUnknownCriticalExtension: async () =>
        pki.issue(id('/under-unknown-ext'), {
          via: await pki.issueIntermediate({ extensions: [unknownCriticalExtension()] }),
        }),
    },
  };
  return pki;
}

// ---------------------------------------------------------------------------------------------
// Encodings (rows 15, 16)

/** Minimal DER TLV encoder (definite, minimal length). */
export function derTlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concatBytes(new Uint8Array(header), content);
}

/** PEM armour (64-column base64), returned as bytes like a file's content (row 16). */
export function toPem(der: Uint8Array, label = 'CERTIFICATE'): Uint8Array {
  const b64 = toBase64(der).replace(/.{64}/g, '$&\n');
  const text = `-----BEGIN ${label}-----\n${b64.endsWith('\n') ? b64 : `${b64}\n`}-----END ${label}-----\n`;
  return new TextEncoder().encode(text);
}

function b64url(s: string): Uint8Array {
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(std + '='.repeat((4 - (std.length % 4)) % 4));
}

/** Reads the contents of a PKCS#8 PrivateKeyInfo's privateKey OCTET STRING (PKCS#1 for RSA). */
function pkcs8Inner(pkcs8: Uint8Array): Uint8Array {
  // Walk: SEQUENCE { INTEGER, SEQUENCE, OCTET STRING }.
  const readLen = (at: number): [number, number] => {
    const first = pkcs8[at]!;
    if (first < 0x80) return [first, at + 1];
    let len = 0;
    const n = first & 0x7f;
    for (let i = 0; i < n; i++) len = len * 256 + pkcs8[at + 1 + i]!;
    return [len, at + 1 + n];
  };
  let [, p] = readLen(1); // into the outer SEQUENCE
  for (let skip = 0; skip < 2; skip++) {
    const [len, start] = readLen(p + 1);
    p = start + len;
  }
  const [len, start] = readLen(p + 1);
  return pkcs8.slice(start, start + len);
}

const OID_P256 = new Uint8Array([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);

/**
 * The leaf's key in a wrong encoding (row 15): `pem` (PKCS#8 in PEM armour), `sec1` (RFC 5915
 * ECPrivateKey DER, P-256 SVIDs only), `pkcs1` (RSAPrivateKey DER, RSA SVIDs only:
 * `issue(id, { keyType: 'RSA' })`), `encrypted-pkcs8` (an EncryptedPrivateKeyInfo: PBES2
 * AlgorithmIdentifier + random ciphertext; structurally right, never decryptable).
 */
export async function encodePrivateKey(
  svid: TestSvid,
  encoding: 'pem' | 'sec1' | 'pkcs1' | 'encrypted-pkcs8',
): Promise<Uint8Array> {
  switch (encoding) {
    case 'pem':
      return toPem(svid.privateKey, 'PRIVATE KEY');
    case 'pkcs1':
      if (svid.keyType !== 'RSA') throw new TypeError('PKCS#1 needs an RSA SVID');
      return pkcs8Inner(svid.privateKey);
    case 'sec1': {
      if (svid.keyType !== 'P-256') throw new TypeError('SEC1 helper supports P-256 SVIDs');
      const jwk = await crypto.subtle.exportKey('jwk', svid.keys.privateKey);
      const d = b64url(jwk.d!);
      const pub = concatBytes(new Uint8Array([0x00, 0x04]), b64url(jwk.x!), b64url(jwk.y!));
      return derTlv(
        0x30,
        concatBytes(
          new Uint8Array([0x02, 0x01, 0x01]),
          derTlv(0x04, d),
          derTlv(0xa0, OID_P256),
          derTlv(0xa1, derTlv(0x03, pub)),
        ),
      );
    }
    case 'encrypted-pkcs8': {
      // 1.2.840.113549.1.5.13 (PBES2) with placeholder parameters, then the "ciphertext".
      const pbes2 = new Uint8Array([
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
      ]);
      const algorithm = derTlv(0x30, concatBytes(pbes2, derTlv(0x30, new Uint8Array(0))));
      const ciphertext = derTlv(0x04, crypto.getRandomValues(new Uint8Array(144)));
      return derTlv(0x30, concatBytes(algorithm, ciphertext));
    }
  }
}
