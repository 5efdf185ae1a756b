/**
 * The one retry backoff: exponential, capped, with jitter taken off the nominal delay so that
 * many clients restarted together do not retry in lockstep.
 *
 * Users: Workload API stream reconnection (docs/spiffe.md §1.4: from 1 s, doubling per failed
 * attempt, capped at 30 s, jitter up to 20 % off, so the first retry waits 0.8–1 s and a retry at
 * the cap 24–30 s; the attempt counter is reset by every good message), the Nexus asking Keepers
 * for shards (src/nexus/root-key/recovery.ts) and the SDK's request retries (src/sdk/client.ts,
 * "equal jitter": half of the delay may go). Jitter never adds to the nominal delay.
 *
 * Portable: no runtime APIs.
 */

/** Backoff tuning: the first nominal delay and the cap in milliseconds, and the jitter share. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Share of the nominal delay that jitter may take away, in [0, 1]; default {@link BACKOFF_JITTER}. */
  readonly jitter?: number;
}

/** 1 s → 30 s (docs/spiffe.md §1.4). */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/** Default share of the nominal delay that jitter may take away (docs/spiffe.md §1.4). */
export const BACKOFF_JITTER = 0.2;

/**
 * The delay before retry number `attempt` (0 for the first retry after a failure):
 * `min(maxMs, initialMs · 2^attempt)` minus up to `jitter` (20 %) of it. `random` returns a value
 * in [0, 1).
 *
 * @throws RangeError for a negative or fractional attempt, `initialMs ≤ 0`, `maxMs < initialMs`
 *   or a jitter outside [0, 1].
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError('attempt must be ≥ 0');
  if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
    throw new RangeError('backoff needs 0 < initialMs ≤ maxMs');
  }
  const jitter = options.jitter ?? BACKOFF_JITTER;
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError('backoff jitter must be in [0, 1]');
  // 2^attempt overflows to Infinity for huge attempts; min() then yields the cap.
  const nominal = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 64));
  return nominal * (1 - jitter * random());
}
