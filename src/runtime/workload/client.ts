/**
 * Workload API client: a small gRPC-over-HTTP/2 shim on `node:http2` (ARCHITECTURE.md decision 5,
 * spec/spiffe.md §1, §2).
 *
 * It speaks h2c with prior knowledge on a unix socket (or a TCP address), sends the
 * `workload.spiffe.io: true` security header on every call, reassembles Length-Prefixed-Messages
 * across DATA frames with a 4 MiB cap checked before allocating, and derives one gRPC status from
 * whatever ended the call: normal trailers, a Trailers-Only reply (visible only in the
 * `'response'` headers in `node:http2`), a bad `:status` or content-type, RST_STREAM, GOAWAY or a
 * socket error. It never sends PINGs (SPIRE answers them with GOAWAY `too_many_pings`).
 *
 * `createX509Source` keeps a `FetchX509SVID` stream open for the life of the process and applies
 * the status table of §1.4: reconnect at once after a server OK, no retry after InvalidArgument
 * or Unimplemented, jittered backoff (1 s → 30 s, reset by every good message) otherwise, and
 * PermissionDenied after SVIDs were issued withdraws them (fail closed). A message that fails
 * decoding or validation is reported and discarded; the previous good state stays, but only
 * until its SVIDs expire. Identical re-sent messages change nothing (row 42).
 *
 * Runs on Bun and Deno (`node:http2`, `node:net`); Deno may deliver `'data'` before
 * `'response'`, so messages are held back until the response headers have been checked.
 */
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from '../../core/backoff.ts';
import { parseGoDuration } from '../../core/duration.ts';
import { SpikeError } from '../../core/errors.ts';
import { parseTrustDomain } from '../../core/spiffe/id.ts';
import type { X509Bundles, X509Context, X509Source } from '../../core/spiffe/types.ts';
import { parseX509Bundle } from '../../core/spiffe/x509svid.ts';
import {
  type EndpointAddress,
  formatUnixAddress,
  parseEndpointAddress,
} from '../../core/workload/address.ts';
import { encodeGrpcFrame, MessageDecoder } from '../../core/workload/framing.ts';
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidResponse,
  decodeX509BundlesResponse,
  decodeX509SvidResponse,
  encodeJwtSvidRequest,
  type JwtSvidMessage,
  type X509SvidResponse,
} from '../../core/workload/proto.ts';
import {
  decodeGrpcMessage,
  GrpcCode,
  type GrpcStatus,
  grpcCodeName,
  parseGrpcStatus,
  type WorkloadApiError,
  workloadApiError,
} from '../../core/workload/status.ts';
import {
  sameX509Context,
  sameX509SvidResponse,
  toX509Context,
} from '../../core/workload/x509-context.ts';

/** Where log lines go. Messages never contain keys or certificates. */
export interface WorkloadLogger {
  debug?(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const consoleLogger: WorkloadLogger = {
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

/** Options of `createX509Source`. */
export interface X509SourceOptions extends WorkloadClientOptions {
  /**
   * How long `ready()` waits for the first SVID. Default: `SPIKE_SPIFFE_SOURCE_TIMEOUT` (a Go
   * duration such as `30s`), else 30 s.
   */
  timeoutMs?: number;
  /** Reconnection backoff; default 1 s → 30 s. */
  backoff?: Partial<BackoffOptions>;
}

/** Environment variable naming the Workload API endpoint (SPIFFE_Workload_Endpoint.md). */
export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';
/** Environment variable holding the source's readiness timeout (a Go duration). */
export const SOURCE_TIMEOUT_ENV = 'SPIKE_SPIFFE_SOURCE_TIMEOUT';
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * SPIRE Agent's default socket: `unix://<tmpdir>/spire-agent/public/api.sock` (spec/spiffe.md §2).
 * Deployments normally configure their own path.
 */
export function defaultEndpointAddress(): string {
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

function resolveTimeout(explicit: number | undefined): number {
  if (explicit !== undefined) {
    if (!(explicit > 0)) throw new RangeError('timeoutMs must be positive');
    return explicit;
  }
  const fromEnv = process.env[SOURCE_TIMEOUT_ENV];
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_TIMEOUT_MS;
  const ms = parseGoDuration(fromEnv);
  if (!(ms > 0)) throw new SpikeError('config_invalid', `${SOURCE_TIMEOUT_ENV} must be positive`);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// One gRPC call over one HTTP/2 connection.

const SOCKET_ERRNOS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE']);

/**
 * Maps a connection error to a status (spec/spiffe.md §1.6 "Socket errors"): the agent being
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
export function statusFromRstCode(rstCode: number): GrpcStatus {
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

interface Call {
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

/**
 * Starts one gRPC call: one connection, one stream, the request sent as a single framed message.
 * Streams carry no deadline; a unary call passes `timeoutMs` (sent as `grpc-timeout`).
 */
function startCall(
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
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });

  const session = connectSession(endpoint);
  // The first socket error wins, unless a later one names the errno (Deno reports the stream's
  // cancellation before the session's ENOENT).
  const noteSocketError = (error: unknown) => {
    const status = statusFromSocketError(error);
    if (
      socketStatus === undefined ||
      (socketStatus.errno === undefined && status.errno !== undefined)
    ) {
      socketStatus = status;
    }
  };
  session.on('error', (error) => {
    noteSocketError(error);
    finishSoon();
  });
  session.on('goaway', (_code: number, lastStreamId: number) => {
    goawayLastStreamId = lastStreamId;
    // Streams above the last processed ID were never seen by the server (§1.6): UNAVAILABLE.
    if ((stream.id ?? Number.POSITIVE_INFINITY) > lastStreamId) {
      cancel({ code: GrpcCode.UNAVAILABLE, message: 'connection closed by the server (GOAWAY)' });
    }
  });
  session.on('close', () => {
    resolveClosed();
    finishSoon();
  });

  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':scheme': 'http',
    ':path': `/SpiffeWorkloadAPI/${method}`,
    ':authority': 'localhost',
    'content-type': 'application/grpc',
    te: 'trailers',
    'workload.spiffe.io': 'true',
  };
  if (options.timeoutMs !== undefined) {
    // grpc-timeout: at most 8 digits; milliseconds are precise enough for a unary call.
    headers['grpc-timeout'] = `${Math.min(99_999_999, Math.max(1, Math.ceil(options.timeoutMs)))}m`;
  }
  const stream = session.request(headers, { endStream: false });
  stream.end(encodeGrpcFrame(request));

  const deliver = (messages: Uint8Array[]) => {
    for (const m of messages) {
      if (ended || localStatus !== undefined) return;
      handlers.onMessage(m);
    }
  };

  stream.on('response', (h) => {
    headersChecked = true;
    const status = Number(h[':status']);
    const contentType = headerString(h['content-type']) ?? '';
    if (status !== 200) {
      headerStatus = { code: GrpcCode.UNKNOWN, message: `unexpected HTTP status ${status}` };
    } else if (!/^application\/grpc(?:$|[+;])/.test(contentType)) {
      headerStatus = { code: GrpcCode.INTERNAL, message: 'unexpected content-type' };
    }
    // Trailers-Only: grpc-status arrives in the only HEADERS frame (no 'trailers' event).
    if (h['grpc-status'] !== undefined) grpcStatus = readStatus(h);
    if (headerStatus !== undefined) {
      held = [];
      cancel(headerStatus);
      return;
    }
    const pending = held;
    held = [];
    deliver(pending);
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
    if ((error as { code?: unknown }).code !== 'ERR_HTTP2_STREAM_ERROR') noteSocketError(error);
  });
  stream.on('close', () => {
    finishSoon();
  });
  if (options.timeoutMs !== undefined) {
    deadline = setTimeout(() => {
      cancel({ code: GrpcCode.DEADLINE_EXCEEDED, message: 'deadline exceeded' });
    }, options.timeoutMs);
  }

  function readStatus(h: http2.IncomingHttpHeaders): GrpcStatus {
    const raw = headerString(h['grpc-status']);
    if (raw === undefined) {
      return { code: GrpcCode.UNKNOWN, message: 'stream ended without grpc-status' };
    }
    const code = parseGrpcStatus(raw);
    if (code === undefined) return { code: GrpcCode.UNKNOWN, message: 'invalid grpc-status' };
    return { code, message: decodeGrpcMessage(headerString(h['grpc-message'])) };
  }

  function finalStatus(): GrpcStatus {
    if (localStatus !== undefined) return localStatus;
    if (headerStatus !== undefined) return headerStatus;
    const partial = decoder.finish();
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
    const status = finalStatus();
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

function firstMessage(
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

/**
 * Fetches JWT-SVIDs for `audience` (unary `FetchJWTSVID`, spec/spiffe.md §1.1). The tokens are
 * returned as sent; validate them with the JWT-SVID validator before trusting their claims.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`) when the call fails or returns no SVID.
 */
export async function fetchJwtSvid(
  options: WorkloadClientOptions & { audience: string[]; spiffeId?: string; timeoutMs?: number },
): Promise<JwtSvidMessage[]> {
  if (options.audience.length === 0 || options.audience.some((a) => a.length === 0)) {
    throw new SpikeError('config_invalid', 'a JWT-SVID needs at least one non-empty audience');
  }
  const bytes = await firstMessage(
    'FetchJWTSVID',
    encodeJwtSvidRequest({ audience: options.audience, spiffeId: options.spiffeId ?? '' }),
    { ...options, unary: true },
  );
  const response = decodeWithStatus(() => decodeJwtSvidResponse(bytes));
  if (response.svids.length === 0) {
    throw workloadApiError({ code: GrpcCode.INTERNAL, message: 'JWTSVIDResponse has no SVIDs' });
  }
  return [...response.svids];
}

/**
 * Fetches the current X.509 bundles once (`FetchX509Bundles`): trust domain → DER roots. Entries
 * whose key is not a trust domain are skipped.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`), or `svid_invalid` for bad bundle bytes.
 */
export async function fetchX509Bundles(
  options: WorkloadClientOptions & { timeoutMs?: number } = {},
): Promise<X509Bundles> {
  const bytes = await firstMessage('FetchX509Bundles', new Uint8Array(0), options);
  const response = decodeWithStatus(() => decodeX509BundlesResponse(bytes));
  const out = new Map<string, readonly Uint8Array[]>();
  for (const [key, value] of response.bundles) {
    const td = trustDomainOrUndefined(key);
    if (td === undefined) continue;
    out.set(td, value.length === 0 ? [] : parseX509Bundle(value));
  }
  return out;
}

/**
 * Fetches the current JWT bundles once (`FetchJWTBundles`): trust domain → JWKS JSON bytes.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`).
 */
export async function fetchJwtBundles(
  options: WorkloadClientOptions & { timeoutMs?: number } = {},
): Promise<Map<string, Uint8Array>> {
  const bytes = await firstMessage('FetchJWTBundles', new Uint8Array(0), options);
  const response = decodeWithStatus(() => decodeJwtBundlesResponse(bytes));
  const out = new Map<string, Uint8Array>();
  for (const [key, value] of response.bundles) {
    const td = trustDomainOrUndefined(key);
    if (td !== undefined) out.set(td, value);
  }
  return out;
}

function trustDomainOrUndefined(key: string): string | undefined {
  try {
    return parseTrustDomain(key);
  } catch {
    return undefined;
  }
}

function decodeWithStatus<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw workloadApiError({
      code: GrpcCode.INTERNAL,
      message: error instanceof Error ? error.message : 'invalid message',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The X.509 source.

interface Waiter {
  resolve(context: X509Context): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Longest delay `setTimeout` accepts. */
const MAX_TIMER_MS = 2_147_483_647;

class WorkloadX509Source implements X509Source {
  private context: X509Context | undefined;
  private lastResponse: X509SvidResponse | undefined;
  private readonly listeners = new Set<(context: X509Context | undefined) => void>();
  private readonly waiters = new Set<Waiter>();
  private fatal: WorkloadApiError | undefined;
  private lastProblem: Error | undefined;
  private lastStatus: GrpcStatus | undefined;
  private closed = false;
  private attempt = 0;
  private call: Call | undefined;
  private messagesOnCall = 0;
  private immediateReconnects = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly backoff: BackoffOptions;
  private readonly endpoint: EndpointAddress;
  private readonly timeoutMs: number;
  private readonly logger: WorkloadLogger;
  private readonly maxMessageBytes: number | undefined;

  constructor(
    endpoint: EndpointAddress,
    timeoutMs: number,
    logger: WorkloadLogger,
    maxMessageBytes: number | undefined,
    backoff: Partial<BackoffOptions> | undefined,
  ) {
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
    this.logger = logger;
    this.maxMessageBytes = maxMessageBytes;
    this.backoff = { ...DEFAULT_BACKOFF, ...backoff };
    backoffDelay(0, this.backoff, () => 0); // validates the options
    this.connect();
  }

  ready(): Promise<X509Context> {
    if (this.fatal !== undefined) return Promise.reject(this.fatal);
    if (this.closed) return Promise.reject(closedError());
    if (this.context !== undefined) return Promise.resolve(this.context);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(this.timeoutError());
        }, this.timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  current(): X509Context | undefined {
    return this.context;
  }

  onUpdate(listener: (context: X509Context | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    this.rejectWaiters(closedError());
    this.listeners.clear();
    const call = this.call;
    this.call = undefined;
    if (call !== undefined) {
      call.cancel();
      await call.closed;
    }
  }

  private connect(): void {
    if (this.closed) return;
    this.retryTimer = undefined;
    this.messagesOnCall = 0;
    const call = startCall(
      this.endpoint,
      'FetchX509SVID',
      new Uint8Array(0),
      {
        onMessage: (message) => {
          this.messagesOnCall++;
          this.enqueue(() => this.handleMessage(message, call));
        },
        onEnd: (status) => this.enqueue(async () => this.handleEnd(status, call)),
      },
      { maxMessageBytes: this.maxMessageBytes },
    );
    this.call = call;
  }

  /** Messages are validated asynchronously; the queue keeps them (and the end) in order. */
  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((error: unknown) => {
      this.logger.error(`internal error in the X.509 source: ${describe(error)}`);
    });
  }

  private async handleMessage(bytes: Uint8Array, call: Call): Promise<void> {
    if (this.closed || call !== this.call) return;
    let response: X509SvidResponse;
    try {
      response = decodeX509SvidResponse(bytes);
    } catch (error) {
      // Malformed protobuf is a transport-level failure: end the stream as INTERNAL (row 39).
      this.lastProblem = error as Error;
      call.cancel({ code: GrpcCode.INTERNAL, message: describe(error) });
      return;
    }
    if (this.lastResponse !== undefined && sameX509SvidResponse(this.lastResponse, response)) {
      this.goodMessage();
      return;
    }
    let context: X509Context;
    try {
      context = await toX509Context(response, new Date(), (m) => this.logger.warn(m));
    } catch (error) {
      this.lastProblem = error as Error;
      this.logger.warn(`discarded an X509SVIDResponse that failed validation: ${describe(error)}`);
      return;
    }
    if (this.closed || call !== this.call) return;
    this.goodMessage();
    this.lastResponse = response;
    if (this.context !== undefined && sameX509Context(this.context, context)) return;
    this.apply(context);
  }

  private goodMessage(): void {
    this.attempt = 0;
    this.immediateReconnects = 0;
    this.lastProblem = undefined;
    this.lastStatus = undefined;
  }

  private apply(context: X509Context | undefined): void {
    this.context = context;
    this.scheduleExpiry();
    if (context !== undefined) {
      for (const waiter of this.waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve(context);
      }
      this.waiters.clear();
    } else {
      this.lastResponse = undefined;
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(context);
      } catch (error) {
        this.logger.error(`X.509 source listener failed: ${describe(error)}`);
      }
    }
  }

  /** Withdraws the SVIDs once the earliest leaf expires and nothing newer arrived (fail closed). */
  private scheduleExpiry(): void {
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    const context = this.context;
    if (context === undefined || this.closed) return;
    const notAfter = Math.min(...context.svids.map((s) => s.notAfter.getTime()));
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, notAfter - Date.now() + 1));
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      if (this.context !== context) return;
      if (Date.now() <= notAfter) {
        this.scheduleExpiry();
        return;
      }
      this.logger.error('the X.509-SVID expired before a new one arrived; withdrawing it');
      this.apply(undefined);
    }, delay);
  }

  private async handleEnd(status: GrpcStatus, call: Call): Promise<void> {
    if (call === this.call) this.call = undefined;
    if (this.closed) return;
    const name = grpcCodeName(status.code);
    if (status.code !== GrpcCode.OK) this.lastStatus = status;

    switch (status.code) {
      case GrpcCode.OK:
        // The server ended the stream although we did not cancel: reconnect at once (row 33),
        // but not in a tight loop if it keeps doing so without sending anything.
        if (this.messagesOnCall > 0 || this.immediateReconnects === 0) {
          this.immediateReconnects++;
          this.logger.info('Workload API stream ended by the server; reconnecting');
          this.connect();
        } else {
          this.scheduleRetry();
        }
        return;
      case GrpcCode.INVALID_ARGUMENT:
      case GrpcCode.UNIMPLEMENTED: {
        // A configuration or client bug: retrying cannot help (rows 30, 31).
        this.fatal = workloadApiError(status);
        this.logger.error(
          `Workload API refused the request (${name}): ${status.message}; not retrying`,
        );
        this.rejectWaiters(this.fatal);
        return;
      }
      case GrpcCode.PERMISSION_DENIED:
        if (this.context !== undefined) {
          // Identity withdrawn (row 29): stop using it now.
          this.logger.error('Workload API withdrew this workload identity (PermissionDenied)');
          this.apply(undefined);
        } else {
          this.logger.warn(`no identity issued yet (PermissionDenied): ${status.message}`);
        }
        this.scheduleRetry();
        return;
      default:
        if (status.errno === 'EACCES') {
          this.logger.error(
            'permission denied on the Workload API socket (EACCES): check its mode and owner',
          );
        } else {
          this.logger.warn(
            `Workload API stream failed (${status.errno ?? name}: ${status.message}); retrying`,
          );
        }
        this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private rejectWaiters(error: Error): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.waiters.clear();
  }

  private timeoutError(): Error {
    const context = `no X.509-SVID within ${this.timeoutMs} ms`;
    if (this.lastStatus !== undefined) {
      return workloadApiError(this.lastStatus, { code: 'workload_api_timeout', context });
    }
    return new SpikeError(
      'workload_api_timeout',
      `${context}${this.lastProblem !== undefined ? ` (last problem: ${describe(this.lastProblem)})` : ''}`,
      { cause: this.lastProblem },
    );
  }
}

function closedError(): SpikeError {
  return new SpikeError('workload_api_error', 'the X.509 source is closed');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Opens a `FetchX509SVID` stream and returns a live X.509 source (spec/spiffe.md §1.4, §1.5).
 *
 * `ready()` resolves with the first valid context; it rejects with `workload_api_timeout` after
 * `timeoutMs` (the source keeps retrying; call `ready()` again) and at once with
 * `workload_api_error` after InvalidArgument or Unimplemented. Errors carry `grpcCode`,
 * `grpcMessage` and, for socket failures, `errno`.
 *
 * @throws SpikeError `spiffe_invalid_address` or `config_invalid` for bad configuration.
 */
export function createX509Source(options: X509SourceOptions = {}): X509Source {
  const endpoint = resolveEndpointAddress(options.address);
  const timeoutMs = resolveTimeout(options.timeoutMs);
  return new WorkloadX509Source(
    endpoint,
    timeoutMs,
    options.logger ?? consoleLogger,
    options.maxMessageBytes,
    options.backoff,
  );
}
