/**
 * Break-glass (docs/spike-api.md §9 "Recover", "Restore"): `recover()` hands out the current
 * generation's envelopes; `restore()` feeds operator shards to a `RestoreCollector` and installs
 * the key once it verifies, then mints a new generation and pushes it; `reset()` discards (and
 * zeroes) the collected shards. A shard whose KCV differs from the stored one (another deployment)
 * is refused before it is collected, so it cannot disturb the collected set. Restore never
 * replaces a held key (`state_already_initialized`).
 *
 * Concurrent calls at the threshold: the call that completes the set installs the key; a call
 * that arrives while that install runs waits for it and then answers the truth (409 once the key
 * is held), never a fresh `collected` count.
 */
import { fromHex, zero } from '../../core/bytes.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import {
  RestoreCollector,
  RestoreRefusal,
  type RestoreStatus,
} from '../../core/shamir/restore-collector.ts';
import type { ShardEnvelope } from '../../core/shamir/shards.ts';
import type { NexusOperator } from '../app.ts';
import type { LifecycleContext } from './context.ts';
import { acquire } from './install.ts';
import { envelopeOf } from './share-set.ts';

/** The current generation's envelopes, one per share; `state_not_ready` without a key. */
async function recover(ctx: LifecycleContext): Promise<readonly ShardEnvelope[]> {
  const set = ctx.current;
  if (ctx.stopped || !ctx.keys.ready || set === undefined) {
    throw new SpikeError('state_not_ready', 'no root key yet');
  }
  ctx.log.info('recovery shards handed out', { generation: set.generation, count: ctx.n });
  return Array.from({ length: ctx.n }, (_, i) => envelopeOf(set, i + 1));
}

function alreadyHeld(): SpikeError {
  return new SpikeError('state_already_initialized', 'a root key is already held');
}

/** The break-glass state of one lifecycle: the collector in use and a running install. */
interface RestoreState {
  /** The install started by the call that completed a set, while it runs. */
  installing?: Promise<void>;
}

/** Adds one operator shard; installs the key once the collected shards give it. */
async function restore(
  ctx: LifecycleContext,
  state: RestoreState,
  envelope: ShardEnvelope,
): Promise<RestoreStatus> {
  const { log } = ctx;
  // A set completed by another call is being installed: its outcome decides this answer.
  if (state.installing !== undefined) await state.installing.catch(() => undefined);
  if (ctx.keys.ready) throw alreadyHeld();
  const stored = ctx.store.getKcv();
  ctx.collector ??= new RestoreCollector(ctx.t, stored);
  const used = ctx.collector;
  if (stored !== undefined && envelope.kcv !== stored) {
    // Refused before collection, so a foreign shard never disturbs the collected set.
    log.info('restore: shard refused', { reason: 'shard belongs to another key' });
    throw new RestoreRefusal(
      'shard belongs to a different key than the stored one',
      used.status(),
      'crypto_cipher_verification_failed',
    );
  }
  let step: Awaited<ReturnType<RestoreCollector['add']>>;
  try {
    step = await used.add(envelope, fromHex(envelope.shard));
  } catch (error) {
    if (isSpikeError(error) && error.code === 'state_already_initialized') {
      // Another call completed this set: its install decides (409, or a fresh collection).
      await state.installing?.catch(() => undefined);
      if (ctx.keys.ready) throw alreadyHeld();
      if (ctx.collector === used) ctx.collector = undefined;
      return restore(ctx, state, envelope);
    }
    if (isSpikeError(error) && error.code === 'crypto_cipher_verification_failed') {
      log.warn('restore: shards do not give the stored key; collected shards discarded');
      if (ctx.collector === used) ctx.collector = undefined;
    } else {
      log.info('restore: shard refused', {
        reason: isSpikeError(error) ? error.message : 'invalid shard',
      });
    }
    throw error;
  }
  if (!step.status.restored || step.rootKey === undefined) {
    log.info('restore: shard accepted', {
      generation: step.status.generation,
      collected: step.status.collected,
      remaining: step.status.remaining,
    });
    return step.status;
  }
  const rootKey = step.rootKey;
  if (ctx.collector === used) ctx.collector = undefined;
  const installing = acquire(ctx, rootKey, 'restore').finally(() => zero(rootKey));
  state.installing = installing;
  try {
    await installing;
  } finally {
    if (state.installing === installing) state.installing = undefined;
  }
  return step.status;
}

/** Discards every collected shard (they are zeroed); 409 once a key is held. */
function reset(ctx: LifecycleContext): RestoreStatus {
  if (ctx.keys.ready) throw alreadyHeld();
  const status = ctx.collector?.clear() ?? new RestoreCollector(ctx.t).status();
  ctx.collector = undefined;
  ctx.log.info('restore: collected shards discarded by the operator');
  return status;
}

/** The break-glass hooks for `createNexusApp({ operator })`. */
export function createOperator(ctx: LifecycleContext): NexusOperator {
  const state: RestoreState = {};
  return {
    recover: () => recover(ctx),
    restore: (envelope) => restore(ctx, state, envelope),
    reset: async () => reset(ctx),
  };
}
