/**
 * Options and interface of the mTLS server (server.ts): timeouts (docs/spike-api.md §12), connection
 * limits (issue 11 finding 3) and their defaults.
 */
import type { Authorizer } from '../../core/spiffe/authorizer.ts';
import type { X509Source } from '../../core/spiffe/types.ts';

/** Timeouts of docs/spike-api.md §12, in milliseconds. */
export interface MtlsServerTimeouts {
  /**
   * TLS handshake plus the first request's headers on a connection, and on HTTP/1.1 each later
   * request's headers from its first byte (default 10 s).
   */
  readonly headerMs?: number;
  /** One request from its headers to the end of its response (default 30 s). */
  readonly requestMs?: number;
  /** A connection with no request in flight (default 60 s). */
  readonly idleMs?: number;
}

/** Connection limits (issue 11 finding 3). */
export interface MtlsServerLimits {
  /** Connections served at once; more are refused with 503 `server_busy` (default 1,024). */
  readonly maxConnections?: number;
  /** HTTP/2 streams in flight per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`; default 128). */
  readonly maxConcurrentStreams?: number;
}

export interface MtlsServerOptions {
  /** Our own identity and the trust bundles; the server follows its updates. */
  readonly source: X509Source;
  /** Decides which verified peer IDs may connect at all (per-route rules live in the app). */
  readonly authorizer: Authorizer;
  /** The application: any Web-standard handler, e.g. `(request) => app.handle(request)`. */
  readonly handler: (request: Request) => Response | Promise<Response>;
  /** Largest accepted header block in bytes (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`; 16 KiB). */
  readonly maxHeaderSize?: number;
  readonly timeouts?: MtlsServerTimeouts;
  readonly limits?: MtlsServerLimits;
  /**
   * `required` (default): every connection presents an X509-SVID. `optional`: a connection
   * without any client certificate is let through with no peer ID (`peerOf` answers `undefined`,
   * so the app must authenticate the request itself, e.g. by JWT-SVID); a certificate that is
   * presented must still verify, or the connection is dropped as before.
   */
  readonly clientCertificate?: 'required' | 'optional';
  /** Told about handler failures and transport errors; never given request bodies. */
  readonly onError?: (error: unknown) => void;
}

export interface MtlsServer {
  /** Waits for the first SVID, then listens. Port 0 picks a free port. */
  listen(port: number, host?: string): Promise<{ port: number }>;
  /** Stops listening, drops every connection and unsubscribes from the source. */
  close(): Promise<void>;
  /** The verified peer SPIFFE ID of a request this server created, else `undefined`. */
  peerOf(request: Request): string | undefined;
  /**
   * The request target (path and query) exactly as the client sent it (HTTP/2 `:path`, the
   * HTTP/1.1 request line) of a request this server created, else `undefined`.
   */
  rawPathOf(request: Request): string | undefined;
  /** The method exactly as received (e.g. `LIST`, which a `Request` reports as `GET`). */
  methodOf(request: Request): string | undefined;
  /** The bound address once listening. */
  address(): { port: number; host: string } | undefined;
  /** Connections open right now (served and being refused). */
  connectionCount(): number;
}

export const DEFAULT_TIMEOUTS = { headerMs: 10_000, requestMs: 30_000, idleMs: 60_000 } as const;
export const DEFAULT_LIMITS = { maxConnections: 1024, maxConcurrentStreams: 128 } as const;
export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
