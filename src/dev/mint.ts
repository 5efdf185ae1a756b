/**
 * Minting of SPIFFE certificates with Web Crypto and @peculiar/x509.
 *
 * Used by the development identity issuer (development only: it is not a production CA) and by the
 * tests' certificate factory. Every certificate follows docs/spiffe.md §4 and §7: ECDSA P-256,
 * roots are CAs with keyCertSign, leaves carry exactly one URI SAN, critical keyUsage
 * digitalSignature, serverAuth + clientAuth, SKI and AKI.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A signing authority: its certificate (DER) and key pair. */
export interface Authority {
  readonly certificate: Uint8Array;
  readonly keys: CryptoKeyPair;
  /** The certificate chain from this authority up to (excluding) the root, DER, nearest first. */
  readonly chainAboveRoot: readonly Uint8Array[];
}

/** A minted leaf: DER chain (leaf first) and unencrypted PKCS#8 DER key. */
export interface MintedLeaf {
  readonly chain: Uint8Array[];
  readonly privateKey: Uint8Array;
  readonly serial: string;
  readonly notAfter: Date;
}

function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1;
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/**
 * The extensions every CA of ours carries (docs/spiffe.md §7): critical basicConstraints CA,
 * critical keyUsage keyCertSign + cRLSign, the trust domain's URI SAN, and the SKI.
 */
async function caExtensions(trustDomain: string, publicKey: CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

/**
 * Creates a self-signed root CA for `trustDomain` whose URI SAN is `spiffe://<trustDomain>`.
 * `notBefore` is backdated by one minute so freshly minted roots are valid at once.
 */
export async function createRootAuthority(
  trustDomain: string,
  options: { ttlSeconds?: number; now?: Date } = {},
): Promise<Authority> {
  const now = options.now ?? new Date();
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${trustDomain} development root, O=SPIKE development identity`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + (options.ttlSeconds ?? 24 * 3600) * 1000),
    keys,
    signingAlgorithm: SIGN,
    extensions: await caExtensions(trustDomain, keys.publicKey),
  });
  return { certificate: new Uint8Array(cert.rawData), keys, chainAboveRoot: [] };
}

/** Issues an intermediate CA below `issuer` (used for chain tests). */
export async function createIntermediateAuthority(
  issuer: Authority,
  trustDomain: string,
  options: { ttlSeconds?: number; now?: Date } = {},
): Promise<Authority> {
  const now = options.now ?? new Date();
  const keys = await generateKeyPair();
  const issuerCert = new x509.X509Certificate(issuer.certificate.slice());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${trustDomain} intermediate`,
    issuer: issuerCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + (options.ttlSeconds ?? 12 * 3600) * 1000),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: SIGN,
    extensions: [
      ...(await caExtensions(trustDomain, keys.publicKey)),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ],
  });
  return {
    certificate: new Uint8Array(cert.rawData),
    keys,
    chainAboveRoot: [new Uint8Array(cert.rawData), ...issuer.chainAboveRoot],
  };
}

/**
 * Issues an X.509-SVID for `spiffeId` signed by `issuer`. The returned chain is the leaf followed
 * by the issuer's intermediates (never the root). `dnsNames` and `ipAddresses` add DNS and IP
 * SANs beside the one URI SAN (SPIRE's `-dns`), so standard TLS clients can verify the hostname
 * of a server SVID (docs/vault-kv2.md §1).
 */
export async function issueX509Svid(
  issuer: Authority,
  spiffeId: string,
  options: {
    ttlSeconds?: number;
    now?: Date;
    dnsNames?: readonly string[];
    ipAddresses?: readonly string[];
  } = {},
): Promise<MintedLeaf> {
  const now = options.now ?? new Date();
  const keys = await generateKeyPair();
  const issuerCert = new x509.X509Certificate(issuer.certificate.slice());
  const serial = randomSerial();
  const notAfter = new Date(now.getTime() + (options.ttlSeconds ?? 3600) * 1000);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: 'O=SPIRE, C=US',
    issuer: issuerCert.subject,
    notBefore: new Date(now.getTime() - 10_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature |
          x509.KeyUsageFlags.keyEncipherment |
          x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: spiffeId },
        ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ],
  });
  const privateKey = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    chain: [new Uint8Array(cert.rawData), ...issuer.chainAboveRoot],
    privateKey,
    serial,
    notAfter,
  };
}
