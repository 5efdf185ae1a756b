/**
 * Protobuf wire primitives for the Workload API messages (docs/spiffe.md §1.2): a reader that
 * walks tags and skips what it does not know, and a writer that emits fields in field-number
 * order, omitting empty values as proto3 does. Only length-delimited fields occur in these
 * messages, so both are small. Decoder rules (§1.2; §8 rows 39–40):
 *
 * - unknown fields of wire types 0, 1, 2 and 5 are skipped, also a known field number arriving
 *   with an unexpected wire type (protobuf's own rule);
 * - the last value wins for a singular field seen twice; a present-but-empty string or bytes
 *   field equals an absent one;
 * - varints longer than 10 bytes (or overflowing 64 bits), lengths running past the end, wire
 *   types 3, 4, 6 and 7, field number 0, invalid UTF-8 in a string and map entries without a key
 *   are errors: the whole message is rejected.
 *
 * The client's messages are in ./proto.ts; the server side (the development issuer, the test
 * double) builds on these primitives too.
 */
import { concatBytes, utf8 } from '../bytes.ts';
import { SpikeError } from '../errors.ts';

/** Protobuf wire types. */
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function invalid(reason: string): SpikeError {
  return new SpikeError('workload_api_error', `invalid protobuf message: ${reason}`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A cursor over one message's bytes. */
class ProtoReader {
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
export function walkFields(
  buf: Uint8Array,
  onLen: (field: number, r: ProtoReader) => boolean,
): void {
  const r = new ProtoReader(buf);
  while (!r.done) {
    const { field, wire } = r.tag();
    if (wire === WIRE_LEN && onLen(field, r)) continue;
    r.skip(wire);
  }
}

/** Decodes a `map<string, bytes>` entry; a missing key is an error, a missing value is empty. */
export function decodeMapEntry(buf: Uint8Array): [string, Uint8Array] {
  let key: string | undefined;
  let value: Uint8Array = new Uint8Array(0);
  walkFields(buf, (field, r) => {
    if (field === 1) key = r.string();
    else if (field === 2) value = r.bytes();
    else return false;
    return true;
  });
  // An entry whose key field is absent (or empty, which proto3 cannot tell apart) is rejected.
  if (key === undefined || key.length === 0) throw invalid('map entry without a key');
  return [key, value];
}

/** Accumulates encoded fields. */
export class ProtoWriter {
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
      const entry = new ProtoWriter().string(1, key).len(2, entries.get(key)!).finish();
      this.len(field, entry, true);
    }
    return this;
  }

  finish(): Uint8Array {
    return concatBytes(...this.parts);
  }
}
