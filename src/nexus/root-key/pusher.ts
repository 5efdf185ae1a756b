/**
 * One shard pusher among several replicas (docs/deployment.md "One shard pusher"). Replicas that
 * share a PostgreSQL database share one set of Keepers; were each to push the share generation it
 * minted, a Keeper (which keeps the current envelope and one before it) could end up with shares
 * of several generations, too few of any one for a later recovery. So only the holder of a lease
 * in the database (`ShardPusherLease`, a row renewed on the database clock) pushes, refills and
 * re-sends; every other replica recovers the key from the Keepers and keeps its own generation
 * only for `spike operator recover`.
 *
 * - The lease is held only by a replica that holds the key, or by the one that runs first boot
 *   (it takes the lease by force, under the bootstrap lock, before the key-check value exists, so
 *   no other replica can hold the key yet).
 * - A holder renews it every `renewMs`; it pushes only until `ttlMs - renewMs` after its last
 *   successful claim began, so a holder cut off from the database stops pushing before another
 *   replica can take the lease over.
 * - A replica that takes the lease over sends its own generation to every Keeper at once; the
 *   Keepers keep the one before it, so a recovery during the hand-over still finds t shares of
 *   one generation.
 *
 * Without a lease (SQLite, one process) the lifecycle always pushes.
 */
import type { ShardPusherLease } from '../store/index.ts';
import type { LifecycleContext } from './context.ts';
import { codeOf } from './share-set.ts';

/** How long a claim holds the lease on the database clock (default). */
const DEFAULT_TTL_MS = 6000;
/** How often the holder renews it and the others try to take it (default). */
const DEFAULT_RENEW_MS = 1500;

/** The lease and what this replica knows of it. */
export interface PusherState {
  readonly lease: ShardPusherLease;
  /** This lifecycle's holder id (random per process start). */
  readonly holder: string;
  readonly ttlMs: number;
  readonly renewMs: number;
  /** Mutable: local time (ms) until which this replica may push; 0 when it does not hold it. */
  until: number;
  /** Mutable: the last claim problem logged, so an outage is logged once. */
  lastProblem: string | undefined;
}

/** The pusher state for `createContext`, or `undefined` without a lease. */
export function pusherStateOf(
  lease: ShardPusherLease | undefined,
  timing: { ttlMs?: number; renewMs?: number } = {},
): PusherState | undefined {
  if (lease === undefined) return undefined;
  const ttlMs = timing.ttlMs ?? DEFAULT_TTL_MS;
  const renewMs = timing.renewMs ?? DEFAULT_RENEW_MS;
  if (!(renewMs > 0 && ttlMs > 2 * renewMs)) {
    throw new RangeError('the pusher lease must outlive two renewals');
  }
  const holder = crypto.randomUUID();
  return { lease, holder, ttlMs, renewMs, until: 0, lastProblem: undefined };
}

/** Whether this replica may send shards to the Keepers now. */
export function mayPush(ctx: LifecycleContext): boolean {
  const p = ctx.pusher;
  return p === undefined || Date.now() < p.until;
}

/** One claim; updates `until` and, on a change of holder, logs it and has every Keeper re-sent. */
async function claim(ctx: LifecycleContext, force: boolean): Promise<void> {
  const p = ctx.pusher;
  if (p === undefined) return;
  const wasPushing = mayPush(ctx);
  const startedAt = Date.now();
  let held: boolean;
  try {
    held = await p.lease.claim(p.holder, p.ttlMs, force);
  } catch (error) {
    p.until = 0;
    const problem = codeOf(error);
    if (p.lastProblem !== problem) {
      ctx.log.warn('shard pusher lease unavailable; not sending shards', { error: problem });
    }
    p.lastProblem = problem;
    return;
  }
  p.lastProblem = undefined;
  if (ctx.stopped) return;
  p.until = held ? startedAt + p.ttlMs - p.renewMs : 0;
  if (held && !wasPushing) {
    ctx.log.info('this replica sends the shards to the keepers', { force });
    for (const slot of ctx.slots) slot.confirmed = false;
    ctx.wakeAll();
  } else if (!held && wasPushing) {
    ctx.log.info('another replica sends the shards to the keepers');
  }
}

/**
 * First boot (under the bootstrap lock, no key-check value): takes the lease by force, so that
 * the replica generating the key is the one that pushes its shares.
 */
export async function claimForFirstBoot(ctx: LifecycleContext): Promise<void> {
  await claim(ctx, true);
}

/**
 * Renews or tries the lease every `renewMs` while this replica holds the key or boots first;
 * a replica without the key never holds it. Returns at once without a lease.
 */
export function startPusherLease(ctx: LifecycleContext): void {
  const p = ctx.pusher;
  if (p === undefined) return;
  void (async () => {
    while (!ctx.stopped) {
      if (ctx.keys.ready || ctx.phase === 'first-boot') await claim(ctx, false);
      if (ctx.stopped) break;
      await ctx.sleep(p.renewMs);
    }
  })();
}

/** On stop: gives the lease up so that another replica takes over at once (best effort). */
export async function releasePusherLease(ctx: LifecycleContext): Promise<void> {
  const p = ctx.pusher;
  if (p === undefined) return;
  const held = p.until > 0;
  p.until = 0;
  if (held) await p.lease.release(p.holder).catch(() => undefined);
}
