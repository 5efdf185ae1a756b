/**
 * Shared SPIFFE types of the portable core (docs/spiffe.md §1.2, §1.5, §4).
 *
 * Certificates travel as DER bytes; keys as unencrypted PKCS#8 DER. Trust domains are keyed by
 * their bare name (`example.org`, never `spiffe://example.org`).
 */

/** A validated X.509-SVID: the leaf's SPIFFE ID, its chain (leaf first) and its private key. */
export interface X509Svid {
  /** The SPIFFE ID of the leaf, e.g. `spiffe://spike.ist/spike/nexus`. */
  readonly id: string;
  /** The trust domain of `id`, e.g. `spike.ist`. */
  readonly trustDomain: string;
  /** DER certificates, leaf first, then intermediates. */
  readonly chain: readonly Uint8Array[];
  /** Unencrypted PKCS#8 DER private key matching the leaf. */
  readonly privateKey: Uint8Array;
  /** Operator label from the Workload API (`hint`), `''` when absent. */
  readonly hint: string;
  /** Leaf validity end; the earliest `notAfter` of the chain is not tracked here. */
  readonly notAfter: Date;
  /** Leaf serial number as lowercase hex (for rotation observability). */
  readonly serial: string;
}

/** X.509 bundles: trust domain name → DER root certificates. */
export type X509Bundles = ReadonlyMap<string, readonly Uint8Array[]>;

/** The complete state carried by one `X509SVIDResponse` (every message is the full state). */
export interface X509Context {
  /** The SVIDs, the default one first (`svids[0]`). Never empty. */
  readonly svids: readonly X509Svid[];
  /** Own trust domain's bundle plus federated bundles. */
  readonly bundles: X509Bundles;
}

/**
 * A live source of X.509 identity (go-spiffe's `X509Source`). Implemented by the Workload API
 * client; consumed by the mTLS transport and the SDK.
 */
export interface X509Source {
  /** Resolves with the first valid context; rejects on a fatal error or the configured timeout. */
  ready(): Promise<X509Context>;
  /** The current context, or `undefined` before the first one or after the SVIDs were withdrawn. */
  current(): X509Context | undefined;
  /**
   * Subscribes to changes: called with the new context on rotation (not on identical re-sends),
   * and with `undefined` when the SVIDs are withdrawn (fail closed). Returns an unsubscribe function.
   */
  onUpdate(listener: (context: X509Context | undefined) => void): () => void;
  /** Stops the stream and releases the connection. */
  close(): Promise<void>;
}
