/**
 * Installing a root key (docs/spike-api.md §9): the one path by which a key reconstructed from
 * Keeper shares or restored by an operator becomes Nexus's key. It is checked against the stored
 * key-check value, split into a new generation, installed, and the new set is distributed.
 */
import { computeKcv } from '../../core/crypto/keys.ts';
import { SpikeError } from '../../core/errors.ts';
import { splitRootKey } from '../../core/shamir/shards.ts';
import type { LifecycleContext } from './context.ts';
import { distribute } from './distribution.ts';
import { type ShareSet, toShareSet } from './share-set.ts';

/** Marks the lifecycle ready and resolves `whenReady()`. */
export function becomeReady(ctx: LifecycleContext, source: string, set: ShareSet): void {
  ctx.phase = 'ready';
  ctx.log.info('root key installed; nexus is ready', { source, generation: set.generation });
  ctx.ready.resolve();
}

/**
 * Installs a key reconstructed from Keeper shares or restored by the operator: checks it
 * against the stored KCV, mints a new generation, installs it, and distributes the new set.
 * The caller zeroes `rootKey`.
 */
export function acquire(
  ctx: LifecycleContext,
  rootKey: Uint8Array,
  source: 'keepers' | 'restore',
): Promise<void> {
  return ctx.exclusive(async () => {
    if (ctx.stopped) throw new SpikeError('state_not_ready', 'nexus is stopping');
    if (ctx.keys.ready) {
      throw new SpikeError('state_already_initialized', 'a root key is already held');
    }
    const kcv = await computeKcv(rootKey);
    const stored = ctx.store.getKcv();
    if (stored !== undefined && stored !== kcv) {
      throw new SpikeError('crypto_cipher_verification_failed', 'key does not match the store');
    }
    const set = toShareSet(await splitRootKey(rootKey, ctx.n, ctx.t, kcv));
    if (stored === undefined) await ctx.store.setKcv(kcv);
    await ctx.keys.install(rootKey);
    distribute(ctx, set);
    becomeReady(ctx, source, set);
  });
}
