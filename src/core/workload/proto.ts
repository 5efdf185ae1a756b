/**
 * The Workload API messages a client uses (docs/spiffe.md §1.2): decoders for the responses and
 * the encoder of the one request with a body, on the wire primitives of ./protobuf.ts (which
 * states the decoder rules). The server side lives with its users: src/dev/workload-proto.ts
 * (development issuer) and tests/support/workload-proto.ts (Workload API test double).
 *
 * Decoded bytes are copies, never views into the received buffer.
 */
import { decodeMapEntry, ProtoWriter, walkFields } from './protobuf.ts';

/** `X509SVID`: one X.509-SVID as sent by the Workload API. */
export interface X509SvidMessage {
  /** Field 1. */
  readonly spiffeId: string;
  /** Field 2: concatenated DER certificates, leaf first. */
  readonly x509Svid: Uint8Array;
  /** Field 3: unencrypted PKCS#8 DER key. */
  readonly x509SvidKey: Uint8Array;
  /** Field 4: concatenated DER roots of the SVID's trust domain. */
  readonly bundle: Uint8Array;
  /** Field 5: operator label, `''` when absent. */
  readonly hint: string;
}

/** `X509SVIDResponse`. */
export interface X509SvidResponse {
  readonly svids: readonly X509SvidMessage[];
  /** DER CRLs (SPIRE never sets them). */
  readonly crl: readonly Uint8Array[];
  /** Trust-domain ID → concatenated DER roots. */
  readonly federatedBundles: ReadonlyMap<string, Uint8Array>;
}

/** `X509BundlesResponse`. */
export interface X509BundlesResponse {
  readonly crl: readonly Uint8Array[];
  /** Trust-domain ID → concatenated DER roots. */
  readonly bundles: ReadonlyMap<string, Uint8Array>;
}

/** `JWTSVIDRequest`. */
export interface JwtSvidRequest {
  readonly audience: readonly string[];
  /** Optional filter, `''` when absent. */
  readonly spiffeId: string;
}

/** `JWTSVID`. */
export interface JwtSvidMessage {
  readonly spiffeId: string;
  /** JWS compact serialisation. */
  readonly svid: string;
  readonly hint: string;
}

/** `JWTSVIDResponse`. */
export interface JwtSvidResponse {
  readonly svids: readonly JwtSvidMessage[];
}

/** `JWTBundlesResponse`. */
export interface JwtBundlesResponse {
  /** Trust-domain ID → JWKS JSON bytes. */
  readonly bundles: ReadonlyMap<string, Uint8Array>;
}

function decodeX509Svid(buf: Uint8Array): X509SvidMessage {
  let spiffeId = '';
  let x509Svid: Uint8Array = new Uint8Array(0);
  let x509SvidKey: Uint8Array = new Uint8Array(0);
  let bundle: Uint8Array = new Uint8Array(0);
  let hint = '';
  walkFields(buf, (field, r) => {
    if (field === 1) spiffeId = r.string();
    else if (field === 2) x509Svid = r.bytes();
    else if (field === 3) x509SvidKey = r.bytes();
    else if (field === 4) bundle = r.bytes();
    else if (field === 5) hint = r.string();
    else return false;
    return true;
  });
  return { spiffeId, x509Svid, x509SvidKey, bundle, hint };
}

/**
 * Decodes an `X509SVIDResponse` (docs/spiffe.md §1.2). Semantic checks (at least one SVID,
 * certificates) belong to `toX509Context`.
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf (row 39).
 */
export function decodeX509SvidResponse(buf: Uint8Array): X509SvidResponse {
  const svids: X509SvidMessage[] = [];
  const crl: Uint8Array[] = [];
  const federatedBundles = new Map<string, Uint8Array>();
  walkFields(buf, (field, r) => {
    if (field === 1) svids.push(decodeX509Svid(r.view()));
    else if (field === 2) crl.push(r.bytes());
    else if (field === 3) {
      const [key, value] = decodeMapEntry(r.view());
      federatedBundles.set(key, value);
    } else return false;
    return true;
  });
  return { svids, crl, federatedBundles };
}

/**
 * Decodes an `X509BundlesResponse` (docs/spiffe.md §1.2).
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeX509BundlesResponse(buf: Uint8Array): X509BundlesResponse {
  const crl: Uint8Array[] = [];
  const bundles = new Map<string, Uint8Array>();
  walkFields(buf, (field, r) => {
    if (field === 1) crl.push(r.bytes());
    else if (field === 2) {
      const [key, value] = decodeMapEntry(r.view());
      bundles.set(key, value);
    } else return false;
    return true;
  });
  return { crl, bundles };
}

/**
 * Decodes a `JWTSVIDResponse`.
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeJwtSvidResponse(buf: Uint8Array): JwtSvidResponse {
  const svids: JwtSvidMessage[] = [];
  walkFields(buf, (field, r) => {
    if (field !== 1) return false;
    let spiffeId = '';
    let svid = '';
    let hint = '';
    walkFields(r.view(), (f, rr) => {
      if (f === 1) spiffeId = rr.string();
      else if (f === 2) svid = rr.string();
      else if (f === 3) hint = rr.string();
      else return false;
      return true;
    });
    svids.push({ spiffeId, svid, hint });
    return true;
  });
  return { svids };
}

/**
 * Decodes a `JWTBundlesResponse`.
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeJwtBundlesResponse(buf: Uint8Array): JwtBundlesResponse {
  const bundles = new Map<string, Uint8Array>();
  walkFields(buf, (field, r) => {
    if (field !== 1) return false;
    const [key, value] = decodeMapEntry(r.view());
    bundles.set(key, value);
    return true;
  });
  return { bundles };
}

/** Encodes a `JWTSVIDRequest`. */
export function encodeJwtSvidRequest(message: JwtSvidRequest): Uint8Array {
  const w = new ProtoWriter();
  for (const a of message.audience) w.string(1, a, true);
  return w.string(2, message.spiffeId).finish();
}
