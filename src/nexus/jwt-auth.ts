/**
 * JWT-SVID authentication for callers without a client certificate (docs/spike-api.md §2.1,
 * docs/spiffe.md §6): off unless `SPIKE_NEXUS_JWT_AUDIENCE` is set.
 *
 * The transport then lets a TLS connection without a client certificate through with no peer ID
 * (src/runtime/tls/options.ts `clientCertificate: 'optional'`). For such a request, and only
 * then, `authenticate` reads `Authorization: Bearer <JWT-SVID>` and validates it with
 * src/core/spiffe/jwtsvid.ts against the JWT bundles the Workload API streams
 * (src/runtime/workload/jwt-bundles.ts): signature under a bundle key with the header's `kid`,
 * `aud` containing our audience, `exp`, and the trust domain of `sub`. On top of that the token's
 * remaining lifetime (`exp` − now) and, when `iat` is present, its whole lifetime (`exp` − `iat`)
 * must not exceed `SPIKE_NEXUS_JWT_MAX_TTL`: a bearer token can be replayed until it expires, so
 * it must expire soon. The `sub` of a valid token is then the request's peer ID, authorised by
 * the same roles and policies as an X509-SVID's. A client certificate always wins: a request that
 * arrived with one never looks at the header.
 *
 * A missing, malformed or refused token leaves the request without a peer, so the routes answer
 * `401 access_unauthorized` exactly as for a request with no identity; the token is never logged.
 */
import type { JwtBundles } from '../core/spiffe/jwtsvid.ts';
import { validateJwtSvid } from '../core/spiffe/jwtsvid.ts';

/** What {@link createJwtAuth} needs. */
export interface JwtAuthOptions {
  /** `SPIKE_NEXUS_JWT_AUDIENCE`: a token's `aud` must contain it. */
  readonly audience: string;
  /** `SPIKE_NEXUS_JWT_MAX_TTL` in milliseconds (default 5 min). */
  readonly maxTtlMs: number;
  /** The current JWT bundles (the Workload API stream); `undefined` refuses every token. */
  readonly bundles: () => JwtBundles | undefined;
  /** Wall clock; defaults to `new Date()`. */
  readonly clock?: () => Date;
  /** Told why a token was refused (the error code and message only, never the token). */
  readonly onRefused?: (code: string, message: string) => void;
}

export interface JwtAuth {
  /** Validates the request's bearer token, if any; afterwards `peerOf` answers for it. */
  authenticate(request: Request): Promise<void>;
  /** The `sub` of the request's validated JWT-SVID, else `undefined`. */
  peerOf(request: Request): string | undefined;
}

const BEARER = /^Bearer ([A-Za-z0-9_.-]{1,8192})$/;

/** See the module comment. */
export function createJwtAuth(options: JwtAuthOptions): JwtAuth {
  const peers = new WeakMap<Request, string>();
  const clock = options.clock ?? (() => new Date());
  const refused = (code: string, message: string) => {
    try {
      options.onRefused?.(code, message);
    } catch {
      // a failing reporter does not change the answer
    }
  };

  return {
    async authenticate(request) {
      const header = request.headers.get('authorization');
      if (header === null) return;
      const match = BEARER.exec(header);
      const bundles = options.bundles();
      if (match === null) return refused('api_bad_request', 'malformed Authorization header');
      if (bundles === undefined) return refused('svid_untrusted', 'no JWT bundles yet');
      const now = clock();
      try {
        const svid = await validateJwtSvid(match[1]!, bundles, {
          audience: options.audience,
          now,
        });
        const exp = svid.expiry.getTime();
        const iat = svid.claims.iat;
        if (exp - now.getTime() > options.maxTtlMs) {
          return refused('svid_untrusted', 'token lifetime exceeds SPIKE_NEXUS_JWT_MAX_TTL');
        }
        if (typeof iat === 'number' && exp - iat * 1000 > options.maxTtlMs) {
          return refused('svid_untrusted', 'token lifetime exceeds SPIKE_NEXUS_JWT_MAX_TTL');
        }
        peers.set(request, svid.id);
      } catch (error) {
        const { code, message } = error as { code?: unknown; message?: unknown };
        refused(String(code ?? 'svid_invalid'), String(message ?? 'invalid token'));
      }
    },
    peerOf: (request) => peers.get(request),
  };
}
