/**
 * Sharding in steady state (docs/spike-api.md §9 "Lifecycle"): every Keeper is sent its envelope
 * of the current share set; a cheap monitor probes each Keeper's `GET /ready` every few seconds
 * and refills one that answers "none held", and the set is re-sent to all Keepers every
 * `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`. With several replicas only the holder of the pusher
 * lease does any of this (./pusher.ts).
 */
import { zero } from '../../core/bytes.ts';
import type { LifecycleContext, Slot } from './context.ts';
import { mayPush } from './pusher.ts';
import { codeOf, envelopeOf, type ShareSet } from './share-set.ts';

/** Logs a Keeper's problem at WARN the first time, at DEBUG while it stays the same. */
export function noteProblem(
  ctx: LifecycleContext,
  slot: Slot,
  problem: string,
  message: string,
): void {
  if (slot.lastProblem === problem) {
    ctx.log.debug(message, { keeper: slot.link.index, error: problem });
    return;
  }
  slot.lastProblem = problem;
  ctx.log.warn(message, { keeper: slot.link.index, error: problem });
}

async function push(ctx: LifecycleContext, slot: Slot, set: ShareSet): Promise<void> {
  const { log } = ctx;
  await slot.link.contribute(envelopeOf(set, slot.link.index));
  if (ctx.current !== set) return; // a newer set replaced this one meanwhile
  const wasConfirmed = slot.confirmed;
  slot.confirmed = true;
  slot.pushedAt = Date.now();
  if (slot.lastProblem !== undefined)
    log.info('keeper reachable again', { keeper: slot.link.index });
  slot.lastProblem = undefined;
  const fields = { keeper: slot.link.index, generation: set.generation };
  if (wasConfirmed) log.debug('shard sent to keeper', fields);
  else log.info('shard sent to keeper', fields);
  for (const wake of [...ctx.ackWaiters]) wake();
}

/** One monitor step for one Keeper: push when needed, else probe and refill if empty. */
async function tend(ctx: LifecycleContext, slot: Slot): Promise<void> {
  const set = ctx.current;
  if (set === undefined || !mayPush(ctx)) return; // another replica pushes (./pusher.ts)
  try {
    if (!slot.confirmed || Date.now() - slot.pushedAt >= ctx.updateIntervalMs) {
      await push(ctx, slot, set);
      return;
    }
    if (!(await slot.link.holding())) {
      ctx.log.info('keeper holds no shard; refilling', { keeper: slot.link.index });
      slot.confirmed = false;
      await push(ctx, slot, set);
    }
  } catch (error) {
    slot.confirmed = false;
    noteProblem(ctx, slot, codeOf(error), 'keeper did not take its shard; will retry');
  }
}

function startMonitor(ctx: LifecycleContext): void {
  if (ctx.monitoring) return;
  ctx.monitoring = true;
  for (const slot of ctx.slots) {
    void (async () => {
      while (!ctx.stopped) {
        await tend(ctx, slot);
        if (ctx.stopped) break;
        await ctx.sleep(ctx.monitorIntervalMs);
      }
    })();
  }
}

/** Makes `set` the one to distribute and has every Keeper sent its envelope at once. */
export function distribute(ctx: LifecycleContext, set: ShareSet): void {
  const previous = ctx.current;
  ctx.current = set;
  if (previous !== undefined && previous !== set) zero(...previous.shares);
  for (const slot of ctx.slots) slot.confirmed = false;
  startMonitor(ctx);
  ctx.wakeAll();
}

/** How many Keepers acknowledged the current set. */
export function confirmedCount(ctx: LifecycleContext): number {
  return ctx.slots.filter((s) => s.confirmed).length;
}
