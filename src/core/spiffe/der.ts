/**
 * A strict DER TLV walker for concatenated certificates (docs/spiffe.md §4 "Split", §8 row 17).
 *
 * The Workload API sends `x509_svid` and `bundle` as certificates concatenated in DER. Runtime
 * parsers silently read only the first certificate of such a buffer, so we split it ourselves and
 * accept only canonical framing: every element is a constructed SEQUENCE (tag `0x30`) with a
 * definite, minimally encoded length, no element is empty, nothing is truncated and nothing
 * trails. PEM, BER indefinite lengths and anything else are rejected before any X.509 parser sees
 * the bytes.
 */
import { SpikeError } from '../errors.ts';

/** One DER element located inside a buffer. */
export interface DerElement {
  /** The identifier octet (single-byte tags only). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the last content octet. */
  readonly end: number;
}

/** Lengths above this are never legitimate here and would overflow 32-bit arithmetic. */
const MAX_LENGTH_OCTETS = 4;

function fail(message: string): never {
  throw new SpikeError('svid_invalid', message);
}

/**
 * Reads the DER element starting at `offset` (within `bytes[0..limit)`), checking that its length
 * is definite, minimally encoded and within bounds.
 *
 * @throws SpikeError `svid_invalid`
 */
export function readDerElement(
  bytes: Uint8Array,
  offset: number,
  limit: number = bytes.length,
): DerElement {
  if (offset >= limit) fail('DER element is truncated');
  const tag = bytes[offset]!;
  // High-tag-number form is never used by the structures we read.
  if ((tag & 0x1f) === 0x1f) fail('DER element uses an unsupported tag');
  if (offset + 1 >= limit) fail('DER element is truncated');
  const first = bytes[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else if (first === 0x80) {
    fail('DER element has an indefinite length');
  } else {
    const n = first & 0x7f;
    if (n > MAX_LENGTH_OCTETS) fail('DER element length is too large');
    if (offset + 2 + n > limit) fail('DER element is truncated');
    if (bytes[offset + 2] === 0) fail('DER element length is not minimally encoded');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[offset + 2 + i]!;
    if (length < 0x80) fail('DER element length is not minimally encoded');
    contentStart = offset + 2 + n;
  }
  const end = contentStart + length;
  if (end > limit) fail('DER element is truncated');
  return { tag, start: offset, contentStart, end };
}

/**
 * Splits concatenated DER certificates (docs/spiffe.md §4, §8 rows 16–17). Empty input gives an
 * empty list (an empty bundle has zero roots, row 21). Each returned array is a copy.
 *
 * @throws SpikeError `svid_invalid` on PEM, non-SEQUENCE elements, indefinite or non-minimal
 *   lengths, zero-length elements, truncation or trailing bytes.
 */
export function splitDerCertificates(bytes: Uint8Array): Uint8Array[] {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('expected a Uint8Array');
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes[offset] !== 0x30) {
      fail(
        bytes[offset] === 0x2d
          ? 'certificates must be DER, not PEM'
          : 'expected a DER SEQUENCE for each certificate',
      );
    }
    const el = readDerElement(bytes, offset);
    if (el.end === el.contentStart) fail('DER certificate element is empty');
    // `new Uint8Array(view)` copies even when `bytes` is a Node Buffer (whose slice shares).
    out.push(new Uint8Array(bytes.subarray(el.start, el.end)));
    offset = el.end;
  }
  return out;
}
