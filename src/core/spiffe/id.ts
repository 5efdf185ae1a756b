/**
 * SPIFFE IDs and trust domains (docs/spiffe.md §3), parsed byte by byte.
 *
 * A SPIFFE ID is `spiffe://<trust-domain><path>`. The parser walks the string one code unit at a
 * time and accepts only the exact grammar of the SPIFFE standard as go-spiffe enforces it: lower
 * case scheme and trust domain, no port, userinfo, percent-encoding, query or fragment, no empty,
 * `.` or `..` path segments, no trailing slash. It never goes through WHATWG `new URL()`, which
 * rewrites `/a/../b` to `/b`, keeps host case and accepts ports. Upper case is rejected, never
 * normalised: peer certificates are compared byte for byte after this strict parse (rule 14).
 *
 * Length limits (ID ≤ 2048 bytes, trust domain ≤ 255 bytes) are our hardening (rule 12).
 * Error messages follow go-spiffe's wording and never echo the rejected input.
 */
import { SpikeError } from '../errors.ts';

/** Longest accepted SPIFFE ID, in bytes (docs/spiffe.md §3 rule 12). */
const MAX_SPIFFE_ID_LENGTH = 2048;
/** Longest accepted trust domain name, in bytes (docs/spiffe.md §3 rule 12). */
const MAX_TRUST_DOMAIN_LENGTH = 255;

const SCHEME = 'spiffe://';

/** A strictly parsed SPIFFE ID. Two IDs are equal when their `toString()` values are equal. */
export interface SpiffeId {
  /** The trust domain name, e.g. `example.org` (never with the `spiffe://` prefix). */
  readonly trustDomain: string;
  /** The path, `''` for the trust domain's own ID, otherwise starting with `/`. */
  readonly path: string;
  /** `spiffe://<trustDomain><path>`. */
  toString(): string;
}

// go-spiffe's wording, so operators can match errors across implementations.
const ERR = {
  empty: 'cannot be empty',
  scheme: 'scheme is missing or invalid',
  tdMissing: 'trust domain is missing',
  tdChars:
    'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  pathChars:
    'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
  leadingSlash: 'path must have a leading slash',
  emptySegment: 'path cannot contain empty segments',
  dotSegment: 'path cannot contain dot segments',
  trailingSlash: 'path cannot have a trailing slash',
  idTooLong: `SPIFFE ID cannot be longer than ${MAX_SPIFFE_ID_LENGTH} bytes`,
  tdTooLong: `trust domain cannot be longer than ${MAX_TRUST_DOMAIN_LENGTH} bytes`,
} as const;

/** `[a-z0-9._-]`, by char code: no locale, no Unicode case folding. */
function isTrustDomainChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || // .
    c === 0x2d || // -
    c === 0x5f // _
  );
}

/** `[a-zA-Z0-9._-]`. */
function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);
}

/** Returns the error text for an invalid trust domain name, or `undefined` if it is valid. */
function trustDomainError(td: string): string | undefined {
  if (td.length === 0) return ERR.tdMissing;
  // Only ASCII passes the character check, so the UTF-16 length is the byte length here.
  for (let i = 0; i < td.length; i++) {
    if (!isTrustDomainChar(td.charCodeAt(i))) return ERR.tdChars;
  }
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) return ERR.tdTooLong;
  return undefined;
}

/** Returns the error text for an invalid path (`''` is valid), or `undefined` if it is valid. */
function pathError(path: string): string | undefined {
  if (path.length === 0) return undefined;
  if (path.charCodeAt(0) !== 0x2f) return ERR.leadingSlash;
  // Walk the segments; each starts right after a '/'.
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const atEnd = i === path.length;
    const c = atEnd ? 0x2f : path.charCodeAt(i);
    if (c === 0x2f) {
      const len = i - segStart;
      if (len === 0) return atEnd ? ERR.trailingSlash : ERR.emptySegment;
      if (len <= 2 && path.slice(segStart, i) === '.'.repeat(len)) return ERR.dotSegment;
      segStart = i + 1;
      continue;
    }
    if (!isPathChar(c)) return ERR.pathChars;
  }
  return undefined;
}

function makeId(trustDomain: string, path: string): SpiffeId {
  const value = `${SCHEME}${trustDomain}${path}`;
  return Object.freeze({ trustDomain, path, toString: () => value });
}

function invalidId(reason: string): SpikeError {
  return new SpikeError('spiffe_invalid_id', reason);
}

/**
 * Parses a SPIFFE ID strictly (docs/spiffe.md §3 rules 1–12).
 *
 * @throws SpikeError `spiffe_invalid_id` with go-spiffe's message (e.g. `path cannot contain dot
 *   segments`); the message never contains the input.
 */
export function parseSpiffeId(value: string): SpiffeId {
  if (typeof value !== 'string') throw new TypeError('SPIFFE ID must be a string');
  if (value.length === 0) throw invalidId(ERR.empty);
  // A string longer than the limit in UTF-16 units is longer in UTF-8 bytes too; shorter strings
  // with non-ASCII characters fail the character rules below.
  if (value.length > MAX_SPIFFE_ID_LENGTH) throw invalidId(ERR.idTooLong);
  if (!value.startsWith(SCHEME)) throw invalidId(ERR.scheme);
  const rest = value.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdError = trustDomainError(trustDomain);
  if (tdError !== undefined) throw invalidId(tdError);
  const pError = pathError(path);
  if (pError !== undefined) throw invalidId(pError);
  return makeId(trustDomain, path);
}

/** True when `value` is a valid SPIFFE ID (docs/spiffe.md §3). */
export function isSpiffeId(value: string): boolean {
  try {
    parseSpiffeId(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses a trust domain given as a bare name (`example.org`) or as the trust domain's own ID
 * (`spiffe://example.org`), the two forms go-spiffe accepts (docs/spiffe.md §8 row 22). Anything
 * else, including an ID with a path, is rejected.
 *
 * @throws SpikeError `spiffe_invalid_trust_domain`
 */
export function parseTrustDomain(value: string): string {
  if (typeof value !== 'string') throw new TypeError('trust domain must be a string');
  const name = value.startsWith(SCHEME) ? value.slice(SCHEME.length) : value;
  if (name.includes('/')) {
    throw new SpikeError('spiffe_invalid_trust_domain', 'trust domain must not have a path');
  }
  const error = trustDomainError(name);
  if (error !== undefined) throw new SpikeError('spiffe_invalid_trust_domain', error);
  return name;
}

/**
 * Builds `spiffe://<trustDomain><path>` after validating both parts (docs/spiffe.md §3).
 * `trustDomain` is a bare name; `path` is `''` or starts with `/`.
 *
 * @throws SpikeError `spiffe_invalid_trust_domain` or `spiffe_invalid_id`
 */
export function formatSpiffeId(trustDomain: string, path: string): string {
  const tdError = trustDomainError(trustDomain);
  if (tdError !== undefined) throw new SpikeError('spiffe_invalid_trust_domain', tdError);
  const pError = pathError(path);
  if (pError !== undefined) throw invalidId(pError);
  const value = `${SCHEME}${trustDomain}${path}`;
  if (value.length > MAX_SPIFFE_ID_LENGTH) throw invalidId(ERR.idTooLong);
  return value;
}

function toId(value: SpiffeId | string): SpiffeId | undefined {
  if (typeof value !== 'string') return parseSpiffeIdOrUndefined(value.toString());
  return parseSpiffeIdOrUndefined(value);
}

function parseSpiffeIdOrUndefined(value: string): SpiffeId | undefined {
  try {
    return parseSpiffeId(value);
  } catch {
    return undefined;
  }
}

/**
 * Byte equality after strict parsing (docs/spiffe.md §3 rule 14). An invalid ID equals nothing,
 * not even itself.
 */
export function spiffeIdEquals(a: SpiffeId | string, b: SpiffeId | string): boolean {
  const x = toId(a);
  const y = toId(b);
  return x !== undefined && y !== undefined && x.toString() === y.toString();
}

/**
 * True when `id` (strictly parsed) belongs to `trustDomain` (a bare name or `spiffe://name`):
 * trust-domain equality (docs/spiffe.md §3 rule 14). Invalid input is never a member.
 */
export function isMemberOf(id: SpiffeId | string, trustDomain: string): boolean {
  const parsed = toId(id);
  if (parsed === undefined) return false;
  let td: string;
  try {
    td = parseTrustDomain(trustDomain);
  } catch {
    return false;
  }
  return parsed.trustDomain === td;
}
