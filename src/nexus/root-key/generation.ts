/**
 * First boot (docs/spike-api.md §9 "Lifecycle"; no key-check record in the store): a fresh
 * 32-byte key from Web Crypto is split into n shares of a new generation and every Keeper is sent
 * its envelope; once t of them have acknowledged, the key-check value (KCV) is stored and the key
 * installed.
 *
 * Storing the KCV only after t Keepers hold the key is deliberate: a crash in between leaves no
 * KCV, so the next start simply boots afresh (nothing was ever encrypted under the lost key),
 * whereas a KCV without Keeper shares would leave a database that can never become ready.
 */
import { zero } from '../../core/bytes.ts';
import { generateRootKey } from '../../core/crypto/keys.ts';
import { splitRootKey } from '../../core/shamir/shards.ts';
import type { LifecycleContext } from './context.ts';
import { confirmedCount, distribute } from './distribution.ts';
import { becomeReady } from './install.ts';
import { type ShareSet, toShareSet } from './share-set.ts';

/** Resolves on the next Keeper acknowledgement or `wakeAll()`. */
function nextAck(ctx: LifecycleContext): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = () => {
      ctx.ackWaiters.delete(wake);
      ctx.wakers.delete(wake);
      resolve();
    };
    ctx.ackWaiters.add(wake);
    ctx.wakers.add(wake);
  });
}

/** Generates the root key, has t Keepers hold it, then stores the KCV and installs the key. */
export async function firstBoot(ctx: LifecycleContext): Promise<void> {
  const { keys, log, t } = ctx;
  ctx.phase = 'first-boot';
  log.info('no key-check record: first boot, generating the root key');
  const rootKey = generateRootKey();
  let set: ShareSet;
  try {
    set = toShareSet(await splitRootKey(rootKey, ctx.n, t));
    distribute(ctx, set);
    // Wait until t Keepers hold their share (see the module header for why before the KCV).
    while (!ctx.stopped && ctx.current === set && !keys.ready && confirmedCount(ctx) < t) {
      await nextAck(ctx);
    }
    await ctx.exclusive(async () => {
      if (ctx.stopped || keys.ready || ctx.current !== set) return; // restore won, or stopping
      await ctx.store.setKcv(set.kcv);
      await keys.install(rootKey);
      becomeReady(ctx, 'first-boot', set);
    });
  } finally {
    zero(rootKey);
  }
}
