/**
 * The plain-HTTP health listener of Nexus and Keeper (docs/spike-api.md §12): when
 * `SPIKE_NEXUS_HEALTH_PORT` / `SPIKE_KEEPER_HEALTH_PORT` is set, a `node:http` server that serves
 * `GET /health` and `GET /ready` only, answered by the app itself (the same handler as on the
 * mTLS listener, so both listeners always agree). Anything else is `400 api_bad_request`; a
 * handler failure is `500 api_internal_error`. No request body is read and no peer is trusted:
 * the two routes carry no secret.
 */
import http from 'node:http';

const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-store, no-cache, must-revalidate, private',
  Pragma: 'no-cache',
  Expires: '0',
} as const;

/** A listening health server. */
export interface HealthServer {
  /** The bound port (the requested one, or the one the system chose for port 0). */
  readonly port: number;
  /** Stops listening and drops open connections; resolves once closed. */
  close(): Promise<void>;
}

/**
 * Creates the plain-HTTP `/health` and `/ready` server (docs/spike-api.md §12) around `handle`, which
 * receives `GET http://localhost/health` or `/ready` (query string dropped). Not listening yet.
 */
function createHealthServer(handle: (request: Request) => Promise<Response>): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    req.resume();
    if (req.method !== 'GET' || (path !== '/health' && path !== '/ready')) {
      res.writeHead(400, JSON_HEADERS).end('{"err":"api_bad_request"}');
      return;
    }
    handle(new Request(`http://localhost${path}`))
      .then(async (response) => {
        res
          .writeHead(response.status, Object.fromEntries(response.headers))
          .end(await response.text());
      })
      .catch(() => {
        res.writeHead(500, JSON_HEADERS).end('{"err":"api_internal_error"}');
      });
  });
}

/**
 * Creates the health server (see {@link createHealthServer}) and listens on `address` (no host =
 * every interface).
 *
 * @throws the listen error (e.g. `EADDRINUSE`), after which nothing is left listening.
 */
export function startHealthServer(
  handle: (request: Request) => Promise<Response>,
  address: { readonly host?: string; readonly port: number },
): Promise<HealthServer> {
  const server = createHealthServer(handle);
  return new Promise<HealthServer>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve({
        port: typeof bound === 'object' && bound !== null ? bound.port : address.port,
        close: () => {
          const closed = new Promise<void>((done) => server.close(() => done()));
          server.closeAllConnections();
          return closed;
        },
      });
    });
  });
}
