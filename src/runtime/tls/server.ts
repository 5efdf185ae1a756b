/**
 * The mTLS listener of every SPIKE server (Nexus, Keeper): a `node:http2` secure server that
 * speaks HTTP/2 and HTTP/1.1 and serves any Web-standard handler (`Request` → `Response`), which
 * is how the apps are served (docs/architecture.md decisions 1–3; docs/spiffe.md §5; docs/spike-api.md §2,
 * §12). HTTP/2 streams are served straight from the server's `stream` event (exchange.ts), HTTP/1.1
 * requests from its `request` event; the conversion to and from Web objects lives in bridge.ts
 * and request.ts.
 *
 * Invariants:
 * - No handler runs for a peer that has not passed SPIFFE validation and the authorizer. The TLS
 *   stack checks the chain against the union of all bundles (`ca`); then, for every connection,
 *   `verifyPeerX509Svid` re-validates the chain against the bundle of the leaf's own trust domain
 *   and the authorizer judges the ID. Every request waits on its connection's verification; a
 *   connection that fails it is destroyed and its requests get no response.
 * - The verified peer ID reaches the handler only through `peerOf(request)` (a private field of
 *   the `Request` object this module creates, request.ts). Request headers are handed over as
 *   they are and never consulted for identity, so a client-supplied identity header is just a
 *   header.
 * - Rotation: each new X509Source state is installed with `setSecureContext` (identical states are
 *   skipped); open connections keep the certificate they were made with. When the SVIDs are
 *   withdrawn the server fails closed: new connections are destroyed before the handshake and
 *   requests on open connections are refused, until a new SVID arrives.
 * - Request bodies are never buffered beyond 64 KiB here (bridge.ts), so callers can cap them;
 *   response bodies are sent whole, in one write, except streamed ones (Server-Sent Events),
 *   whose chunks are flushed as they come (bridge.ts `writeResponse`). The request timeout ends
 *   once a streamed response's head is sent; such a response lasts until its body ends or the
 *   client goes away.
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
  contentLengthOf,
  headerListSize,
  smallBodyLength,
  streamBody,
  type WebBody,
  writeRefusal,
  writeResponse,
} from './bridge.ts';
import {
  ANONYMOUS,
  CONNECTION,
  type Connection,
  connectionOf,
  onConnection,
  onSecureConnection,
  type State,
  stateOf,
  sweepConnections,
  type Tagged,
} from './connections.ts';
import {
  type Exchange,
  H1Exchange,
  type H1Request,
  type H1Response,
  H2Exchange,
} from './exchange.ts';
import { contextFingerprint, tlsMaterialOf } from './material.ts';
import type { MtlsServer, MtlsServerOptions } from './options.ts';
import { createRequest, originOf } from './request.ts';

export type {
  MtlsServer,
  MtlsServerLimits,
  MtlsServerOptions,
  MtlsServerTimeouts,
} from './options.ts';

/** HTTP/2 END_STREAM flag of a HEADERS frame: the request has no body. */
const END_STREAM = 0x1;

/** An HTTP/2 stream: its connection is cached on the session (a plain object). */
function onStream(
  state: State,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  flags: number,
  raw: string[],
): void {
  const session = stream.session as (http2.ServerHttp2Session & Tagged) | undefined;
  if (session === undefined) return;
  let connection = session[CONNECTION];
  if (connection === undefined) {
    connection = connectionOf(state, session.socket as TLSSocket);
    connection.session = session;
    session[CONNECTION] = connection;
  }
  accept(state, connection, new H2Exchange(stream, headers, (flags & END_STREAM) !== 0, raw));
}

function onH1Request(state: State, req: H1Request, res: H1Response): void {
  const connection = connectionOf(state, req.socket as TLSSocket);
  accept(state, connection, new H1Exchange(req, res));
}

/** Connection bookkeeping, then the request waits for its connection's verification. */
function accept(state: State, connection: Connection, x: Exchange): void {
  if (connection.refused) {
    x.onClose = () => connection.socket.destroy();
    writeRefusal(x, ERROR_TABLE.server_busy, { 'retry-after': '1' });
    return;
  }
  connection.sawRequest = true;
  connection.inFlight++;
  connection.bytesSeenAt = 0;
  const h1 = x.h1;
  x.onClose = () => {
    state.inFlight.delete(x);
    if (--connection.inFlight === 0) {
      connection.idleSince = Date.now();
      if (h1) connection.bytesAtIdle = connection.socket.bytesRead ?? 0;
      connection.bytesSeenAt = 0;
    }
  };
  const peer = connection.peer;
  if (peer !== null) {
    dispatch(state, x, peer);
    return;
  }
  void connection.verified.then((id) => dispatch(state, x, id));
}

/** Refuses what the transport refuses, then collects or streams the body and serves. */
function dispatch(state: State, x: Exchange, peer: string | undefined): void {
  if (peer === undefined || state.context === undefined || state.closed) {
    // No response at all: HTTP/2 loses the whole session, HTTP/1.1 the connection.
    x.drop();
    return;
  }
  if (x.gone()) return;
  const raw = x.rawHeaders;
  // HTTP/2 enforces the limit in the runtime (SETTINGS_MAX_HEADER_LIST_SIZE); HTTP/1.1 parsing
  // only has the runtime's fixed 16 KiB cap, so apply ours here, before the handler.
  if (x.h1 && headerListSize(raw) > state.maxHeaderSize) {
    writeRefusal(x, { status: 431, err: ERROR_TABLE.api_bad_request.err });
    x.discardBody();
    return;
  }
  // The request timeout is enforced by the sweep (no timer per request).
  x.deadline = Date.now() + state.timeouts.requestMs;
  state.inFlight.add(x);
  const method = x.method;
  if (method === 'GET' || method === 'HEAD') {
    run(state, x, peer, null);
    return;
  }
  const small = smallBodyLength(contentLengthOf(raw));
  if (small === undefined) {
    run(state, x, peer, streamBody(x));
    return;
  }
  collectBody(
    x,
    small,
    (body) => run(state, x, peer, body),
    () => {
      x.done = true;
      writeRefusal(x, ERROR_TABLE.api_bad_request);
      x.discardBody();
    },
  );
}

function run(state: State, x: Exchange, peer: string, body: WebBody): void {
  serve(state, x, peer, body).then(
    () => {
      x.done = true;
    },
    (error: unknown) => {
      x.done = true;
      state.report(error);
      if (!x.headersSent() && !x.gone()) {
        try {
          x.whole(500, x.headers(500), undefined);
          return;
        } catch {
          // fall through to kill
        }
      }
      x.kill();
    },
  );
}

async function serve(state: State, x: Exchange, peer: string, body: WebBody): Promise<void> {
  const origin = { peer, rawPath: x.rawPath, method: x.method };
  const request = createRequest(origin, x.rawHeaders, x.abort, body);
  if (request === undefined) {
    writeRefusal(x, ERROR_TABLE.api_bad_request);
    return;
  }
  let response: Response;
  try {
    response = await state.handler(request);
  } catch (error) {
    state.report(error);
    response = new Response(null, { status: 500 });
  }
  await writeResponse(x, response);
  // A body the handler did not read (e.g. over a size cap) is not drained: drop the stream.
  x.discardBody();
}

function install(state: State, next: X509Context | undefined): void {
  if (next === undefined) {
    // Withdrawn: fail closed until a new SVID arrives (docs/spiffe.md §1.4).
    state.context = undefined;
    state.fingerprint = '';
    return;
  }
  const print = contextFingerprint(next);
  if (print === state.fingerprint && state.context !== undefined) return;
  state.server?.setSecureContext({ ...tlsMaterialOf(next), minVersion: 'TLSv1.2' });
  state.context = next;
  state.fingerprint = print;
}

function createServer(state: State, initial: X509Context): http2.Http2SecureServer {
  const { maxHeaderSize, timeouts } = state;
  const created = http2.createSecureServer({
    ...tlsMaterialOf(initial),
    allowHTTP1: true,
    requestCert: true,
    // `optional`: the handshake also completes without a client certificate (and with a failing
    // one, which connectionOf then drops); `required`: the TLS stack refuses both.
    rejectUnauthorized: !state.anonymousOk,
    minVersion: 'TLSv1.2',
    handshakeTimeout: timeouts.headerMs,
    settings: {
      maxHeaderListSize: maxHeaderSize,
      maxConcurrentStreams: state.limits.maxConcurrentStreams,
    },
    maxSendHeaderBlockLength: maxHeaderSize,
  });
  created.on('connection', (socket: Socket) => onConnection(state, socket));
  created.on('secureConnection', (socket: TLSSocket) => onSecureConnection(state, socket));
  // HTTP/1.1 arrives as `request`. Adding that listener also installs the runtime's HTTP/2
  // compatibility layer on `stream`, which is replaced by our own: HTTP/2 streams are served
  // directly, without compatibility request/response objects.
  created.on('request', (req: H1Request, res: H1Response) => onH1Request(state, req, res));
  created.removeAllListeners('stream');
  created.on('stream', (stream, headers, flags, raw) =>
    onStream(state, stream as http2.ServerHttp2Stream, headers, flags, raw),
  );
  created.on('tlsClientError', () => {
    // Refused handshakes (no certificate, unknown authority, expired) are routine.
  });
  created.on('sessionError', state.report);
  return created;
}

async function listen(state: State, port: number, host: string): Promise<{ port: number }> {
  if (state.server !== undefined) throw new TypeError('mTLS server is already listening');
  if (state.closed) throw new TypeError('mTLS server was closed');
  const first = await state.source.ready();
  const initial = state.source.current() ?? first;
  state.context = initial;
  state.fingerprint = contextFingerprint(initial);
  const created = createServer(state, initial);
  state.server = created;
  state.unsubscribe = state.source.onUpdate((next) => install(state, next));
  // A state that arrived between ready() and subscribing is applied now.
  install(state, state.source.current());
  await new Promise<void>((resolve, reject) => {
    created.once('error', reject);
    created.listen(port, host, () => {
      created.off('error', reject);
      resolve();
    });
  });
  created.on('error', state.report);
  const { timeouts } = state;
  const tick = Math.max(
    20,
    Math.min(timeouts.headerMs, timeouts.idleMs, timeouts.requestMs, 1000) / 4,
  );
  state.sweeper = setInterval(
    () => sweepConnections(state.inFlight, state.connections, timeouts),
    tick,
  );
  state.sweeper.unref?.();
  const address = created.address();
  if (address === null || typeof address === 'string') throw new TypeError('no TCP address');
  return { port: address.port };
}

async function close(state: State): Promise<void> {
  state.closed = true;
  state.unsubscribe?.();
  state.unsubscribe = undefined;
  if (state.sweeper !== undefined) clearInterval(state.sweeper);
  const current = state.server;
  if (current === undefined) return;
  const done = new Promise<void>((resolve) => current.close(() => resolve()));
  for (const socket of state.sockets) socket.destroy();
  await done;
}

/**
 * Creates the mTLS server (docs/architecture.md decisions 1–3, docs/spiffe.md §5, docs/spike-api.md §2, §12).
 * Nothing listens until `listen()`, which waits for the source's first SVID.
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const state = stateOf(options);
  return {
    listen: (port, host = '127.0.0.1') => listen(state, port, host),
    close: () => close(state),
    peerOf: (request) => {
      const peer = originOf(request)?.peer;
      return peer === ANONYMOUS ? undefined : peer;
    },
    rawPathOf: (request) => originOf(request)?.rawPath,
    methodOf: (request) => originOf(request)?.method,
    address() {
      const address = state.server?.address();
      if (address === undefined || address === null || typeof address === 'string') return;
      return { port: address.port, host: address.address };
    },
    connectionCount: () => state.sockets.size,
  };
}
