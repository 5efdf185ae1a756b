/**
 * Connection and request state of the mTLS server (server.ts): the server's state, how a
 * connection is admitted and verified, and the sweep that enforces the request timeout, the
 * header deadlines and the idle timeout (issue 11 finding 3; see server.ts's
 * module comment for the rules).
 */
import type http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Authorizer } from '../../core/spiffe/authorizer.ts';
import type { X509Context, X509Source } from '../../core/spiffe/types.ts';
import { peerChainOf, verifyPeer } from './material.ts';
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_HEADER_SIZE,
  DEFAULT_TIMEOUTS,
  type MtlsServerOptions,
} from './options.ts';

/** Per-connection state, attached to the TLS socket under a module-private symbol. */
export interface Connection {
  readonly socket: TLSSocket;
  /** Resolves with the peer ID, or `undefined` when the peer is refused. Never rejects. */
  readonly verified: Promise<string | undefined>;
  /** The outcome of `verified` once settled (`null` before). */
  peer: string | undefined | null;
  /** Over the connection cap: every request is answered 503, then the connection closes. */
  readonly refused: boolean;
  /** Set once the first request arrived (ends the connection's first header deadline). */
  sawRequest: boolean;
  /** Requests in flight. */
  inFlight: number;
  /** Since when nothing is in flight (the connection's start at first). */
  idleSince: number;
  /** `socket.bytesRead` when it went idle (HTTP/1.1), and when more bytes were first seen. */
  bytesAtIdle: number;
  bytesSeenAt: number;
  /** When an idle HTTP/2 session was sent GOAWAY (0: not yet). */
  closingSince: number;
  /** The HTTP/2 session once one request showed the connection speaks HTTP/2. */
  session?: http2.ServerHttp2Session;
}

/** A request being served: cut at `deadline` (the request timeout). */
export interface Pending {
  readonly deadline: number;
  /** Aborts the request's signal and cuts its exchange. */
  expire(): void;
}

export const CONNECTION = Symbol('spike.mtls.connection');
export type Tagged = { [CONNECTION]?: Connection };

/** Request timeouts, header deadlines and idle timeouts, once per sweep tick. */
export function sweepConnections(
  inFlight: Set<Pending>,
  connections: Set<Connection>,
  timeouts: { readonly headerMs: number; readonly idleMs: number },
): void {
  const now = Date.now();
  for (const r of inFlight) {
    if (now < r.deadline) continue;
    inFlight.delete(r);
    r.expire();
  }
  for (const c of connections) {
    if (c.inFlight > 0 || c.refused) continue;
    // HTTP/1.1: bytes after the last response are the next request's headers arriving.
    if (c.sawRequest && c.session === undefined && c.bytesSeenAt === 0) {
      if ((c.socket.bytesRead ?? 0) !== c.bytesAtIdle) c.bytesSeenAt = now;
    }
    const headerSince = c.sawRequest ? c.bytesSeenAt : c.idleSince;
    if (headerSince !== 0 && now - headerSince >= timeouts.headerMs) {
      c.socket.destroy();
    } else if (now - c.idleSince >= timeouts.idleMs) {
      // HTTP/2: GOAWAY first, so a client's request racing the close is refused (and retried),
      // not lost; the socket goes a second later at most.
      const session = c.session;
      if (session !== undefined && !session.destroyed && c.closingSince === 0) {
        c.closingSince = now;
        session.close();
      } else if (session === undefined || now - c.closingSince >= 1000) {
        c.socket.destroy();
      }
    }
  }
}

/** Connections beyond the cap that still get a 503 answer instead of a bare close. */
const REFUSAL_SLOTS = 32;
/** How long a refused connection may take to send its request. */
const REFUSAL_MS = 2_000;
/** The peer of a connection without a client certificate (`clientCertificate: 'optional'`). */
export const ANONYMOUS = '';
/** Everything one server knows: its options, its current SVID and its connections. */
export interface State {
  readonly source: X509Source;
  readonly authorizer: Authorizer;
  readonly handler: (request: Request) => Response | Promise<Response>;
  readonly report: (error: unknown) => void;
  readonly timeouts: {
    readonly headerMs: number;
    readonly requestMs: number;
    readonly idleMs: number;
  };
  readonly limits: { readonly maxConnections: number; readonly maxConcurrentStreams: number };
  readonly maxHeaderSize: number;
  readonly anonymousOk: boolean;
  server: http2.Http2SecureServer | undefined;
  context: X509Context | undefined;
  fingerprint: string;
  unsubscribe: (() => void) | undefined;
  sweeper: ReturnType<typeof setInterval> | undefined;
  closed: boolean;
  readonly sockets: Set<Socket>;
  readonly connections: Set<Connection>;
  readonly inFlight: Set<Pending>;
}

export function stateOf(options: MtlsServerOptions): State {
  const { onError } = options;
  return {
    source: options.source,
    authorizer: options.authorizer,
    handler: options.handler,
    report: (error) => {
      try {
        onError?.(error);
      } catch {
        // a failing error reporter must not take the server down
      }
    },
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    maxHeaderSize: options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
    anonymousOk: options.clientCertificate === 'optional',
    server: undefined,
    context: undefined,
    fingerprint: '',
    unsubscribe: undefined,
    sweeper: undefined,
    closed: false,
    sockets: new Set(),
    connections: new Set(),
    inFlight: new Set(),
  };
}

/** True when the client presented no certificate at all (as opposed to one that failed). */
function noCertificate(socket: TLSSocket): boolean {
  const cert = socket.getPeerCertificate();
  return cert === null || cert === undefined || Object.keys(cert).length === 0;
}

/** The SPIFFE verdict on a connection's peer: its ID, or `undefined` when refused. */
function verdictOf(state: State, socket: TLSSocket, refused: boolean): Promise<string | undefined> {
  const at = state.context;
  if (at === undefined || refused) return Promise.resolve(undefined);
  if (socket.authorized !== true) {
    return Promise.resolve(state.anonymousOk && noCertificate(socket) ? ANONYMOUS : undefined);
  }
  return Promise.resolve()
    .then(() => verifyPeer(peerChainOf(socket), at, state.authorizer))
    .then(
      (id) => id,
      () => undefined,
    );
}

/** The state of one connection, created once (on `secureConnection` or first use). */
export function connectionOf(state: State, socket: TLSSocket): Connection {
  const tagged = socket as TLSSocket & Tagged;
  const existing = tagged[CONNECTION];
  if (existing !== undefined) return existing;
  const refused = state.sockets.size > state.limits.maxConnections;
  const verified = verdictOf(state, socket, refused);
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
}

export function onSecureConnection(state: State, socket: TLSSocket): void {
  if (state.context === undefined) {
    socket.destroy();
    return;
  }
  const connection = connectionOf(state, socket);
  state.connections.add(connection);
  socket.once('close', () => state.connections.delete(connection));
  if (connection.refused) {
    const timer = setTimeout(() => socket.destroy(), Math.min(REFUSAL_MS, state.timeouts.headerMs));
    timer.unref?.();
    socket.once('close', () => clearTimeout(timer));
    return;
  }
  void connection.verified.then((id) => {
    if (id === undefined) socket.destroy();
  });
}

export function onConnection(state: State, socket: Socket): void {
  // Fail closed while we hold no SVID: no handshake at all. Far over the cap: no handshake.
  const { sockets } = state;
  if (
    state.context === undefined ||
    state.closed ||
    sockets.size >= state.limits.maxConnections + REFUSAL_SLOTS
  ) {
    socket.destroy();
    return;
  }
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
}
