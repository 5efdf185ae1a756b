/**
 * Connection and request state of the mTLS server (server.ts) and the sweep that enforces the
 * request timeout, the header deadlines and the idle timeout (issue 11 finding 3; see server.ts's
 * module comment for the rules).
 */
import type http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { NodeResponse } from './bridge.ts';

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
  readonly abort: AbortController;
  readonly res: NodeResponse;
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
    r.abort.abort(new Error('request timeout'));
    r.res.destroy();
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
