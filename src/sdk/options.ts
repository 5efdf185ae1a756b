/**
 * How the SDK resolves its settings (docs/spike-api.md §10): the Nexus URL, the per-call timeout and
 * the retry policy, from explicit options first and the environment second.
 */
import { backoffDelay } from '../core/backoff.ts';
import { parseGoDuration } from '../core/duration.ts';
import { SpikeError } from '../core/errors.ts';
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

export function resolveApiUrl(explicit: string | undefined): string {
  const fromEnv = process.env[NEXUS_API_URL_ENV];
  const raw =
    explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_NEXUS_API_URL);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} is not a valid URL`);
  }
  if (url.protocol !== 'https:') {
    throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} must be an https:// URL`);
  }
  return url.origin;
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
export function retryDelay(retry: RetryOptions, attempt: number): number {
  if (retry.initialMs === 0) return 0;
  return backoffDelay(attempt - 1, { initialMs: retry.initialMs, maxMs: retry.maxMs, jitter: 0.5 });
}

/** Waits `ms` between retries, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
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
