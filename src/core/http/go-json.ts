/**
 * Request bodies decoded the way Go's `encoding/json` decodes them into a struct
 * (docs/spike-api.md §3 "Request JSON"), so that every SPIKE client sees the same answers from
 * us as from the Go Nexus.
 *
 * What differs from `JSON.parse`, and why it matters on the wire:
 * - keys match struct fields case-insensitively (Unicode simple folding, so `ſ` matches `s` and
 *   the Kelvin sign matches `k`); unknown keys are ignored; when a field appears twice the later
 *   value wins, in document order;
 * - the top-level value must be an object or `null` (`null` leaves every field at its zero value);
 *   an empty body is a syntax error;
 * - a JSON `null` leaves a string or integer field unchanged and resets a map, slice or bytes
 *   field to nil; a second object for a map field merges into the first;
 * - integer fields accept only integer literals in range (no fraction, exponent or string);
 * - bytes are standard base64 with padding (CR and LF ignored), or an array of 0..255;
 * - lone UTF-16 surrogate escapes decode to U+FFFD, a byte-order mark is a syntax error, and
 *   nesting deeper than 10,000 is refused.
 *
 * Every failure is `SpikeError('api_bad_request')` naming at most the schema field, never the
 * rejected value. Portable: no runtime APIs.
 */
import { fromBase64 } from '../bytes.ts';
import { isSpikeError, SpikeError } from '../errors.ts';
import { type Node, Parser, syntaxError } from './go-json-parser.ts';

/** Go field types used by the SPIKE request structs. */
export type GoJsonKind =
  | 'string'
  | 'int'
  | 'uint8'
  | 'bytes'
  | 'stringMap'
  | 'intSlice'
  | 'stringSlice';

/** A request struct: field name (its JSON tag) → Go type. */
export type GoJsonSchema = Readonly<Record<string, GoJsonKind>>;

/** The TypeScript value of one Go field kind; nil maps, slices and bytes are `null`. */
type GoJsonValue<K extends GoJsonKind> = K extends 'string'
  ? string
  : K extends 'int' | 'uint8'
    ? number
    : K extends 'bytes'
      ? Uint8Array | null
      : K extends 'stringMap'
        ? Record<string, string> | null
        : K extends 'intSlice'
          ? number[] | null
          : K extends 'stringSlice'
            ? string[] | null
            : never;

/** The decoded struct: every schema field present, zero-valued when absent. */
export type GoJsonResult<S extends GoJsonSchema> = { -readonly [F in keyof S]: GoJsonValue<S[F]> };

function typeError(field: string): SpikeError {
  return new SpikeError('api_bad_request', `request field "${field}" has the wrong type`);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_LITERAL = /^-?[0-9]+$/;

/**
 * Folds a key the way `bytes.EqualFold` compares it for our (ASCII) field names: ASCII letters to
 * lower case, U+017F (long s) to `s`, U+212A (Kelvin sign) to `k`. Other non-ASCII characters stay
 * as they are, so they never equal an ASCII field name.
 */
function foldKey(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) out += String.fromCharCode(c + 0x20);
    else if (c === 0x17f) out += 's';
    else if (c === 0x212a) out += 'k';
    else out += key[i];
  }
  return out;
}

function toInt(node: Node, field: string, kind: 'int' | 'uint8'): number {
  if (node.t !== 'number' || !INTEGER_LITERAL.test(node.raw)) throw typeError(field);
  const n = BigInt(node.raw);
  if (kind === 'uint8') {
    // strconv.ParseUint rejects any sign, even on zero.
    if (node.raw.startsWith('-') || n > 255n) throw typeError(field);
  } else if (n < INT64_MIN || n > INT64_MAX) {
    throw typeError(field);
  }
  // Beyond 2^53 precision is lost; such numbers name no version that can exist.
  return Number(n);
}

function toBytes(node: Node, field: string): Uint8Array {
  if (node.t === 'string') {
    try {
      return fromBase64(node.v.replace(/[\r\n]/g, ''));
    } catch {
      throw typeError(field);
    }
  }
  if (node.t === 'array') {
    const out = new Uint8Array(node.items.length);
    node.items.forEach((item, i) => {
      out[i] = item.t === 'null' ? 0 : toInt(item, field, 'uint8');
    });
    return out;
  }
  throw typeError(field);
}

function assign(
  target: Record<string, unknown>,
  field: string,
  kind: GoJsonKind,
  node: Node,
): void {
  if (node.t === 'null') {
    // Go: null is a no-op for strings and numbers, and sets maps, slices and []byte to nil.
    if (kind !== 'string' && kind !== 'int' && kind !== 'uint8') target[field] = null;
    return;
  }
  switch (kind) {
    case 'string':
      if (node.t !== 'string') throw typeError(field);
      target[field] = node.v;
      return;
    case 'int':
    case 'uint8':
      target[field] = toInt(node, field, kind);
      return;
    case 'bytes':
      target[field] = toBytes(node, field);
      return;
    case 'stringMap': {
      if (node.t !== 'object') throw typeError(field);
      // A second object for the same field merges into the first map, as Go does.
      const map = (target[field] as Record<string, string> | null) ?? Object.create(null);
      for (const [key, value] of node.entries) {
        if (value.t === 'null') map[key] = '';
        else if (value.t === 'string') map[key] = value.v;
        else throw typeError(field);
      }
      target[field] = map;
      return;
    }
    case 'intSlice':
      if (node.t !== 'array') throw typeError(field);
      target[field] = node.items.map((item) => (item.t === 'null' ? 0 : toInt(item, field, 'int')));
      return;
    case 'stringSlice':
      if (node.t !== 'array') throw typeError(field);
      target[field] = node.items.map((item) => {
        if (item.t === 'null') return '';
        if (item.t !== 'string') throw typeError(field);
        return item.v;
      });
      return;
  }
}

// Stateless for whole-input `decode` calls, so one instance serves every request.
const UTF8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Folded key → field name, per schema: schemas are long-lived constants, so fold them once. */
const foldedFields = new WeakMap<GoJsonSchema, ReadonlyMap<string, string>>();

function foldedFieldsOf(schema: GoJsonSchema): ReadonlyMap<string, string> {
  let byFolded = foldedFields.get(schema);
  if (byFolded === undefined) {
    byFolded = new Map(Object.keys(schema).map((field) => [foldKey(field), field]));
    foldedFields.set(schema, byFolded);
  }
  return byFolded;
}

function zeroOf(kind: GoJsonKind): unknown {
  switch (kind) {
    case 'string':
      return '';
    case 'int':
    case 'uint8':
      return 0;
    default:
      return null;
  }
}

/**
 * Decodes a request body into `schema` with Go `encoding/json` semantics (module header).
 *
 * `input` is the raw body; bytes are decoded as UTF-8 with invalid sequences replaced by U+FFFD
 * (Go does the same inside strings; outside strings they are syntax errors either way).
 *
 * @throws SpikeError `api_bad_request` for invalid JSON, a top-level value that is not an object
 *   or `null`, or a field of the wrong type.
 */
export function decodeGoJson<S extends GoJsonSchema>(
  input: Uint8Array | string,
  schema: S,
): GoJsonResult<S> {
  const text = typeof input === 'string' ? input : UTF8.decode(input);
  let root: Node;
  try {
    root = new Parser(text).parseDocument();
  } catch (error) {
    // The parser throws only SpikeErrors of its own; anything else is the engine's stack
    // overflow on deep nesting, a bad request too, never a 500.
    if (isSpikeError(error)) throw error;
    throw syntaxError();
  }
  const out: Record<string, unknown> = {};
  for (const [field, kind] of Object.entries(schema)) out[field] = zeroOf(kind);
  if (root.t === 'null') return out as GoJsonResult<S>;
  if (root.t !== 'object') {
    throw new SpikeError('api_bad_request', 'request body must be a JSON object');
  }
  const byFolded = foldedFieldsOf(schema);
  for (const [key, node] of root.entries) {
    const field = byFolded.get(foldKey(key));
    if (field === undefined) continue;
    assign(out, field, schema[field]!, node);
  }
  return out as GoJsonResult<S>;
}
