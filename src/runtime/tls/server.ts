/**
 * The mTLS listener of every SPIKE server (Nexus, Keeper): a `node:http2` secure server that
 * speaks HTTP/2 and HTTP/1.1 and serves any Web-standard handler (`Request` → `Response`), which
 * is how the Elysia apps are served (ARCHITECTURE.md decisions 1–3; spec/spiffe.md §5;
 * spike-api.md §2, §12).
 *
 * Invariants:
 * - No handler runs for a peer that has not passed SPIFFE validation and the authorizer. The TLS
 *   stack checks the chain against the union of all bundles (`ca`); then, for every connection,
 *   `verifyPeerX509Svid` re-validates the chain against the bundle of the leaf's own trust domain
 *   and the authorizer judges the ID. Every request waits on its connection's verification; a
 *   connection that fails it is destroyed and its requests get no response.
 * - The verified peer ID reaches the handler only through `peerOf(request)` (a `WeakMap` keyed by
 *   the `Request` object this module creates). Request headers are copied as they are and never
 *   consulted for identity, so a client-supplied identity header is just a header.
 * - Rotation: each new X509Source state is installed with `setSecureContext` (identical states are
 *   skipped); open connections keep the certificate they were made with. When the SVIDs are
 *   withdrawn the server fails closed: new connections are destroyed before the handshake and
 *   requests on open connections are refused, until a new SVID arrives.
 * - Request bodies are streamed to the handler (never buffered here), so callers can cap them.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Authorizer } from '../../core/spiffe/authorizer.ts';
import type { X509Context, X509Source } from '../../core/spiffe/types.ts';
import { contextFingerprint, peerChainOf, tlsMaterialOf, verifyPeer } from './material.ts';

/** Timeouts of spike-api.md §12, in milliseconds. */
export interface MtlsServerTimeouts {
  /** TLS handshake plus the first request's headers on a connection (default 10 s). */
  readonly headerMs?: number;
  /** One request from its headers to the end of its response (default 30 s). */
  readonly requestMs?: number;
  /** A connection with no traffic at all (default 60 s). */
  readonly idleMs?: number;
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
  /** The bound address once listening. */
  address(): { port: number; host: string } | undefined;
}

const DEFAULT_TIMEOUTS = { headerMs: 10_000, requestMs: 30_000, idleMs: 60_000 } as const;
const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;

/**
 * Requests created by any server of this module → verified peer ID (spiffe.md §5; ARCHITECTURE.md
 * decision 2), read through `MtlsServer.peerOf`. Unforgeable by clients.
 */
const peers = new WeakMap<Request, string>();

// ---------------------------------------------------------------------------------------------
// Server

/** Per-connection state, attached to the TLS socket under a module-private symbol. */
interface Connection {
  /** Resolves with the peer ID, or `undefined` when the peer is refused. Never rejects. */
  readonly verified: Promise<string | undefined>;
  /** Set once the first request arrived (ends the header timeout). */
  sawRequest: boolean;
}

const CONNECTION = Symbol('spike.mtls.connection');
type Tagged = { [CONNECTION]?: Connection };

// Connection-specific headers are forbidden in HTTP/2 responses and meaningless to forward.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

type NodeRequest = http2.Http2ServerRequest;
type NodeResponse = http2.Http2ServerResponse;

/**
 * Creates the mTLS server (ARCHITECTURE.md decisions 1–3, spiffe.md §5, spike-api.md §2, §12).
 * Nothing listens until `listen()`, which waits for the source's first SVID.
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const { source, authorizer, handler, onError } = options;
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;

  let server: http2.Http2SecureServer | undefined;
  let context: X509Context | undefined;
  let fingerprint = '';
  let unsubscribe: (() => void) | undefined;
  let closed = false;
  const sockets = new Set<Socket>();

  const report = (error: unknown) => {
    try {
      onError?.(error);
    } catch {
      // a failing error reporter must not take the server down
    }
  };

  /** The verification of one connection, created once (on `secureConnection` or first use). */
  const connectionOf = (socket: TLSSocket): Connection => {
    const tagged = socket as TLSSocket & Tagged;
    const existing = tagged[CONNECTION];
    if (existing !== undefined) return existing;
    const at = context;
    const verified =
      at === undefined || socket.authorized !== true
        ? Promise.resolve(undefined)
        : Promise.resolve()
            .then(() => verifyPeer(peerChainOf(socket), at, authorizer))
            .then(
              (id) => id,
              () => undefined,
            );
    const connection: Connection = { verified, sawRequest: false };
    tagged[CONNECTION] = connection;
    return connection;
  };

  const onSecureConnection = (socket: TLSSocket) => {
    if (context === undefined) {
      socket.destroy();
      return;
    }
    const connection = connectionOf(socket);
    void connection.verified.then((id) => {
      if (id === undefined) socket.destroy();
    });
    // Header timeout: a verified connection that never sends a request is dropped.
    const timer = setTimeout(() => {
      if (!connection.sawRequest) socket.destroy();
    }, timeouts.headerMs);
    timer.unref?.();
    socket.once('close', () => clearTimeout(timer));
  };

  const onConnection = (socket: Socket) => {
    // Fail closed while we hold no SVID: no handshake at all.
    if (context === undefined || closed) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setTimeout(timeouts.idleMs, () => socket.destroy());
  };

  const refuse = (req: NodeRequest) => {
    // No response at all: HTTP/2 loses the whole session, HTTP/1.1 the connection.
    const stream = (req as { stream?: http2.ServerHttp2Stream }).stream;
    if (stream !== undefined) {
      stream.session?.destroy();
    } else {
      req.socket.destroy();
    }
  };

  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    void serve(req, res).catch((error: unknown) => {
      report(error);
      if (!res.headersSent) {
        try {
          res.writeHead(500);
          res.end();
          return;
        } catch {
          // fall through to destroy
        }
      }
      res.destroy();
    });
  };

  const serve = async (req: NodeRequest, res: NodeResponse) => {
    const socket = req.socket as TLSSocket;
    const connection = connectionOf(socket);
    connection.sawRequest = true;
    const peer = await connection.verified;
    if (peer === undefined || context === undefined || closed) {
      refuse(req);
      return;
    }

    // HTTP/2 enforces the limit in nghttp2 (SETTINGS_MAX_HEADER_LIST_SIZE); HTTP/1.1 parsing only
    // has the runtime's fixed 16 KiB cap, so apply ours here, before the handler.
    if (headerListSize(req.rawHeaders) > maxHeaderSize) {
      res.writeHead(431);
      res.end();
      if (!req.complete) req.destroy();
      return;
    }

    const abort = new AbortController();
    const timer = setTimeout(() => {
      abort.abort(new Error('request timeout'));
      res.destroy();
    }, timeouts.requestMs);
    timer.unref?.();
    let finished = false;
    res.once('finish', () => {
      finished = true;
    });
    res.once('close', () => {
      clearTimeout(timer);
      if (!finished) abort.abort(new Error('client went away'));
    });

    const request = toWebRequest(req, abort.signal);
    if (request === undefined) {
      finished = true;
      res.writeHead(400);
      res.end();
      return;
    }
    peers.set(request, peer);

    let response: Response;
    try {
      response = await handler(request);
    } catch (error) {
      report(error);
      response = new Response(null, { status: 500 });
    }
    await writeResponse(req, res, response);
    finished = true;
    // A body the handler did not read (e.g. over a size cap) is not drained: drop the stream.
    if (!req.complete) req.destroy();
  };

  const install = (next: X509Context | undefined) => {
    if (next === undefined) {
      // Withdrawn: fail closed until a new SVID arrives (spiffe.md §1.4).
      context = undefined;
      fingerprint = '';
      return;
    }
    const print = contextFingerprint(next);
    if (print === fingerprint && context !== undefined) return;
    if (server !== undefined) {
      server.setSecureContext({ ...tlsMaterialOf(next), minVersion: 'TLSv1.2' });
    }
    context = next;
    fingerprint = print;
  };

  return {
    async listen(port, host = '127.0.0.1') {
      if (server !== undefined) throw new TypeError('mTLS server is already listening');
      if (closed) throw new TypeError('mTLS server was closed');
      const first = await source.ready();
      const initial = source.current() ?? first;
      context = initial;
      fingerprint = contextFingerprint(initial);
      const created = http2.createSecureServer({
        ...tlsMaterialOf(initial),
        allowHTTP1: true,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        handshakeTimeout: timeouts.headerMs,
        settings: { maxHeaderListSize: maxHeaderSize },
        maxSendHeaderBlockLength: maxHeaderSize,
      });
      server = created;
      unsubscribe = source.onUpdate(install);
      // A state that arrived between ready() and subscribing is applied now.
      install(source.current());
      created.on('connection', onConnection);
      created.on('secureConnection', onSecureConnection);
      created.on('request', onRequest);
      created.on('tlsClientError', () => {
        // Refused handshakes (no certificate, unknown authority, expired) are routine.
      });
      created.on('sessionError', report);
      await new Promise<void>((resolve, reject) => {
        created.once('error', reject);
        created.listen(port, host, () => {
          created.off('error', reject);
          resolve();
        });
      });
      created.on('error', report);
      const address = created.address();
      if (address === null || typeof address === 'string') throw new TypeError('no TCP address');
      return { port: address.port };
    },

    async close() {
      closed = true;
      unsubscribe?.();
      unsubscribe = undefined;
      const current = server;
      if (current === undefined) return;
      const done = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await done;
    },

    peerOf: (request) => peers.get(request),

    address() {
      const address = server?.address();
      if (address === undefined || address === null || typeof address === 'string') return;
      return { port: address.port, host: address.address };
    },
  };
}

/** HTTP/2's header list size (RFC 9113 §6.5.2): name + value + 32 octets per field. */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (const field of raw) size += field.length + 16;
  return size;
}

/** Node request → Web `Request` with a streamed body; `undefined` when it cannot be represented. */
function toWebRequest(req: NodeRequest, signal: AbortSignal): Request | undefined {
  const path = req.url;
  if (typeof path !== 'string' || !path.startsWith('/')) return;
  const headers = new Headers();
  const raw = req.rawHeaders;
  try {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.startsWith(':')) continue;
      headers.append(name, raw[i + 1]!);
    }
  } catch {
    return;
  }

  const method = req.method;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  try {
    // A fixed origin: the client's Host / :authority is not ours to trust, and routers that find
    // the path by character position (Elysia) would be misled by a short host. String
    // concatenation, not `new URL(path, base)`: a path like `//evil/x` stays a path.
    return new Request(`https://localhost${path}`, {
      method,
      headers,
      signal,
      body: hasBody ? bodyOf(req) : null,
      // Required by the Fetch standard for stream bodies.
      duplex: 'half',
    } as RequestInit);
  } catch {
    return;
  }
}

/** The request body as a byte stream with backpressure: nothing is buffered beyond ~64 KiB. */
function bodyOf(req: NodeRequest): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        req.on('data', (chunk: Uint8Array) => {
          if (done) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        req.once('end', () => {
          if (done) return;
          done = true;
          controller.close();
        });
        const fail = () => {
          if (done) return;
          done = true;
          controller.error(new Error('request body aborted'));
        };
        req.once('error', fail);
        req.once('aborted', fail);
        req.once('close', () => {
          if (!req.complete) fail();
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        done = true;
        req.pause();
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk?.byteLength ?? 0 },
  );
}

/** Web `Response` → node response, streaming the body with backpressure. */
async function writeResponse(req: NodeRequest, res: NodeResponse, response: Response) {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || name === 'set-cookie') return;
    headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  if (res.destroyed) {
    await response.body?.cancel();
    return;
  }
  res.writeHead(response.status, headers);
  if (response.body === null || req.method === 'HEAD') {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) {
        await reader.cancel();
        return;
      }
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
}

function drained(res: NodeResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
