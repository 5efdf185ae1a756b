/**
 * One gRPC call to the Workload API over one HTTP/2 connection (docs/spiffe.md §1, §2): the
 * endpoint address, the connection, Length-Prefixed-Message reassembly, and the one gRPC status
 * derived from whatever ended the call (see ./client.ts for the whole picture). Used by the
 * one-shot fetches and the X.509 source of ./client.ts.
 *
 * Runs on Bun and Deno (`node:http2`, `node:net`).
 */
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  type EndpointAddress,
  formatUnixAddress,
  parseEndpointAddress,
} from '../../core/workload/address.ts';
import { encodeGrpcFrame, MessageDecoder } from '../../core/workload/framing.ts';
import {
  decodeGrpcMessage,
  GrpcCode,
  type GrpcStatus,
  parseGrpcStatus,
  workloadApiError,
} from '../../core/workload/status.ts';

/** Where log lines go. Messages never contain keys or certificates. */
export interface WorkloadLogger {
  debug?(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const consoleLogger: WorkloadLogger = {
  info: () => {},
  warn: (m) => console.warn(`[workload-api] ${m}`),
  error: (m) => console.error(`[workload-api] ${m}`),
};

/** Options shared by every Workload API call. */
export interface WorkloadClientOptions {
  /**
   * Endpoint address (`unix:///abs/path` or `tcp://IP:port`). Default: `SPIFFE_ENDPOINT_SOCKET`,
   * else `defaultEndpointAddress()`.
   */
  address?: string;
  logger?: WorkloadLogger;
  /** Largest accepted message; default 4 MiB (gRPC's default). */
  maxMessageBytes?: number;
}

/** Environment variable naming the Workload API endpoint (SPIFFE_Workload_Endpoint.md). */
export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';
/**
 * SPIRE Agent's default socket: `unix://<tmpdir>/spire-agent/public/api.sock` (docs/spiffe.md §2).
 * Deployments normally configure their own path.
 */
function defaultEndpointAddress(): string {
  return formatUnixAddress(path.join(os.tmpdir(), 'spire-agent', 'public', 'api.sock'));
}

/**
 * Resolves the endpoint: the explicit value, else `SPIFFE_ENDPOINT_SOCKET`, else the default.
 *
 * @throws SpikeError `spiffe_invalid_address`
 */
export function resolveEndpointAddress(explicit?: string): EndpointAddress {
  const fromEnv = process.env[ENDPOINT_ENV];
  const value =
    explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultEndpointAddress());
  return parseEndpointAddress(value);
}

// ---------------------------------------------------------------------------------------------
// One gRPC call over one HTTP/2 connection.

const SOCKET_ERRNOS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE']);

/**
 * Maps a connection error to a status (docs/spiffe.md §1.6 "Socket errors"): the agent being
 * absent or restarting (ENOENT, ECONNREFUSED) and a permission problem (EACCES) are all
 * UNAVAILABLE, retried with backoff; `errno` keeps the cause for the operator.
 */
export function statusFromSocketError(error: unknown): GrpcStatus {
  // Deno wraps the socket error of a pending stream (ERR_HTTP2_STREAM_CANCEL, `cause`: ENOENT).
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SOCKET_ERRNOS.has(code)) {
      return {
        code: GrpcCode.UNAVAILABLE,
        message: 'cannot connect to the Workload API',
        errno: code,
      };
    }
    e = (e as { cause?: unknown }).cause;
  }
  const errno = (error as { code?: unknown } | undefined)?.code;
  return {
    code: GrpcCode.UNAVAILABLE,
    message: `connection failed${typeof errno === 'string' ? ` (${errno})` : ''}`,
  };
}

/**
 * Status for a stream reset without a gRPC status (`doc/PROTOCOL-HTTP2.md` "Errors"): NO_ERROR,
 * PROTOCOL_ERROR, INTERNAL_ERROR and most others → INTERNAL; REFUSED_STREAM → UNAVAILABLE;
 * CANCEL → CANCELLED; ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED; INADEQUATE_SECURITY →
 * PERMISSION_DENIED.
 */
function statusFromRstCode(rstCode: number): GrpcStatus {
  const c = http2.constants;
  const message = `stream reset by the server (HTTP/2 error ${rstCode})`;
  switch (rstCode) {
    case c.NGHTTP2_REFUSED_STREAM:
      return { code: GrpcCode.UNAVAILABLE, message };
    case c.NGHTTP2_CANCEL:
      return { code: GrpcCode.CANCELLED, message };
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      return { code: GrpcCode.RESOURCE_EXHAUSTED, message };
    case c.NGHTTP2_INADEQUATE_SECURITY:
      return { code: GrpcCode.PERMISSION_DENIED, message };
    default:
      return { code: GrpcCode.INTERNAL, message };
  }
}

interface CallHandlers {
  onMessage(message: Uint8Array): void;
  /** Called exactly once, after the last `onMessage`. */
  onEnd(status: GrpcStatus): void;
}

export interface Call {
  /** Ends the call locally (RST_STREAM CANCEL); `status` becomes the call's status. */
  cancel(status?: GrpcStatus): void;
  /** Resolves once the connection is gone. */
  readonly closed: Promise<void>;
}

function connectSession(endpoint: EndpointAddress): http2.ClientHttp2Session {
  return http2.connect('http://localhost', {
    createConnection: () =>
      endpoint.kind === 'unix'
        ? net.connect(endpoint.path)
        : net.connect({ host: endpoint.host, port: endpoint.port }),
    settings: { enablePush: false },
  });
}

function headerString(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** The request headers of a Workload API call; a unary call carries `grpc-timeout`. */
function requestHeaders(method: string, timeoutMs: number | undefined): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':scheme': 'http',
    ':path': `/SpiffeWorkloadAPI/${method}`,
    ':authority': 'localhost',
    'content-type': 'application/grpc',
    te: 'trailers',
    'workload.spiffe.io': 'true',
  };
  if (timeoutMs !== undefined) {
    // grpc-timeout: at most 8 digits; milliseconds are precise enough for a unary call.
    headers['grpc-timeout'] = `${Math.min(99_999_999, Math.max(1, Math.ceil(timeoutMs)))}m`;
  }
  return headers;
}

/** The status a bad `:status` or content-type in the response headers means, else `undefined`. */
function responseHeaderStatus(h: http2.IncomingHttpHeaders): GrpcStatus | undefined {
  const status = Number(h[':status']);
  const contentType = headerString(h['content-type']) ?? '';
  if (status !== 200) {
    return { code: GrpcCode.UNKNOWN, message: `unexpected HTTP status ${status}` };
  }
  if (!/^application\/grpc(?:$|[+;])/.test(contentType)) {
    return { code: GrpcCode.INTERNAL, message: 'unexpected content-type' };
  }
  return undefined;
}

/** The gRPC status in trailers (or Trailers-Only headers). */
function readStatus(h: http2.IncomingHttpHeaders): GrpcStatus {
  const raw = headerString(h['grpc-status']);
  if (raw === undefined) {
    return { code: GrpcCode.UNKNOWN, message: 'stream ended without grpc-status' };
  }
  const code = parseGrpcStatus(raw);
  if (code === undefined) return { code: GrpcCode.UNKNOWN, message: 'invalid grpc-status' };
  return { code, message: decodeGrpcMessage(headerString(h['grpc-message'])) };
}

/** What a call knows when it ends, for {@link finalStatus}. */
interface CallEnd {
  readonly localStatus: GrpcStatus | undefined;
  readonly headerStatus: GrpcStatus | undefined;
  readonly grpcStatus: GrpcStatus | undefined;
  /** The decoder's verdict on a partial message left over, if any. */
  readonly partial: GrpcStatus | undefined;
  readonly headersChecked: boolean;
  readonly readableEnded: boolean;
  readonly socketStatus: GrpcStatus | undefined;
  readonly goawayLastStreamId: number | undefined;
  readonly stream: Pick<http2.ClientHttp2Stream, 'id' | 'rstCode'>;
}

/** The one gRPC status of an ended call, from whatever ended it (module header). */
function finalStatus(end: CallEnd): GrpcStatus {
  const { localStatus, headerStatus, grpcStatus, partial, headersChecked, socketStatus } = end;
  const { readableEnded, goawayLastStreamId, stream } = end;
  if (localStatus !== undefined) return localStatus;
  if (headerStatus !== undefined) return headerStatus;
  if (grpcStatus !== undefined) {
    if (grpcStatus.code === GrpcCode.OK && partial !== undefined) return partial;
    return grpcStatus;
  }
  if (partial !== undefined) return partial;
  if (!headersChecked && socketStatus !== undefined) return socketStatus;
  if (headersChecked && readableEnded) {
    return { code: GrpcCode.UNKNOWN, message: 'stream ended without grpc-status' };
  }
  if (goawayLastStreamId !== undefined && (stream.id ?? 1) > goawayLastStreamId) {
    return { code: GrpcCode.UNAVAILABLE, message: 'connection closed by the server (GOAWAY)' };
  }
  if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
    return statusFromRstCode(stream.rstCode);
  }
  if (socketStatus !== undefined) return socketStatus;
  if (headersChecked) return statusFromRstCode(http2.constants.NGHTTP2_NO_ERROR);
  return { code: GrpcCode.UNAVAILABLE, message: 'connection closed before a response' };
}

/**
 * The status of a socket error after `current`: the first socket error wins, unless a later one
 * names the errno (Deno reports the stream's cancellation before the session's ENOENT).
 */
function laterSocketStatus(current: GrpcStatus | undefined, error: unknown): GrpcStatus {
  const status = statusFromSocketError(error);
  const better =
    current === undefined || (current.errno === undefined && status.errno !== undefined);
  return better ? status : current;
}

const DEADLINE_EXCEEDED: GrpcStatus = {
  code: GrpcCode.DEADLINE_EXCEEDED,
  message: 'deadline exceeded',
};

/** A unary call's deadline timer (`expire` runs after `timeoutMs`); none for a stream. */
function unaryDeadline(
  timeoutMs: number | undefined,
  expire: () => void,
): ReturnType<typeof setTimeout> | undefined {
  return timeoutMs === undefined ? undefined : setTimeout(expire, timeoutMs);
}

/**
 * Starts one gRPC call: one connection, one stream, the request sent as a single framed message.
 * Streams carry no deadline; a unary call passes `timeoutMs` (sent as `grpc-timeout`).
 */
export function startCall(
  endpoint: EndpointAddress,
  method: string,
  request: Uint8Array,
  handlers: CallHandlers,
  options: { maxMessageBytes?: number; timeoutMs?: number },
): Call {
  const decoder = new MessageDecoder({ maxMessageBytes: options.maxMessageBytes });
  let ended = false;
  let localStatus: GrpcStatus | undefined;
  let socketStatus: GrpcStatus | undefined;
  let headersChecked = false;
  let headerStatus: GrpcStatus | undefined; // a bad :status or content-type
  let grpcStatus: GrpcStatus | undefined; // from trailers or a Trailers-Only response
  let readableEnded = false;
  let goawayLastStreamId: number | undefined;
  let held: Uint8Array[] = []; // messages that arrived before the response headers

  const session = connectSession(endpoint);
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  session.on('error', (error) => {
    socketStatus = laterSocketStatus(socketStatus, error);
    finishSoon();
  });
  session.on('goaway', (_code: number, lastStreamId: number) => {
    goawayLastStreamId = lastStreamId;
    // Streams above the last processed ID were never seen by the server (§1.6): UNAVAILABLE.
    if ((stream.id ?? Number.POSITIVE_INFINITY) > lastStreamId) {
      cancel({ code: GrpcCode.UNAVAILABLE, message: 'connection closed by the server (GOAWAY)' });
    }
  });
  session.on('close', () => finishSoon());

  const stream = session.request(requestHeaders(method, options.timeoutMs), { endStream: false });
  stream.end(encodeGrpcFrame(request));

  const deliver = (messages: Uint8Array[]) => {
    for (const m of messages) {
      if (ended || localStatus !== undefined) return;
      handlers.onMessage(m);
    }
  };

  stream.on('response', (h) => {
    headersChecked = true;
    headerStatus = responseHeaderStatus(h);
    // Trailers-Only: grpc-status arrives in the only HEADERS frame (no 'trailers' event).
    if (h['grpc-status'] !== undefined) grpcStatus = readStatus(h);
    if (headerStatus !== undefined) {
      held = [];
      cancel(headerStatus);
      return;
    }
    deliver(held.splice(0));
  });
  stream.on('trailers', (t) => {
    grpcStatus = readStatus(t);
  });
  stream.on('data', (chunk: Uint8Array) => {
    if (ended || localStatus !== undefined) return;
    const result = decoder.push(chunk);
    if (headersChecked) deliver(result.messages);
    else held.push(...result.messages);
    if (result.error !== undefined) cancel(result.error);
  });
  stream.on('end', () => {
    readableEnded = true;
  });
  stream.on('error', (error) => {
    // Stream errors are reflected in rstCode / session errors; keep the first socket cause.
    if ((error as { code?: unknown }).code !== 'ERR_HTTP2_STREAM_ERROR') {
      socketStatus = laterSocketStatus(socketStatus, error);
    }
  });
  stream.on('close', () => {
    finishSoon();
  });
  const deadline = unaryDeadline(options.timeoutMs, () => cancel(DEADLINE_EXCEEDED));

  let finishScheduled = false;
  function finishSoon(): void {
    if (ended || finishScheduled) return;
    finishScheduled = true;
    // Let the remaining events of this turn (session error, trailers) land first.
    setTimeout(finish, 0);
  }

  function finish(): void {
    if (ended) return;
    // Drop messages held back for response headers that never came: they cannot be trusted.
    held = [];
    const status = finalStatus({
      localStatus,
      headerStatus,
      grpcStatus,
      partial: decoder.finish(),
      headersChecked,
      readableEnded,
      socketStatus,
      goawayLastStreamId,
      stream,
    });
    ended = true;
    if (deadline !== undefined) clearTimeout(deadline);
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    if (!session.destroyed) session.destroy();
    handlers.onEnd(status);
  }

  function cancel(status?: GrpcStatus): void {
    if (ended) return;
    localStatus ??= status ?? { code: GrpcCode.CANCELLED, message: 'cancelled by the client' };
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    if (!session.destroyed) session.close();
    finishSoon();
  }

  return { cancel, closed };
}

// ---------------------------------------------------------------------------------------------
// One-shot calls.

export function firstMessage(
  method: string,
  request: Uint8Array,
  options: WorkloadClientOptions & { timeoutMs?: number; unary?: boolean },
): Promise<Uint8Array> {
  const endpoint = resolveEndpointAddress(options.address);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let first: Uint8Array | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const call = startCall(
      endpoint,
      method,
      request,
      {
        onMessage(message) {
          if (first !== undefined) return;
          first = message;
          // Streams: the first message is the current state; stop listening.
          if (options.unary !== true) call.cancel({ code: GrpcCode.OK, message: '' });
        },
        onEnd(status) {
          if (timer !== undefined) clearTimeout(timer);
          if (status.code === GrpcCode.OK && first !== undefined) resolve(first);
          else if (status.code === GrpcCode.OK) {
            reject(workloadApiError({ code: GrpcCode.INTERNAL, message: 'no response message' }));
          } else reject(workloadApiError(status, { context: method }));
        },
      },
      {
        maxMessageBytes: options.maxMessageBytes,
        timeoutMs: options.unary ? timeoutMs : undefined,
      },
    );
    if (options.unary !== true) {
      timer = setTimeout(() => {
        call.cancel({ code: GrpcCode.DEADLINE_EXCEEDED, message: 'deadline exceeded' });
      }, timeoutMs);
    }
  });
}
