/**
 * TLS material and SPIFFE peer verification shared by the mTLS server (server.ts) and client
 * (client.ts): the `node:tls` options of an X.509 context, a fingerprint that changes on
 * rotation, the peer chain of a TLS socket, and the full SPIFFE check of that chain
 * (docs/spiffe.md §4, §5).
 */
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { toBase64, toHex } from '../../core/bytes.ts';
import type { Authorizer } from '../../core/spiffe/authorizer.ts';
import { parseSpiffeId } from '../../core/spiffe/id.ts';
import type { X509Context } from '../../core/spiffe/types.ts';
import { verifyPeerX509Svid } from '../../core/spiffe/x509svid.ts';

/** DER → PEM, the form `node:tls` accepts for `cert`, `key` and `ca`. */
export function toPem(label: 'CERTIFICATE' | 'PRIVATE KEY', der: Uint8Array): string {
  const b64 = toBase64(der).replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** `node:tls` options for a context: the default SVID (`svids[0]`) and every bundle's roots. */
export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string[];
}

/**
 * The TLS material of an X.509 context: key and chain of the default SVID, and as `ca` the roots
 * of all bundles (federation; the per-trust-domain check happens after the handshake).
 */
export function tlsMaterialOf(context: X509Context): TlsMaterial {
  const svid = context.svids[0];
  if (svid === undefined) throw new TypeError('X509Context without SVIDs');
  const ca: string[] = [];
  for (const roots of context.bundles.values()) {
    for (const root of roots) ca.push(toPem('CERTIFICATE', root));
  }
  return {
    key: toPem('PRIVATE KEY', svid.privateKey),
    cert: svid.chain.map((der) => toPem('CERTIFICATE', der)).join(''),
    ca,
  };
}

/** A value that changes whenever the default SVID or any bundle changes (no secrets in it). */
export function contextFingerprint(context: X509Context): string {
  const parts: string[] = [];
  for (const der of context.svids[0]?.chain ?? []) parts.push(toHex(der));
  parts.push('|');
  for (const td of [...context.bundles.keys()].sort()) {
    parts.push(td);
    for (const root of context.bundles.get(td) ?? []) parts.push(toHex(root));
  }
  return parts.join(',');
}

/**
 * The peer's chain as DER, leaf first, from `getPeerCertificate(true)`: the TLS stack links each
 * certificate to its issuer, and a self-issued root links to itself (stop there, and on any
 * repeat).
 */
export function peerChainOf(socket: Pick<TLSSocket, 'getPeerCertificate'>): Uint8Array[] {
  const chain: Uint8Array[] = [];
  const seen = new Set<string>();
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert?.raw !== undefined && cert.raw.length > 0 && chain.length < 16) {
    const der = new Uint8Array(cert.raw);
    const key = toHex(der);
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(der);
    const next: DetailedPeerCertificate | undefined = cert.issuerCertificate;
    if (next === undefined || next === cert) break;
    cert = next;
  }
  return chain;
}

/**
 * Full SPIFFE verification of a peer chain (docs/spiffe.md §4 "Peer" column, §5): chain to the bundle
 * of the leaf's trust domain, then the authorizer. Returns the peer ID.
 *
 * @throws SpikeError `svid_invalid`, `svid_untrusted`, or the authorizer's error.
 */
export async function verifyPeer(
  chain: readonly Uint8Array[],
  context: X509Context,
  authorizer: Authorizer,
): Promise<string> {
  const id = await verifyPeerX509Svid(chain, context.bundles, new Date());
  authorizer(parseSpiffeId(id));
  return id;
}
