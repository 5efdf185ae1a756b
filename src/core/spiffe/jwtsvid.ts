/**
 * JWT-SVID validation (docs/spiffe.md §6; hostile rows 44–46 of §8), portable: Web APIs and `jose`.
 *
 * Its caller is Nexus's JWT-SVID authentication (src/nexus/jwt-auth.ts). Its suite,
 * tests/portable/jwtsvid.suite.ts, runs under Bun (tests/jwtsvid.test.ts) and Deno.
 *
 * A JWT-SVID is accepted only when all of this holds:
 *
 * - it is a JWS in compact serialisation (three base64url segments, non-empty signature);
 * - the protected header holds `alg` (one of RS/ES/PS 256/384/512), a non-empty `kid`, at most a
 *   `typ` of `JWT` or `JOSE`, and nothing else: `crit`, `jku`, `x5u`, `jwk`, `x5c`, `b64` and every
 *   other parameter are refused, so no header can steer key selection or payload encoding;
 * - `sub` is a SPIFFE ID under the strict §3 parser; it is read **unverified** only to choose the
 *   JWT bundle of its trust domain (no bundle → untrusted), then verified along with the rest;
 * - the signature verifies under a bundle key with the header's `kid`;
 * - `aud` holds at least one value and contains our audience; `exp` is present and not in the
 *   past; `nbf` and `iat` are honoured when present; all with a bounded leeway (default 30 s,
 *   at most 60 s, go-jose's default being 1 min).
 *
 * `jose` pitfalls handled here (§6): `jwtVerify` without `requiredClaims` accepts a token with no
 * `exp`; `createLocalJWKSet` skips keys whose `use` is anything but `sig`, so SPIFFE federation
 * keys (`use: "jwt-svid"`) would never match: {@link parseJwtBundle} strips `use`.
 *
 * Errors: `svid_invalid` for malformed or rule-breaking tokens and bundles, `svid_untrusted` for a
 * missing bundle or authority, a bad signature or a validity-window failure. Messages follow
 * go-spiffe's `jwtsvid` wording and never contain the token or any part of it.
 */
import {
  createLocalJWKSet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { fromBase64, utf8 } from '../bytes.ts';
import { isSpikeError, SpikeError } from '../errors.ts';
import { parseSpiffeId } from './id.ts';

/** The JWS algorithms a JWT-SVID may use (docs/spiffe.md §6); everything else is refused. */
const JWT_SVID_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
]);

/** Default leeway for `exp`, `nbf` and `iat`, in seconds (docs/spiffe.md §6). */
const DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS = 30;
/** Largest accepted leeway, in seconds (docs/spiffe.md §6: 30–60 s). */
const MAX_JWT_CLOCK_TOLERANCE_SECONDS = 60;

/**
 * The JWT authorities of one trust domain: public verification keys, each with a `kid`, without
 * `use` (see the module comment). Built by {@link parseJwtBundle}; treat it as immutable.
 */
interface JwtBundle {
  readonly keys: readonly JWK[];
}

/** JWT bundles: trust domain name (`example.org`, never `spiffe://…`) → bundle. */
export type JwtBundles = ReadonlyMap<string, JwtBundle>;

/** A validated JWT-SVID. */
export interface JwtSvid {
  /** The SPIFFE ID from `sub`. */
  readonly id: string;
  /** The trust domain of `id`. */
  readonly trustDomain: string;
  /** The `aud` claim as a list (a single string becomes a one-element list). */
  readonly audience: string[];
  /** `exp` as a date. */
  readonly expiry: Date;
  /** The verified claims set, as signed. */
  readonly claims: Record<string, unknown>;
}

/** Options for {@link validateJwtSvid}. */
export interface ValidateJwtSvidOptions {
  /** Our audience: the token's `aud` must contain it. */
  audience: string;
  /** The time to validate at; defaults to the current time. */
  now?: Date;
  /** Leeway for `exp`, `nbf` and `iat` in seconds, 0–60; defaults to 30. */
  clockToleranceSeconds?: number;
}

const ALLOWED_HEADER = new Set(['alg', 'kid', 'typ']);
const JWT_KEY_USES = new Set([undefined, 'sig', 'jwt-svid']);
const JWT_KEY_TYPES = new Set(['RSA', 'EC']);
// Private or symmetric key members: a bundle holds public keys only.
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const B64URL = /^[A-Za-z0-9_-]+$/;

function invalid(message: string): SpikeError {
  return new SpikeError('svid_invalid', message);
}

function untrusted(message: string): SpikeError {
  return new SpikeError('svid_untrusted', message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses a JWKS (the Workload API's `FetchJWTBundles` value, or a SPIFFE federation bundle) into a
 * {@link JwtBundle} (docs/spiffe.md §6, §8 row 46).
 *
 * Keys with `use` absent, `sig` or `jwt-svid` are JWT authorities; `x509-svid` keys (X.509 CAs)
 * and any other `use` are dropped, and so are key types no JWT-SVID algorithm can use (only RSA
 * and EC remain). `use` is removed from the kept keys, because `jose`'s `createLocalJWKSet`
 * ignores keys whose `use` is not `sig`. Of keys sharing a `kid`, the last one stays (as in
 * go-spiffe). An empty bundle is valid and verifies nothing.
 *
 * @throws SpikeError `svid_invalid` if the input is not a JWKS, a JWT key has no `kid`, or a key
 *   carries private or symmetric key material.
 */
export function parseJwtBundle(jwksJson: string | Uint8Array): JwtBundle {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof jwksJson === 'string' ? jwksJson : utf8.decode(jwksJson));
  } catch {
    throw invalid('unable to parse JWKS: not JSON');
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.keys)) {
    throw invalid('unable to parse JWKS: missing keys array');
  }
  // go-spiffe keeps one authority per key id, the last one listed; so do we.
  const byKid = new Map<string, JWK>();
  for (const entry of parsed.keys as unknown[]) {
    if (!isRecord(entry)) throw invalid('unable to parse JWKS: key is not an object');
    const { use, ...rest } = entry;
    if (!JWT_KEY_USES.has(use as string | undefined)) continue;
    if (typeof rest.kid !== 'string' || rest.kid.length === 0) {
      throw invalid('unable to parse JWKS: JWT authority missing key id');
    }
    if (SECRET_MEMBERS.some((member) => Object.hasOwn(rest, member))) {
      throw invalid('unable to parse JWKS: JWT authority must be a public key');
    }
    if (typeof rest.kty !== 'string' || !JWT_KEY_TYPES.has(rest.kty)) continue;
    byKid.delete(rest.kid);
    byKid.set(rest.kid, Object.freeze(rest) as JWK);
  }
  return Object.freeze({ keys: Object.freeze([...byKid.values()]) });
}

/**
 * Parses every entry of a `FetchJWTBundles` result (trust domain → JWKS bytes).
 *
 * @throws SpikeError `svid_invalid` for the first bundle {@link parseJwtBundle} rejects.
 */
export function parseJwtBundles(raw: ReadonlyMap<string, Uint8Array | string>): JwtBundles {
  const out = new Map<string, JwtBundle>();
  for (const [trustDomain, jwks] of raw) out.set(trustDomain, parseJwtBundle(jwks));
  return out;
}

/** Strict unpadded base64url → JSON object, or `undefined`. */
function decodeSegment(segment: string): Record<string, unknown> | undefined {
  if (!B64URL.test(segment) || segment.length % 4 === 1) return undefined;
  const b64 = segment.replaceAll('-', '+').replaceAll('_', '/');
  try {
    const bytes = fromBase64(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '='));
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const keySets = new WeakMap<JwtBundle, JWTVerifyGetKey>();

function keySetOf(bundle: JwtBundle): JWTVerifyGetKey {
  let keySet = keySets.get(bundle);
  if (keySet === undefined) {
    try {
      keySet = createLocalJWKSet({ keys: [...bundle.keys] });
    } catch {
      throw untrusted('JWT bundle is malformed');
    }
    keySets.set(bundle, keySet);
  }
  return keySet;
}

function checkOptions(options: ValidateJwtSvidOptions): { now: Date; tolerance: number } {
  if (typeof options.audience !== 'string' || options.audience.length === 0) {
    throw new TypeError('audience must be a non-empty string');
  }
  const now = options.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new RangeError('now must be a valid Date');
  }
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_JWT_CLOCK_TOLERANCE_SECONDS) {
    throw new RangeError(`clockToleranceSeconds must be 0–${MAX_JWT_CLOCK_TOLERANCE_SECONDS}`);
  }
  return { now, tolerance };
}

/**
 * Maps a `jose` failure to our error. Claim failures drop `jose`'s error, which holds the claims
 * set; anything else unexpected (e.g. an RSA authority under 2048 bits) fails closed as untrusted.
 */
function fromJose(error: unknown, audience: string): SpikeError {
  if (isSpikeError(error)) return error;
  const { code, claim, reason } = (isRecord(error) ? error : {}) as {
    code?: unknown;
    claim?: unknown;
    reason?: unknown;
  };
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return untrusted('token signature verification failed');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return untrusted('no JWT authority found for the token key id and algorithm');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return invalid('token header algorithm not allowed');
    case 'ERR_JWT_EXPIRED':
      return untrusted('token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const label = claim === 'sub' ? 'subject' : claim;
      if (typeof label !== 'string' || !/^[a-z]{1,8}$/.test(label)) {
        return invalid('token claims are invalid');
      }
      if (reason === 'missing') return invalid(`token missing ${label} claim`);
      if (label === 'aud') return invalid(`expected audience in ${JSON.stringify([audience])}`);
      if (label === 'nbf' && reason === 'check_failed') return untrusted('token is not valid yet');
      return invalid(`token has an invalid ${label} claim`);
    }
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return invalid('token is malformed');
    default:
      return new SpikeError('svid_untrusted', 'unable to verify token with the JWT authority', {
        cause: error,
      });
  }
}

/**
 * Validates a JWT-SVID against the JWT bundle of its subject's trust domain (docs/spiffe.md §6,
 * §8 rows 44–46). See the module comment for the exact rules.
 *
 * @param token JWS compact serialisation, e.g. from `authorization: Bearer <token>`.
 * @param bundles trust domain name → {@link JwtBundle} (from {@link parseJwtBundle}).
 * @throws SpikeError `svid_invalid` (e.g. `token header missing key id`, `token missing exp
 *   claim`, `token has an invalid subject claim`, `expected audience in …`) or `svid_untrusted`
 *   (`no bundle found for trust domain …`, `token has expired`, a bad signature). Throws
 *   `TypeError` / `RangeError` for bad arguments.
 */
export async function validateJwtSvid(
  token: string,
  bundles: JwtBundles,
  options: ValidateJwtSvidOptions,
): Promise<JwtSvid> {
  if (typeof token !== 'string') throw new TypeError('token must be a string');
  const { now, tolerance } = checkOptions(options);

  const parts = token.split('.');
  if (parts.length !== 3) throw invalid('token is not in JWS compact serialisation');
  const header = decodeSegment(parts[0]!);
  if (header === undefined) throw invalid('token header is malformed');
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADER.has(name)) throw invalid('token header has an unsupported parameter');
  }
  if (typeof header.alg !== 'string' || !JWT_SVID_ALGORITHMS.includes(header.alg)) {
    throw invalid('token header algorithm not allowed');
  }
  if (typeof header.kid !== 'string' || header.kid.length === 0) {
    throw invalid('token header missing key id');
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw invalid('token header type not equal to either JWT or JOSE');
  }
  if (!B64URL.test(parts[2]!)) throw invalid('token signature is missing or malformed');

  // Unverified: only to pick the bundle. The same bytes are verified below.
  const unverified = decodeSegment(parts[1]!);
  if (unverified === undefined) throw invalid('token claims are malformed');
  if (!Object.hasOwn(unverified, 'sub')) throw invalid('token missing subject claim');
  let trustDomain: string;
  try {
    if (typeof unverified.sub !== 'string') throw new TypeError('sub');
    trustDomain = parseSpiffeId(unverified.sub).trustDomain;
  } catch {
    throw invalid('token has an invalid subject claim');
  }
  const bundle = bundles.get(trustDomain);
  if (bundle === undefined) throw untrusted(`no bundle found for trust domain "${trustDomain}"`);
  if (!bundle.keys.some((key) => key.kid === header.kid)) {
    throw untrusted(`no JWT authority found for the token key id in trust domain "${trustDomain}"`);
  }

  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, keySetOf(bundle), {
      algorithms: [...JWT_SVID_ALGORITHMS],
      audience: options.audience,
      requiredClaims: ['exp', 'sub', 'aud'],
      clockTolerance: tolerance,
      currentDate: now,
    }));
  } catch (error) {
    throw fromJose(error, options.audience);
  }

  // jose checks types loosely: numbers may be non-finite (JSON `1e999`), `aud` members unchecked.
  const nowSeconds = Math.floor(now.getTime() / 1000);
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    const value = claims[name];
    if (value !== undefined && !Number.isFinite(new Date(value * 1000).getTime())) {
      throw invalid(`token has an invalid ${name} claim`);
    }
  }
  if (claims.iat !== undefined && claims.iat > nowSeconds + tolerance) {
    throw untrusted('token issued in the future');
  }
  const audience = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  if (!Array.isArray(audience) || audience.some((a) => typeof a !== 'string')) {
    throw invalid('token has an invalid aud claim');
  }
  // The verified `sub` is the unverified one (same bytes), so the trust domain stands.
  const id = claims.sub as string;
  return {
    id,
    trustDomain,
    audience: [...audience],
    expiry: new Date((claims.exp as number) * 1000),
    claims: claims as Record<string, unknown>,
  };
}
