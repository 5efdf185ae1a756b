/**
 * The mTLS client of SPIKE components and the CLI: HTTP/2 over `node:http2.connect`, presenting
 * the current X.509-SVID and checking the server by SPIFFE ID, not by host name (docs/architecture.md
 * decisions 3–4; docs/spiffe.md §5; docs/spike-api.md §2).
 *
 * How the server is checked: the TLS stack verifies the chain against the roots of all bundles
 * (`ca`); `checkServerIdentity` (synchronous) replaces the host-name check with the leaf rules that
 * can be checked synchronously (exactly one URI SAN holding a valid SPIFFE ID with a path) and the
 * authorizer; then, before the first request is sent on a new connection, the full asynchronous
 * `verifyPeerX509Svid` runs on the peer chain against the bundle of the leaf's own trust domain.
 * A failure at either step closes the connection and fails the request.
 *
 * Connections: one HTTP/2 session is reused for all requests. When the X509Source rotates (or
 * withdraws) the SVID, the session is marked stale and closed gracefully: requests in flight
 * finish, new requests open a new session with the new SVID. A session that closes or receives
 * GOAWAY is replaced transparently on the next request.
 */
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { concatBytes } from '../../core/bytes.ts';
import { SpikeError } from '../../core/errors.ts';
import type { Authorizer } from '../../core/spiffe/authorizer.ts';
import type { X509Context, X509Source } from '../../core/spiffe/types.ts';
import { inspectLeafCertificate } from '../../core/spiffe/x509svid.ts';
import { connectionError, currentContext, markUnsent, withDeadline } from './client-errors.ts';
import { contextFingerprint, peerChainOf, tlsMaterialOf, verifyPeer } from './material.ts';
import { type MtlsStreamResponse, openStreamOn, type StreamRequestInit } from './stream.ts';

export interface MtlsClientOptions {
  /** Our own identity (presented as client certificate) and the trust bundles. */
  readonly source: X509Source;
  /** Decides which server IDs we talk to (e.g. the nexus role, docs/spike-api.md §1). */
  readonly authorizer: Authorizer;
  /** `https://host:port` of the server; a path, if any, is ignored. */
  readonly baseUrl: string;
  /** Whole request, connection included (default 60 s, `SPIKE_HTTP_CLIENT_TIMEOUT`). */
  readonly timeoutMs?: number;
  /** Largest accepted response body (default 16 MiB). */
  readonly maxResponseBytes?: number;
}

interface MtlsRequestInit {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  /** Cancels the request (RST_STREAM CANCEL); the call rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

export interface MtlsResponse {
  readonly status: number;
  /** Lower-case names; repeated headers joined with `, `. */
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

export interface MtlsClient {
  /**
   * Sends one request on the pooled session.
   *
   * @throws SpikeError `net_peer_connection` (unreachable, reset, timeout), or the server
   *   verification error (`svid_invalid`, `svid_untrusted`, `svid_unauthorized`).
   */
  request(path: string, init?: MtlsRequestInit): Promise<MtlsResponse>;
  /**
   * Sends one request and streams its answer (./stream.ts): only the wait for the headers has
   * the timeout. No retry.
   */
  openStream(path: string, init?: StreamRequestInit): Promise<MtlsStreamResponse>;
  /** Closes the session and stops following the source. */
  close(): Promise<void>;
  /**
   * Serial (lowercase hex) of the server leaf on the most recently verified connection, which may
   * already be retired (our own SVID rotated); `undefined` before the first connection.
   */
  peerCertificateSerial(): string | undefined;
  /** Verified SPIFFE ID of the server on the most recently verified connection. */
  peerId(): string | undefined;
  /** Number of sessions (TLS connections) opened so far. */
  connectionCount(): number;
}

interface Session {
  readonly h2: http2.ClientHttp2Session;
  /** Resolves once the server passed the full SPIFFE verification. */
  readonly ready: Promise<void>;
  stale: boolean;
  /** The handshake and verification finished (either way). */
  settled: boolean;
  serial?: string;
  peerId?: string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * Synchronous server-leaf check for `checkServerIdentity`: exactly one URI SAN, a valid SPIFFE ID
 * with a non-root path, accepted by the authorizer (docs/spiffe.md §4 leaf rules, §5).
 */
function checkServerLeaf(raw: Uint8Array | undefined, authorizer: Authorizer): Error | undefined {
  try {
    if (raw === undefined || raw.length === 0) {
      return new SpikeError('svid_invalid', 'server presented no certificate');
    }
    const { id } = inspectLeafCertificate(raw);
    authorizer(id);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new SpikeError('svid_invalid', 'invalid certificate');
  }
}

/** A request the server provably never processed (no stream, or REFUSED_STREAM): retryable. */
class NotSent {
  readonly error: SpikeError;
  constructor(error: SpikeError) {
    this.error = error;
  }
}

/**
 * Opens a session to `authority` with our current SVID; `ready` settles once the server passed
 * the full SPIFFE verification (`onVerified` is then told).
 */
function openSession(
  authority: string,
  context: X509Context,
  authorizer: Authorizer,
  onVerified: (s: Session) => void,
): Session {
  let identityError: Error | undefined;
  const h2 = http2.connect(authority, {
    ...tlsMaterialOf(context),
    minVersion: 'TLSv1.2',
    checkServerIdentity: (_host, cert) => {
      identityError = checkServerLeaf(cert.raw, authorizer);
      return identityError;
    },
  });
  const s: Session = {
    h2,
    stale: false,
    settled: false,
    ready: new Promise<void>((resolve, reject) => {
      const onError = (error: unknown) => {
        h2.off('connect', onConnect);
        reject(connectionError('cannot connect to the server', identityError ?? error));
      };
      const onConnect = () => {
        h2.off('error', onError);
        const socket = h2.socket as TLSSocket | undefined;
        if (socket === undefined || h2.destroyed || h2.closed) {
          reject(new SpikeError('net_peer_connection', 'connection closed during the handshake'));
          return;
        }
        let chain: Uint8Array[];
        try {
          chain = peerChainOf(socket);
        } catch (error) {
          h2.destroy();
          reject(connectionError('cannot read the server certificate', error));
          return;
        }
        verifyPeer(chain, context, authorizer).then(
          (id) => {
            s.peerId = id;
            try {
              s.serial = inspectLeafCertificate(chain[0]!).serial;
            } catch {
              // verifyPeer parsed it already; the serial is observability only
            }
            onVerified(s);
            resolve();
          },
          (error: unknown) => {
            h2.destroy();
            reject(connectionError('server identity rejected', error));
          },
        );
      };
      h2.once('error', onError);
      h2.once('connect', onConnect);
    }),
  };
  const settle = () => {
    s.settled = true;
  };
  s.ready.then(settle, settle);
  return s;
}

/** Sends one request on a verified session; a `NotSent` rejection is safe to retry. */
function sendRequest(
  s: Session,
  path: string,
  init: MtlsRequestInit,
  deadline: number,
  maxResponseBytes: number,
): Promise<MtlsResponse> {
  return new Promise<MtlsResponse>((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ...Object.fromEntries(
        Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
      ),
      ':method': init.method ?? 'GET',
      ':path': path,
    };
    // A declared length lets the server take the body in one piece (src/runtime/tls/bridge.ts).
    if (init.body !== undefined && headers['content-length'] === undefined) {
      headers['content-length'] =
        typeof init.body === 'string' ? Buffer.byteLength(init.body) : init.body.byteLength;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = s.h2.request(headers, { endStream: init.body === undefined });
    } catch (error) {
      reject(new NotSent(connectionError('request not sent', error)));
      return;
    }
    let status = 0;
    const responseHeaders: Record<string, string> = {};
    const chunks: Uint8Array[] = [];
    let size = 0;
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(
      () => {
        finish(() => reject(new SpikeError('net_peer_connection', 'request timed out')));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      },
      Math.max(1, deadline - Date.now()),
    );
    stream.on('response', (h) => {
      status = Number(h[':status']);
      for (const [name, value] of Object.entries(h)) {
        if (name.startsWith(':') || value === undefined) continue;
        responseHeaders[name] = Array.isArray(value) ? value.join(', ') : String(value);
      }
    });
    stream.on('data', (chunk: Uint8Array) => {
      size += chunk.byteLength;
      if (size > maxResponseBytes) {
        finish(() => reject(new SpikeError('net_peer_connection', 'response too large')));
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      chunks.push(new Uint8Array(chunk));
    });
    stream.on('end', () => {
      if (status === 0) {
        // Ended without response headers: the server dropped us (e.g. our ID was refused).
        finish(() => reject(new SpikeError('net_peer_connection', 'no response from server')));
        return;
      }
      const body = concatBytes(...chunks);
      finish(() => resolve({ status, headers: responseHeaders, body }));
    });
    const refused = () => stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
    stream.on('error', (error: unknown) => {
      const failure = connectionError('request failed', error);
      finish(() => reject(refused() ? new NotSent(failure) : failure));
    });
    stream.on('close', () => {
      if (status === 0) {
        const failure = new SpikeError('net_peer_connection', 'stream closed');
        finish(() => reject(refused() ? new NotSent(failure) : failure));
      } else {
        finish(() => reject(new SpikeError('net_peer_connection', 'response truncated')));
      }
    });
    const signal = init.signal;
    if (signal !== undefined) {
      const onAbort = () => {
        finish(() => reject(signal.reason));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    if (init.body !== undefined) stream.end(init.body);
  });
}

/**
 * Creates an mTLS client for one server (docs/spiffe.md §5, docs/spike-api.md §2). No connection is made
 * until the first request.
 */
export function createMtlsClient(options: MtlsClientOptions): MtlsClient {
  const { source, authorizer } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const origin = new URL(options.baseUrl);
  if (origin.protocol !== 'https:') throw new TypeError('baseUrl must be an https:// URL');
  const authority = origin.origin;

  let session: Session | undefined;
  // The last session whose server passed verification: what the observability getters report,
  // even after a rotation of our own SVID retired it.
  let verified: Session | undefined;
  let fingerprint: string | undefined;
  let closed = false;
  let connections = 0;

  const open = (context: X509Context): Session => {
    connections++;
    const s = openSession(authority, context, authorizer, (v) => {
      verified = v;
    });
    s.h2.on('error', () => {
      if (session === s) session = undefined;
    });
    s.h2.on('goaway', () => retire(s));
    s.h2.on('close', () => {
      if (session === s) session = undefined;
    });
    return s;
  };

  const retire = (s: Session | undefined) => {
    if (s === undefined) return;
    s.stale = true;
    if (session === s) session = undefined;
    // Graceful: streams in flight complete, no new ones start on this session. A session still
    // handshaking is closed once it settles, so callers already waiting on it are not failed.
    const shut = () => {
      if (!s.h2.closed && !s.h2.destroyed) s.h2.close();
    };
    if (s.settled) shut();
    else s.ready.then(shut, shut);
  };

  const unsubscribe = source.onUpdate((next) => {
    const print = next === undefined ? undefined : contextFingerprint(next);
    if (print !== undefined && print === fingerprint) return;
    fingerprint = print;
    retire(session);
  });

  const obtain = async (): Promise<Session> => {
    for (let attempt = 0; ; attempt++) {
      if (closed) throw new SpikeError('net_peer_connection', 'client is closed');
      let s = session;
      if (s === undefined || s.stale || s.h2.closed || s.h2.destroyed) {
        const context = source.current() ?? (await currentContext(source));
        // Another caller opened a session meanwhile: share it.
        if (session !== undefined && session !== s && !session.stale) continue;
        // Concurrent callers share one new session: no await between here and `session =`.
        fingerprint = contextFingerprint(context);
        s = open(context);
        session = s;
      }
      try {
        await s.ready;
        return s;
      } catch (error) {
        if (session === s) session = undefined;
        // Retired by a rotation while connecting: try again with the new SVID.
        if (s.stale && attempt < 3 && !closed) continue;
        throw error;
      }
    }
  };

  return {
    request: (path, init = {}) =>
      requestOn({ obtain, retire, closed: () => closed }, path, init, timeoutMs, maxResponseBytes),

    async openStream(path, init = {}) {
      if (!path.startsWith('/')) throw new TypeError('path must start with /');
      init.signal?.throwIfAborted();
      const deadline = Date.now() + timeoutMs;
      const s = await withDeadline(obtain(), deadline);
      return openStreamOn(s.h2, path, init, deadline);
    },

    async close() {
      closed = true;
      unsubscribe();
      const s = session;
      session = undefined;
      if (s === undefined || s.h2.destroyed) return;
      await new Promise<void>((resolve) => {
        s.h2.close(() => resolve());
        // Streams still open are cut after a short grace period.
        setTimeout(() => {
          s.h2.destroy();
          resolve();
        }, 1000).unref?.();
      });
    },

    peerCertificateSerial: () => verified?.serial,
    peerId: () => verified?.peerId,
    connectionCount: () => connections,
  };
}

/** The session operations `requestOn` needs from {@link createMtlsClient}'s closure. */
interface SessionPool {
  obtain(): Promise<Session>;
  retire(s: Session): void;
  closed(): boolean;
}

/**
 * One request: a request the server provably never processed (session closing, stream refused)
 * is retried on a fresh session, a few times at most; anything else is reported as is.
 */
async function requestOn(
  pool: SessionPool,
  path: string,
  init: MtlsRequestInit,
  timeoutMs: number,
  maxResponseBytes: number,
): Promise<MtlsResponse> {
  if (!path.startsWith('/')) throw new TypeError('path must start with /');
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    init.signal?.throwIfAborted();
    let s: Session;
    try {
      s = await withDeadline(pool.obtain(), deadline);
    } catch (error) {
      throw markUnsent(error);
    }
    try {
      return await sendRequest(s, path, init, deadline, maxResponseBytes);
    } catch (error) {
      if (!(error instanceof NotSent)) throw error;
      pool.retire(s);
      if (pool.closed() || attempt >= 2 || Date.now() >= deadline) throw markUnsent(error.error);
    }
  }
}
