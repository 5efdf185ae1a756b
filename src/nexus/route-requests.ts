/**
 * The handler Nexus gives its transport (src/nexus/main.ts): the Vault KV v2 API for its paths
 * (docs/vault-kv2.md), else the SPIKE API; with JWT-SVID authentication on (docs/spike-api.md
 * §2.1), a request without a client certificate is first authenticated by its bearer token.
 */
import type { JwtAuth } from './jwt-auth.ts';
import type { VaultApp } from './vault/app.ts';

/** The transport's handler: the Vault API for its paths, else the SPIKE API. */
export function routeRequests(parts: {
  readonly app: { handle(request: Request): Promise<Response> };
  readonly vault: VaultApp | undefined;
  readonly peerOf: (request: Request) => string | undefined;
  readonly methodOf: (request: Request) => string | undefined;
  readonly mtlsPeerOf: (request: Request) => string | undefined;
  readonly jwtAuth: JwtAuth | undefined;
}): (request: Request) => Promise<Response> {
  const { app, vault, peerOf, methodOf, mtlsPeerOf, jwtAuth } = parts;
  const route = (request: Request): Promise<Response> => {
    if (vault?.matches(pathOf(request))) {
      return vault.handle(request, peerOf(request), methodOf(request));
    }
    return app.handle(request);
  };
  if (jwtAuth === undefined) return route;
  return async (request) => {
    if (mtlsPeerOf(request) === undefined) await jwtAuth.authenticate(request);
    return route(request);
  };
}

/** The path of a request URL (the transport always builds an absolute one). */
function pathOf(request: Request): string {
  const url = request.url;
  const start = url.indexOf('/', url.indexOf('//') + 2);
  if (start === -1) return '/';
  const end = url.indexOf('?', start);
  return end === -1 ? url.slice(start) : url.slice(start, end);
}
