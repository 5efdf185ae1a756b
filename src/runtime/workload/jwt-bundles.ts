/**
 * The JWT bundle source: a `FetchJWTBundles` stream kept open for the life of the process
 * (docs/spiffe.md §1.1, §6), so that a JWT-SVID validator always holds the current JWT
 * authorities of every trust domain, rotations included.
 *
 * Status handling follows the X.509 source (./client.ts, docs/spiffe.md §1.4): reconnect at once
 * after a server OK (not in a tight loop), no retry after InvalidArgument or Unimplemented,
 * jittered backoff otherwise. A message that fails decoding ends the stream as INTERNAL; one whose
 * JWKS is invalid is reported and discarded, the previous bundles staying. PermissionDenied
 * withdraws the bundles (fail closed: nothing verifies until new ones arrive). Entries whose key
 * is not a trust domain are skipped.
 */
import { backoffDelay, DEFAULT_BACKOFF } from '../../core/backoff.ts';
import { SpikeError } from '../../core/errors.ts';
import { parseTrustDomain } from '../../core/spiffe/id.ts';
import { type JwtBundles, parseJwtBundles } from '../../core/spiffe/jwtsvid.ts';
import { decodeJwtBundlesResponse } from '../../core/workload/proto.ts';
import { GrpcCode, type GrpcStatus, workloadApiError } from '../../core/workload/status.ts';
import {
  type Call,
  consoleLogger,
  resolveEndpointAddress,
  startCall,
  type WorkloadClientOptions,
} from './call.ts';

/** The current JWT bundles, followed across rotations. */
export interface JwtBundleSource {
  /** Resolves with the first bundles (rejects after `timeoutMs`, or on a fatal status). */
  ready(): Promise<JwtBundles>;
  /** The current bundles, or `undefined` before the first or after a withdrawal. */
  current(): JwtBundles | undefined;
  /** Called with every new state; returns an unsubscribe function. */
  onUpdate(listener: (bundles: JwtBundles | undefined) => void): () => void;
  close(): Promise<void>;
}

export interface JwtBundleSourceOptions extends WorkloadClientOptions {
  /** How long `ready()` waits for the first bundles; default 30 s. */
  readonly timeoutMs?: number;
}

function keepTrustDomains(raw: ReadonlyMap<string, Uint8Array>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [key, value] of raw) {
    try {
      out.set(parseTrustDomain(key), value);
    } catch {
      // not a trust domain: skipped
    }
  }
  return out;
}

/** The callers of `ready()` waiting for the first bundles, each rejected after `timeoutMs`. */
function createWaiters(timeoutMs: number) {
  const waiters = new Set<{ resolve: (b: JwtBundles) => void; reject: (e: Error) => void }>();
  return {
    wait(): Promise<JwtBundles> {
      return new Promise<JwtBundles>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new SpikeError('workload_api_timeout', `no JWT bundles within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = {
          resolve: (b: JwtBundles) => {
            clearTimeout(timer);
            resolve(b);
          },
          reject: (e: Error) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        waiters.add(waiter);
      });
    },
    resolveAll(bundles: JwtBundles): void {
      for (const w of waiters) w.resolve(bundles);
      waiters.clear();
    },
    rejectAll(error: Error): void {
      for (const w of waiters) w.reject(error);
      waiters.clear();
    },
  };
}

/** Tells every listener; a failing listener must not stop the stream. */
function notifyAll<T>(listeners: ReadonlySet<(value: T) => void>, value: T): void {
  for (const listener of [...listeners]) {
    try {
      listener(value);
    } catch {
      // ignored, see above
    }
  }
}

/** Opens the `FetchJWTBundles` stream (see the module comment). */
export function createJwtBundleSource(options: JwtBundleSourceOptions = {}): JwtBundleSource {
  const endpoint = resolveEndpointAddress(options.address);
  const logger = options.logger ?? consoleLogger;
  const timeoutMs = options.timeoutMs ?? 30_000;
  let bundles: JwtBundles | undefined;
  let closed = false;
  let fatal: Error | undefined;
  let call: Call | undefined;
  let attempt = 0;
  let messagesOnCall = 0;
  let immediate = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  const listeners = new Set<(bundles: JwtBundles | undefined) => void>();
  const waiters = createWaiters(timeoutMs);

  const apply = (next: JwtBundles | undefined) => {
    bundles = next;
    if (next !== undefined) waiters.resolveAll(next);
    notifyAll(listeners, next);
  };

  const retry = () => {
    if (closed) return;
    const delay = backoffDelay(attempt++, DEFAULT_BACKOFF);
    retryTimer = setTimeout(connect, delay);
  };

  const onMessage = (bytes: Uint8Array, self: Call) => {
    if (closed || self !== call) return;
    messagesOnCall++;
    let raw: ReadonlyMap<string, Uint8Array>;
    try {
      raw = decodeJwtBundlesResponse(bytes).bundles;
    } catch (error) {
      self.cancel({ code: GrpcCode.INTERNAL, message: String(error) });
      return;
    }
    try {
      const next = parseJwtBundles(keepTrustDomains(raw));
      attempt = 0;
      immediate = 0;
      apply(next);
    } catch (error) {
      logger.warn(
        `discarded a JWTBundlesResponse that failed validation: ${(error as Error).message}`,
      );
    }
  };

  const onEnd = (status: GrpcStatus, self: Call) => {
    if (self === call) call = undefined;
    if (closed) return;
    switch (status.code) {
      case GrpcCode.OK:
        // At once after a stream that carried messages (or a first empty one); else backoff.
        if (messagesOnCall === 0 && immediate > 0) return retry();
        immediate++;
        return connect();
      case GrpcCode.INVALID_ARGUMENT:
      case GrpcCode.UNIMPLEMENTED:
        fatal = workloadApiError(status);
        logger.error(`Workload API refused FetchJWTBundles: ${status.message}; not retrying`);
        waiters.rejectAll(fatal);
        return;
      case GrpcCode.PERMISSION_DENIED:
        if (bundles !== undefined) {
          logger.error('Workload API withdrew the JWT bundles (PermissionDenied)');
          apply(undefined);
        }
        retry();
        return;
      default:
        logger.warn(`FetchJWTBundles stream failed (${status.message}); retrying`);
        retry();
    }
  };

  function connect(): void {
    if (closed) return;
    retryTimer = undefined;
    messagesOnCall = 0;
    const self: Call = startCall(
      endpoint,
      'FetchJWTBundles',
      new Uint8Array(0),
      { onMessage: (m) => onMessage(m, self), onEnd: (s) => onEnd(s, self) },
      {},
    );
    call = self;
  }

  connect();

  return {
    ready() {
      if (bundles !== undefined) return Promise.resolve(bundles);
      if (fatal !== undefined) return Promise.reject(fatal);
      if (closed) return Promise.reject(new SpikeError('workload_api_error', 'source closed'));
      return waiters.wait();
    },
    current: () => bundles,
    onUpdate(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      waiters.rejectAll(new SpikeError('workload_api_error', 'source closed'));
      listeners.clear();
      const open = call;
      call = undefined;
      open?.cancel();
      await open?.closed;
    },
  };
}
