/**
 * Reconnection backoff for Workload API streams (spec/spiffe.md §1.4).
 *
 * Exponential from 1 s, doubling per failed attempt, capped at 30 s, with jitter so that many
 * workloads restarted together do not reconnect in lockstep after an agent restart. The jitter
 * takes up to 20 % off the nominal delay and never adds to it: the first retry waits 0.8–1 s,
 * a retry at the cap 24–30 s. The attempt counter is reset by every good message.
 */

/** Backoff tuning: the first nominal delay and the cap, in milliseconds. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** 1 s → 30 s (spec/spiffe.md §1.4). */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/** Share of the nominal delay that jitter may take away. */
export const BACKOFF_JITTER = 0.2;

/**
 * The delay before retry number `attempt` (0 for the first retry after a failure):
 * `min(maxMs, initialMs · 2^attempt)` minus up to 20 % jitter. `random` returns a value in [0, 1).
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
  // 2^attempt overflows to Infinity for huge attempts; min() then yields the cap.
  const nominal = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 64));
  return nominal * (1 - BACKOFF_JITTER * random());
}
