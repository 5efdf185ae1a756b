/**
 * The mTLS listener of every SPIKE server (Nexus, Keeper): a `node:http2` secure server that
 * speaks HTTP/2 and HTTP/1.1 and serves any Web-standard handler (`Request` → `Response`), which
 * is how the apps are served (docs/architecture.md decisions 1–3; docs/spiffe.md §5; docs/spike-api.md §2,
 * §12). The conversion between Node and Web objects lives in bridge.ts.
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
 * - Request bodies are never buffered beyond 64 KiB here (bridge.ts), so callers can cap them;
 *   response bodies are sent whole, in one write (bridge.ts `writeResponse`), except event
 *   streams, written as they come and exempt from the request timeout.
 * - Bounded connections (issue 11 finding 3): at most `maxConnections` connections are served;
 *   a few more are let through the handshake only to be told 503 `{"err":"server_busy"}`, any
 *   beyond those are closed at once. HTTP/2 allows `maxConcurrentStreams` streams per
 *   connection (the runtime refuses more with REFUSED_STREAM, which clients retry). Every
 *   request's header block must arrive within `headerMs` of the connection's start or, on
 *   HTTP/1.1, of the first byte after the previous response; a connection with nothing in
 *   flight for `idleMs` is closed. (On HTTP/2 a header block in progress blocks the connection,
 *   so the idle timeout and the header list cap bound it.)
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ERROR_TABLE } from '../../api/v1/errors.ts';
import type { X509Context } from '../../core/spiffe/types.ts';
import {
  collectBody,
  type NodeRequest,
  type NodeResponse,
  type RequestHead,
  readHead,
  smallBodyLength,
  streamBody,
  toWebRequest,
  type WebBody,
  writeRefusal,
  writeResponse,
} from './bridge.ts';
import {
  CONNECTION,
  type Connection,
  type Pending,
  sweepConnections,
  type Tagged,
} from './connections.ts';
import { contextFingerprint, peerChainOf, tlsMaterialOf, verifyPeer } from './material.ts';
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_HEADER_SIZE,
  DEFAULT_TIMEOUTS,
  type MtlsServer,
  type MtlsServerOptions,
} from './options.ts';

export type {
  MtlsServer,
  MtlsServerLimits,
  MtlsServerOptions,
  MtlsServerTimeouts,
} from './options.ts';

/** Connections beyond the cap that still get a 503 answer instead of a bare close. */
const REFUSAL_SLOTS = 32;
/** How long a refused connection may take to send its request. */
const REFUSAL_MS = 2_000;

/**
 * What a Web `Request` created by any server of this module cannot say itself: the verified peer
 * ID (docs/spiffe.md §5; docs/architecture.md decision 2), and the request target and method
 * exactly as received (a `Request` normalises `.`/`..` segments away and turns methods it does
 * not know, such as Vault's `LIST`, into `GET`). Read through `MtlsServer.peerOf`, `rawPathOf`
 * and `methodOf`. Unforgeable by clients.
 */
interface Origin {
  readonly peer: string;
  readonly node: NodeRequest;
}
const origins = new WeakMap<Request, Origin>();

/** The peer of a connection without a client certificate (`clientCertificate: 'optional'`). */
const ANONYMOUS = '';

/** True when the client presented no certificate at all (as opposed to one that failed). */
function noCertificate(socket: TLSSocket): boolean {
  const cert = socket.getPeerCertificate();
  return cert === null || cert === undefined || Object.keys(cert).length === 0;
}

/**
 * Creates the mTLS server (docs/architecture.md decisions 1–3, docs/spiffe.md §5, docs/spike-api.md §2, §12).
 * Nothing listens until `listen()`, which waits for the source's first SVID.
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const { source, authorizer, handler, onError } = options;
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
  const anonymousOk = options.clientCertificate === 'optional';

  let server: http2.Http2SecureServer | undefined;
  let context: X509Context | undefined;
  let fingerprint = '';
  let unsubscribe: (() => void) | undefined;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const sockets = new Set<Socket>();
  const connections = new Set<Connection>();
  const inFlight = new Set<Pending>();

  const report = (error: unknown) => {
    try {
      onError?.(error);
    } catch {
      // a failing error reporter must not take the server down
    }
  };

  /** The state of one connection, created once (on `secureConnection` or first use). */
  const connectionOf = (socket: TLSSocket): Connection => {
    const tagged = socket as TLSSocket & Tagged;
    const existing = tagged[CONNECTION];
    if (existing !== undefined) return existing;
    const at = context;
    const refused = sockets.size > limits.maxConnections;
    const verified =
      at === undefined || refused
        ? Promise.resolve(undefined)
        : socket.authorized !== true
          ? Promise.resolve(anonymousOk && noCertificate(socket) ? ANONYMOUS : undefined)
          : Promise.resolve()
              .then(() => verifyPeer(peerChainOf(socket), at, authorizer))
              .then(
                (id) => id,
                () => undefined,
              );
    const connection: Connection = {
      socket,
      verified,
      peer: null,
      refused,
      sawRequest: false,
      inFlight: 0,
      idleSince: Date.now(),
      bytesAtIdle: 0,
      bytesSeenAt: 0,
      closingSince: 0,
    };
    void verified.then((id) => {
      connection.peer = id;
    });
    tagged[CONNECTION] = connection;
    return connection;
  };

  const onSecureConnection = (socket: TLSSocket) => {
    if (context === undefined) {
      socket.destroy();
      return;
    }
    const connection = connectionOf(socket);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
    if (connection.refused) {
      const timer = setTimeout(() => socket.destroy(), Math.min(REFUSAL_MS, timeouts.headerMs));
      timer.unref?.();
      socket.once('close', () => clearTimeout(timer));
      return;
    }
    void connection.verified.then((id) => {
      if (id === undefined) socket.destroy();
    });
  };

  const onConnection = (socket: Socket) => {
    // Fail closed while we hold no SVID: no handshake at all. Far over the cap: no handshake.
    if (context === undefined || closed || sockets.size >= limits.maxConnections + REFUSAL_SLOTS) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const sweep = () => sweepConnections(inFlight, connections, timeouts);

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
    // HTTP/2: the state is cached on the session (a plain object), so only a session's first
    // request goes through the runtime's socket proxy.
    const session = (req as { stream?: http2.ServerHttp2Stream }).stream?.session as
      | (http2.ServerHttp2Session & Tagged)
      | undefined;
    let connection = session?.[CONNECTION];
    if (connection === undefined) {
      connection = connectionOf(req.socket as TLSSocket);
      if (session !== undefined) {
        connection.session = session;
        session[CONNECTION] = connection;
      }
    }
    const h1 = connection.session === undefined;
    if (connection.refused) {
      writeRefusal(res, ERROR_TABLE.server_busy, { 'retry-after': '1' });
      res.once('finish', () => connection.socket.destroy());
      return;
    }
    connection.sawRequest = true;
    connection.inFlight++;
    connection.bytesSeenAt = 0;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (--connection.inFlight === 0) {
        connection.idleSince = Date.now();
        if (h1) connection.bytesAtIdle = connection.socket.bytesRead ?? 0;
        connection.bytesSeenAt = 0;
      }
    };
    const peer = connection.peer;
    if (peer !== null) {
      dispatch(req, res, peer, release, h1);
      return;
    }
    void connection.verified.then((id) => dispatch(req, res, id, release, h1));
  };

  const dispatch = (
    req: NodeRequest,
    res: NodeResponse,
    peer: string | undefined,
    release: () => void,
    h1: boolean,
  ) => {
    if (peer === undefined || context === undefined || closed) {
      release();
      refuse(req);
      return;
    }
    // HTTP/2 enforces the limit in the runtime (SETTINGS_MAX_HEADER_LIST_SIZE); HTTP/1.1 parsing
    // only has the runtime's fixed 16 KiB cap, so apply ours here, before the handler.
    const head = readHead(req);
    if (h1 && head.size > maxHeaderSize) {
      release();
      writeRefusal(res, { status: 431, err: ERROR_TABLE.api_bad_request.err });
      if (!req.complete) req.destroy();
      return;
    }

    const abort = new AbortController();
    let done = false;
    // The request timeout is enforced by the sweep (no timer per request).
    const pending: Pending = { deadline: Date.now() + timeouts.requestMs, abort, res };
    inFlight.add(pending);
    // 'close' is emitted once: `on`, not `once` (no wrapper per request).
    res.on('close', () => {
      inFlight.delete(pending);
      release();
      if (!done) abort.abort(new Error('client went away'));
    });
    const fail = (error: unknown) => {
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
    };
    // A streamed answer (Server-Sent Events) lives as long as its client: no request timeout.
    const streaming = () => inFlight.delete(pending);
    const run = (body: WebBody) => {
      serve(req, res, head, peer, abort.signal, body, streaming).then(
        () => {
          done = true;
        },
        (error: unknown) => {
          done = true;
          fail(error);
        },
      );
    };

    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      run(null);
      return;
    }
    const small = smallBodyLength(head.contentLength);
    if (small === undefined) {
      run(streamBody(req));
      return;
    }
    collectBody(req, small, run, () => {
      done = true;
      writeRefusal(res, ERROR_TABLE.api_bad_request);
      req.destroy();
    });
  };

  const serve = async (
    req: NodeRequest,
    res: NodeResponse,
    head: RequestHead,
    peer: string,
    signal: AbortSignal,
    body: WebBody,
    streaming: () => void,
  ) => {
    const request = toWebRequest(req, head.pairs, signal, body);
    if (request === undefined) {
      writeRefusal(res, ERROR_TABLE.api_bad_request);
      return;
    }
    origins.set(request, { peer, node: req });
    let response: Response;
    try {
      response = await handler(request);
    } catch (error) {
      report(error);
      response = new Response(null, { status: 500 });
    }
    await writeResponse(req, res, response, streaming);
    // A body the handler did not read (e.g. over a size cap) is not drained: drop the stream.
    if (!req.complete) req.destroy();
  };

  const install = (next: X509Context | undefined) => {
    if (next === undefined) {
      // Withdrawn: fail closed until a new SVID arrives (docs/spiffe.md §1.4).
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
        // `optional`: the handshake also completes without a client certificate (and with a
        // failing one, which connectionOf then drops); `required`: the TLS stack refuses both.
        rejectUnauthorized: !anonymousOk,
        minVersion: 'TLSv1.2',
        handshakeTimeout: timeouts.headerMs,
        settings: {
          maxHeaderListSize: maxHeaderSize,
          maxConcurrentStreams: limits.maxConcurrentStreams,
        },
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
      const tick = Math.max(
        20,
        Math.min(timeouts.headerMs, timeouts.idleMs, timeouts.requestMs, 1000) / 4,
      );
      sweeper = setInterval(sweep, tick);
      sweeper.unref?.();
      const address = created.address();
      if (address === null || typeof address === 'string') throw new TypeError('no TCP address');
      return { port: address.port };
    },

    async close() {
      closed = true;
      unsubscribe?.();
      unsubscribe = undefined;
      if (sweeper !== undefined) clearInterval(sweeper);
      const current = server;
      if (current === undefined) return;
      const done = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await done;
    },

    peerOf: (request) => {
      const peer = origins.get(request)?.peer;
      return peer === ANONYMOUS ? undefined : peer;
    },
    rawPathOf: (request) => origins.get(request)?.node.url,
    methodOf: (request) => origins.get(request)?.node.method,

    address() {
      const address = server?.address();
      if (address === undefined || address === null || typeof address === 'string') return;
      return { port: address.port, host: address.address };
    },

    connectionCount: () => sockets.size,
  };
}
