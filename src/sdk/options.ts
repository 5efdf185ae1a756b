/**
 * How the SDK resolves its settings (docs/spike-api.md §10): the Nexus URLs, the per-call timeout
 * and the retry policy, from explicit options first and the environment second; and the one
 * request loop both clients share (./client.ts over mTLS, ./edge.ts over `fetch`): retries with
 * backoff and failover across the URLs (§10.2).
 */
import { httpErrorOf } from '../api/v1/errors.ts';
import { backoffDelay } from '../core/backoff.ts';
import { parseGoDuration } from '../core/duration.ts';
import { SpikeError } from '../core/errors.ts';
import { SpikeApiError } from './errors.ts';
import type { ClientOptions, RetryOptions } from './types.ts';

/** Environment variable naming Nexus (docs/spike-api.md §10). */
const NEXUS_API_URL_ENV = 'SPIKE_NEXUS_API_URL';
/** Nexus's address when `SPIKE_NEXUS_API_URL` is unset (docs/spike-api.md §10). */
export const DEFAULT_NEXUS_API_URL = 'https://localhost:8553';
const CLIENT_TIMEOUT_ENV = 'SPIKE_HTTP_CLIENT_TIMEOUT';
const DEFAULT_TIMEOUT_MS = 60_000;

export const DEFAULT_RETRY: RetryOptions = Object.freeze({
  attempts: 5,
  initialMs: 200,
  maxMs: 3000,
});

/**
 * The Nexus URLs, in order: `explicit` (one URL, a comma-separated list or an array), else
 * `SPIKE_NEXUS_API_URL` (comma-separated), else the default. Every entry must be an `https://`
 * URL; entries are trimmed and reduced to their origin; an empty entry or a repeated origin is
 * refused (docs/spike-api.md §10).
 *
 * @throws SpikeError `config_invalid` naming the variable.
 */
export function resolveApiUrls(explicit: string | readonly string[] | undefined): string[] {
  const fromEnv = process.env[NEXUS_API_URL_ENV];
  const raw =
    explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_NEXUS_API_URL);
  const entries = typeof raw === 'string' ? raw.split(',') : [...raw];
  if (entries.length === 0) {
    throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} names no URL`);
  }
  const origins: string[] = [];
  for (const entry of entries) {
    if (typeof entry !== 'string' || entry.trim() === '') {
      throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} has an empty entry`);
    }
    let url: URL;
    try {
      url = new URL(entry.trim());
    } catch {
      throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} is not a valid URL`);
    }
    if (url.protocol !== 'https:') {
      throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} must be an https:// URL`);
    }
    if (origins.includes(url.origin)) {
      throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} names ${url.origin} twice`);
    }
    origins.push(url.origin);
  }
  return origins;
}

export function resolveTimeout(explicit: number | undefined): number {
  if (explicit !== undefined) {
    if (!(explicit > 0)) throw new RangeError('timeoutMs must be positive');
    return explicit;
  }
  const fromEnv = process.env[CLIENT_TIMEOUT_ENV];
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_TIMEOUT_MS;
  try {
    const ms = parseGoDuration(fromEnv);
    // §10: invalid or ≤ 0 values fall back to the default.
    return ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
  } catch {
    return DEFAULT_TIMEOUT_MS;
  }
}

export function resolveRetry(option: ClientOptions['retry']): RetryOptions {
  if (option === false) return { ...DEFAULT_RETRY, attempts: 1 };
  const retry = { ...DEFAULT_RETRY, ...option };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) {
    throw new RangeError('retry.attempts must be an integer >= 1');
  }
  if (!(retry.initialMs >= 0) || !(retry.maxMs >= retry.initialMs)) {
    throw new RangeError('retry delays must satisfy 0 <= initialMs <= maxMs');
  }
  return retry;
}

/** Delay before try `attempt + 1`: the core backoff with "equal jitter" (½ to 1 ×). */
function retryDelay(retry: RetryOptions, attempt: number): number {
  if (retry.initialMs === 0) return 0;
  return backoffDelay(attempt - 1, { initialMs: retry.initialMs, maxMs: retry.maxMs, jitter: 0.5 });
}

/** Waits `ms` between retries, or rejects with the signal's reason as soon as it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The status of `state_not_ready` and `server_busy`: Nexus refused before doing anything. */
const NOT_READY_STATUS = httpErrorOf('state_not_ready').status;

/** The URLs a client sends to, and the one that answered last (where the next call starts). */
export interface Replicas {
  readonly urls: readonly string[];
  preferred: number;
}

/** How the transport judges an error its `send` threw. */
export interface TryFailure {
  /** What the caller sees if no other try succeeds. */
  readonly error: SpikeApiError;
  /** No answer arrived (refused, reset, timeout); anything else (a rejected server identity) is final. */
  readonly connection: boolean;
  /** The request provably never left (no connection, stream refused): safe to send anywhere. */
  readonly neverSent: boolean;
}

/** One call for {@link sendWithFailover}. */
export interface FailoverCall<R extends { readonly status: number }> {
  readonly retry: RetryOptions;
  /** Safe to send again after a failure that may have reached Nexus (a read, an idempotent write). */
  readonly repeatable: boolean;
  readonly signal?: AbortSignal | undefined;
  /** One try at one URL (the transport's own timeout applies). */
  send(url: string): Promise<R>;
  judge(error: unknown): TryFailure;
}

function maybeApplied(error: SpikeApiError): SpikeApiError {
  return new SpikeApiError(
    error.code,
    'lost the connection to SPIKE Nexus after sending the request (it may have been applied)',
    error.status,
    { cause: error, maybeApplied: true },
  );
}

/**
 * Sends one call with the retry policy (docs/spike-api.md §10.2): up to
 * `retry.attempts` rounds; a round tries every URL once, starting at the one that answered last;
 * a connection failure or a 503 moves on to the next URL at once, and the core backoff waits
 * between rounds. Any other answer (2xx, 4xx, 5xx but 503) ends the call and makes its URL the
 * preferred one. A try that failed after the request may have reached Nexus ends a call that is
 * not `repeatable`, with `maybeApplied` set. After the last round: the last 503 answer if there
 * was one, else the last failure. An abort stops everything with `signal.reason`.
 */
export async function sendWithFailover<R extends { readonly status: number }>(
  replicas: Replicas,
  call: FailoverCall<R>,
): Promise<R> {
  const { retry, repeatable, signal } = call;
  const n = replicas.urls.length;
  let notReady: R | undefined;
  let failure: SpikeApiError | undefined;
  let sent = false;
  for (let round = 1; round <= retry.attempts; round++) {
    if (round > 1) await sleep(retryDelay(retry, round - 1), signal);
    const start = replicas.preferred;
    for (let k = 0; k < n; k++) {
      signal?.throwIfAborted();
      const index = (start + k) % n;
      let answer: R;
      try {
        answer = await call.send(replicas.urls[index]!);
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        const judged = call.judge(error);
        if (!judged.connection) throw judged.error;
        if (!judged.neverSent) {
          sent = true;
          if (!repeatable) throw maybeApplied(judged.error);
        }
        failure = judged.error;
        continue;
      }
      if (answer.status === NOT_READY_STATUS) {
        notReady = answer;
        continue;
      }
      replicas.preferred = index;
      return answer;
    }
  }
  if (notReady !== undefined) return notReady;
  if (failure === undefined) throw new RangeError('no URL to send to');
  throw sent ? maybeApplied(failure) : failure;
}
