/**
 * DEVELOPMENT ONLY: the JWT side of the development issuer (./issuer.ts; docs/spiffe.md §1.1, §6).
 * One ES256 signing key per run, with a random `kid`; `FetchJWTSVID` signs a short-lived JWT-SVID
 * for the socket's SPIFFE ID and the requested audience, `FetchJWTBundles` serves the public key
 * as the trust domain's JWKS.
 *
 * Invariant: the private signing key never leaves this module.
 */
import type http2 from 'node:http2';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { toHex } from '../core/bytes.ts';
import { encodeGrpcFrame, MessageDecoder } from '../core/workload/framing.ts';
import { GrpcCode } from '../core/workload/status.ts';
import {
  decodeJwtSvidRequest,
  encodeJwtBundlesResponse,
  encodeJwtSvidResponse,
  trailersOnly,
} from './workload-proto.ts';

/** JWT-SVID lifetime in seconds (SPIRE's default is 5 min). */
const DEV_JWT_TTL_SECONDS = 300;

/** The development issuer's JWT authority. */
export interface JwtAuthority {
  readonly kid: string;
  /** The `FetchJWTBundles` frame: trust-domain ID → JWKS JSON. */
  readonly bundlesFrame: Uint8Array;
  /** Signs a JWT-SVID for `sub` with audience `aud`. */
  sign(sub: string, aud: readonly string[]): Promise<string>;
}

/** Creates the JWT authority of `trustDomain` (a fresh ES256 key). */
export async function createJwtAuthority(trustDomain: string): Promise<JwtAuthority> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = toHex(crypto.getRandomValues(new Uint8Array(16)));
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'jwt-svid' };
  const jwks = new TextEncoder().encode(JSON.stringify({ keys: [jwk] }));
  const bundlesFrame = encodeGrpcFrame(
    encodeJwtBundlesResponse({ bundles: new Map([[`spiffe://${trustDomain}`, jwks]]) }),
  );
  return {
    kid,
    bundlesFrame,
    sign(sub, aud) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setSubject(sub)
        .setAudience([...aud])
        .setIssuedAt(now)
        .setExpirationTime(now + DEV_JWT_TTL_SECONDS)
        .sign(privateKey);
    },
  };
}

/**
 * Serves one unary `FetchJWTSVID` call on the socket of `id`: reads the `JWTSVIDRequest`, refuses
 * an empty audience (InvalidArgument) and a `spiffe_id` other than the caller's (PermissionDenied),
 * as SPIRE does, and answers with one JWT-SVID.
 */
export function serveJwtSvid(
  authority: JwtAuthority,
  id: string,
  stream: http2.ServerHttp2Stream,
): void {
  const decoder = new MessageDecoder({ maxMessageBytes: 64 * 1024 });
  let request: Uint8Array | undefined;
  let failed = false;
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    const result = decoder.push(new Uint8Array(chunk));
    if (result.error !== undefined) {
      failed = true;
      trailersOnly(stream, result.error.code, result.error.message);
      return;
    }
    request ??= result.messages[0];
  });
  stream.on('end', () => {
    if (failed) return;
    void answer(authority, id, stream, request ?? new Uint8Array(0));
  });
}

async function answer(
  authority: JwtAuthority,
  id: string,
  stream: http2.ServerHttp2Stream,
  body: Uint8Array,
): Promise<void> {
  let audience: readonly string[];
  let spiffeId: string;
  try {
    ({ audience, spiffeId } = decodeJwtSvidRequest(body));
  } catch {
    trailersOnly(stream, GrpcCode.INVALID_ARGUMENT, 'malformed JWTSVIDRequest');
    return;
  }
  if (audience.length === 0 || audience.some((a) => a.length === 0)) {
    trailersOnly(stream, GrpcCode.INVALID_ARGUMENT, 'audience must be specified');
    return;
  }
  if (spiffeId !== '' && spiffeId !== id) {
    trailersOnly(stream, GrpcCode.PERMISSION_DENIED, 'no identity issued');
    return;
  }
  const svid = await authority.sign(id, audience);
  if (stream.closed || stream.destroyed) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GrpcCode.OK) }));
  stream.end(encodeGrpcFrame(encodeJwtSvidResponse({ svids: [{ spiffeId: id, svid, hint: '' }] })));
}
