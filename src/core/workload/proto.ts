/**
 * Hand-written protobuf codec for the Workload API messages we use (spec/spiffe.md §1.2).
 *
 * Only length-delimited fields occur in these messages, so the codec is small: a reader that
 * walks tags and skips what it does not know, and a writer that emits fields in field-number
 * order, omitting empty values as proto3 does. Decoder rules (§1.2, rows 39–40):
 *
 * - unknown fields of wire types 0, 1, 2 and 5 are skipped, also a known field number arriving
 *   with an unexpected wire type (protobuf's own rule);
 * - the last value wins for a singular field seen twice; a present-but-empty string or bytes
 *   field equals an absent one;
 * - varints longer than 10 bytes (or overflowing 64 bits), lengths running past the end, wire
 *   types 3, 4, 6 and 7, field number 0, invalid UTF-8 in a string and map entries without a key
 *   are errors: the whole message is rejected.
 *
 * Decoded bytes are copies, never views into the received buffer.
 */
import { concatBytes, utf8 } from '../bytes.ts';
import { SpikeError } from '../errors.ts';

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

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function invalid(reason: string): SpikeError {
  return new SpikeError('workload_api_error', `invalid protobuf message: ${reason}`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A cursor over one message's bytes. */
class Reader {
  pos = 0;
  private readonly buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Reads a varint; only its magnitude up to 2^53 matters to us (tags and lengths). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw invalid('truncated varint');
      const b = this.buf[this.pos++]!;
      // The 10th byte may only carry the 64th bit.
      if (i === 9 && b > 1) throw invalid('varint overflows 64 bits');
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw invalid('varint longer than 10 bytes');
  }

  /** Reads a tag: returns field number and wire type. */
  tag(): { field: number; wire: number } {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0 || field > 0x1fffffff) throw invalid('invalid field number');
    if (wire === 3 || wire === 4) throw invalid('groups (wire types 3 and 4) are not supported');
    if (wire === 6 || wire === 7) throw invalid(`invalid wire type ${wire}`);
    return { field, wire };
  }

  /** Reads a length-delimited payload as a view. */
  view(): Uint8Array {
    const length = this.varint();
    if (length > this.buf.length - this.pos) throw invalid('length runs past the end');
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  bytes(): Uint8Array {
    return this.view().slice();
  }

  string(): string {
    const view = this.view();
    try {
      return strictUtf8.decode(view);
    } catch {
      throw invalid('string field is not valid UTF-8');
    }
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.view();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        throw invalid(`invalid wire type ${wire}`);
    }
  }

  private advance(n: number): void {
    if (n > this.buf.length - this.pos) throw invalid('fixed-width field runs past the end');
    this.pos += n;
  }
}

/**
 * Walks the fields of `buf`, calling `onLen` for each length-delimited field and skipping the rest.
 * `onLen` returns false for field numbers it does not know (the payload is then skipped).
 */
function walk(buf: Uint8Array, onLen: (field: number, r: Reader) => boolean): void {
  const r = new Reader(buf);
  while (!r.done) {
    const { field, wire } = r.tag();
    if (wire === WIRE_LEN && onLen(field, r)) continue;
    r.skip(wire);
  }
}

/** Decodes a `map<string, bytes>` entry; a missing key is an error, a missing value is empty. */
function mapEntry(buf: Uint8Array): [string, Uint8Array] {
  let key: string | undefined;
  let value: Uint8Array = new Uint8Array(0);
  walk(buf, (field, r) => {
    if (field === 1) key = r.string();
    else if (field === 2) value = r.bytes();
    else return false;
    return true;
  });
  // An entry whose key field is absent (or empty, which proto3 cannot tell apart) is rejected.
  if (key === undefined || key.length === 0) throw invalid('map entry without a key');
  return [key, value];
}

function decodeX509Svid(buf: Uint8Array): X509SvidMessage {
  let spiffeId = '';
  let x509Svid: Uint8Array = new Uint8Array(0);
  let x509SvidKey: Uint8Array = new Uint8Array(0);
  let bundle: Uint8Array = new Uint8Array(0);
  let hint = '';
  walk(buf, (field, r) => {
    switch (field) {
      case 1:
        spiffeId = r.string();
        return true;
      case 2:
        x509Svid = r.bytes();
        return true;
      case 3:
        x509SvidKey = r.bytes();
        return true;
      case 4:
        bundle = r.bytes();
        return true;
      case 5:
        hint = r.string();
        return true;
      default:
        return false;
    }
  });
  return { spiffeId, x509Svid, x509SvidKey, bundle, hint };
}

/**
 * Decodes an `X509SVIDResponse` (spec/spiffe.md §1.2). Semantic checks (at least one SVID,
 * certificates) belong to `toX509Context`.
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf (row 39).
 */
export function decodeX509SvidResponse(buf: Uint8Array): X509SvidResponse {
  const svids: X509SvidMessage[] = [];
  const crl: Uint8Array[] = [];
  const federatedBundles = new Map<string, Uint8Array>();
  walk(buf, (field, r) => {
    if (field === 1) svids.push(decodeX509Svid(r.view()));
    else if (field === 2) crl.push(r.bytes());
    else if (field === 3) {
      const [key, value] = mapEntry(r.view());
      federatedBundles.set(key, value);
    } else return false;
    return true;
  });
  return { svids, crl, federatedBundles };
}

/**
 * Decodes an `X509BundlesResponse` (spec/spiffe.md §1.2).
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeX509BundlesResponse(buf: Uint8Array): X509BundlesResponse {
  const crl: Uint8Array[] = [];
  const bundles = new Map<string, Uint8Array>();
  walk(buf, (field, r) => {
    if (field === 1) crl.push(r.bytes());
    else if (field === 2) {
      const [key, value] = mapEntry(r.view());
      bundles.set(key, value);
    } else return false;
    return true;
  });
  return { crl, bundles };
}

/**
 * Decodes a `JWTSVIDRequest` (server side).
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeJwtSvidRequest(buf: Uint8Array): JwtSvidRequest {
  const audience: string[] = [];
  let spiffeId = '';
  walk(buf, (field, r) => {
    if (field === 1) audience.push(r.string());
    else if (field === 2) spiffeId = r.string();
    else return false;
    return true;
  });
  return { audience, spiffeId };
}

/**
 * Decodes a `JWTSVIDResponse`.
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeJwtSvidResponse(buf: Uint8Array): JwtSvidResponse {
  const svids: JwtSvidMessage[] = [];
  walk(buf, (field, r) => {
    if (field !== 1) return false;
    let spiffeId = '';
    let svid = '';
    let hint = '';
    walk(r.view(), (f, rr) => {
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
  walk(buf, (field, r) => {
    if (field !== 1) return false;
    const [key, value] = mapEntry(r.view());
    bundles.set(key, value);
    return true;
  });
  return { bundles };
}

/** Accumulates encoded fields. */
class Writer {
  private readonly parts: Uint8Array[] = [];

  private varint(value: number): void {
    const out: number[] = [];
    while (value >= 0x80) {
      out.push((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    out.push(value);
    this.parts.push(Uint8Array.from(out));
  }

  /** A length-delimited field; `always` writes it even when empty (repeated and map entries). */
  len(field: number, payload: Uint8Array, always = false): this {
    if (payload.length === 0 && !always) return this;
    this.varint(field * 8 + WIRE_LEN);
    this.varint(payload.length);
    this.parts.push(payload);
    return this;
  }

  string(field: number, value: string, always = false): this {
    return this.len(field, utf8.encode(value), always);
  }

  /** A `map<string, bytes>` field, entries in key order (deterministic output). */
  map(field: number, entries: ReadonlyMap<string, Uint8Array>): this {
    for (const key of [...entries.keys()].sort()) {
      const entry = new Writer().string(1, key).len(2, entries.get(key)!).finish();
      this.len(field, entry, true);
    }
    return this;
  }

  finish(): Uint8Array {
    return concatBytes(...this.parts);
  }
}

/** Encodes an `X509SVIDResponse` (used by the development issuer). */
export function encodeX509SvidResponse(message: X509SvidResponse): Uint8Array {
  const w = new Writer();
  for (const s of message.svids) {
    const svid = new Writer()
      .string(1, s.spiffeId)
      .len(2, s.x509Svid)
      .len(3, s.x509SvidKey)
      .len(4, s.bundle)
      .string(5, s.hint)
      .finish();
    w.len(1, svid, true);
  }
  for (const c of message.crl) w.len(2, c, true);
  return w.map(3, message.federatedBundles).finish();
}

/** Encodes an `X509BundlesResponse` (used by the development issuer). */
export function encodeX509BundlesResponse(message: X509BundlesResponse): Uint8Array {
  const w = new Writer();
  for (const c of message.crl) w.len(1, c, true);
  return w.map(2, message.bundles).finish();
}

/** Encodes a `JWTSVIDRequest`. */
export function encodeJwtSvidRequest(message: JwtSvidRequest): Uint8Array {
  const w = new Writer();
  for (const a of message.audience) w.string(1, a, true);
  return w.string(2, message.spiffeId).finish();
}

/** Encodes a `JWTSVIDResponse`. */
export function encodeJwtSvidResponse(message: JwtSvidResponse): Uint8Array {
  const w = new Writer();
  for (const s of message.svids) {
    w.len(1, new Writer().string(1, s.spiffeId).string(2, s.svid).string(3, s.hint).finish(), true);
  }
  return w.finish();
}

/** Encodes a `JWTBundlesResponse`. */
export function encodeJwtBundlesResponse(message: JwtBundlesResponse): Uint8Array {
  return new Writer().map(1, message.bundles).finish();
}
