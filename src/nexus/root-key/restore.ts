/**
 * Break-glass (docs/spike-api.md §9 "Recover", "Restore"): `recover()` hands out the current
 * generation's envelopes; `restore()` feeds operator shards to a `RestoreCollector` and installs
 * the key once it verifies, then mints a new generation and pushes it. A shard whose KCV differs
 * from the stored one (another deployment) is refused before it is collected, so it cannot
 * disturb the collected set. Restore never replaces a held key (`state_already_initialized`).
 */
import { zero } from '../../core/bytes.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import {
  RestoreCollector,
  type RestoreStatus,
  type ShardEnvelope,
} from '../../core/shamir/shards.ts';
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

/** Adds one operator shard; installs the key once the collected shards give it. */
async function restore(ctx: LifecycleContext, envelope: ShardEnvelope): Promise<RestoreStatus> {
  const { log } = ctx;
  if (ctx.keys.ready) {
    throw new SpikeError('state_already_initialized', 'a root key is already held');
  }
  const stored = ctx.store.getKcv();
  if (stored !== undefined && envelope.kcv !== stored) {
    // Refused before collection, so a foreign shard never disturbs the collected set.
    log.info('restore: shard refused', { reason: 'shard belongs to another key' });
    throw new SpikeError(
      'crypto_cipher_verification_failed',
      'shard belongs to a different key than the stored one',
    );
  }
  ctx.collector ??= new RestoreCollector(ctx.t, stored);
  const used = ctx.collector;
  let step: Awaited<ReturnType<RestoreCollector['add']>>;
  try {
    step = await used.add(envelope);
  } catch (error) {
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
      collected: step.status.collected,
      remaining: step.status.remaining,
    });
    return step.status;
  }
  const rootKey = step.rootKey;
  if (ctx.collector === used) ctx.collector = undefined;
  try {
    await acquire(ctx, rootKey, 'restore');
  } finally {
    zero(rootKey);
  }
  return step.status;
}

/** The break-glass hooks for `createNexusApp({ operator })`. */
export function createOperator(ctx: LifecycleContext): NexusOperator {
  return {
    recover: () => recover(ctx),
    restore: (envelope) => restore(ctx, envelope),
  };
}
