/**
 * Workload API client: a small gRPC-over-HTTP/2 shim on `node:http2` (docs/architecture.md decision 5,
 * docs/spiffe.md §1, §2).
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
 * Files: ./call.ts (one call: endpoint, connection, framing, status), ./fetch.ts (one-shot
 * fetches), this file (the X.509 source); the names other modules need are re-exported here.
 *
 * Runs on Bun and Deno (`node:http2`, `node:net`); Deno may deliver `'data'` before
 * `'response'`, so messages are held back until the response headers have been checked.
 */
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from '../../core/backoff.ts';
import { parseGoDuration } from '../../core/duration.ts';
import { SpikeError } from '../../core/errors.ts';
import type { X509Context, X509Source } from '../../core/spiffe/types.ts';
import type { EndpointAddress } from '../../core/workload/address.ts';
import { decodeX509SvidResponse, type X509SvidResponse } from '../../core/workload/proto.ts';
import {
  GrpcCode,
  type GrpcStatus,
  grpcCodeName,
  type WorkloadApiError,
  workloadApiError,
} from '../../core/workload/status.ts';
import {
  sameX509Context,
  sameX509SvidResponse,
  toX509Context,
} from '../../core/workload/x509-context.ts';
import {
  type Call,
  consoleLogger,
  resolveEndpointAddress,
  startCall,
  type WorkloadClientOptions,
  type WorkloadLogger,
} from './call.ts';

export {
  ENDPOINT_ENV,
  resolveEndpointAddress,
  statusFromSocketError,
  type WorkloadLogger,
} from './call.ts';

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

/** Environment variable holding the source's readiness timeout (a Go duration). */
export const SOURCE_TIMEOUT_ENV = 'SPIKE_SPIFFE_SOURCE_TIMEOUT';
const DEFAULT_TIMEOUT_MS = 30_000;

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
 * Opens a `FetchX509SVID` stream and returns a live X.509 source (docs/spiffe.md §1.4, §1.5).
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
