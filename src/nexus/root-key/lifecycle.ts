/**
 * The root-key lifecycle of a Nexus with the SQLite backend (docs/architecture.md "The flows that
 * matter", decision 8; docs/spike-api.md §9 "Lifecycle", "Recover", "Restore"). This file wires
 * the parts of this folder together:
 *
 * - **Generation** (./generation.ts, first boot without a key-check record): a fresh key, split
 *   into n shares, stored as its KCV only once t Keepers hold their share.
 * - **Recovery** (./recovery.ts, restart with a KCV): Keepers are asked for their shares until t
 *   of one generation give the stored KCV; bad shares are set aside, a wrong key never installed.
 * - **Sharding** (./distribution.ts, steady state): whenever the key is acquired a new generation
 *   is minted (./install.ts) and every Keeper is sent its envelope; a monitor refills a Keeper that
 *   restarted empty within seconds and re-sends to all every `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`.
 * - **Restore** (./restore.ts, break-glass): `recover()` hands out the envelopes, `restore()`
 *   collects operator shards and installs the key once it verifies.
 * - **Providers** (./providers.ts): where the app reads the derived keys from.
 *
 * Invariants: the raw root key exists only between its creation (or reconstruction) and its
 * installation, and is zeroed right after; the share set is kept as bytes and zeroed on `stop()`;
 * log lines carry Keeper slots, indexes, generation ids and error codes, never a key, share or KCV
 * of a rejected set. Key acquisition (first-boot commit, Keeper recovery, restore) is serialised,
 * so exactly one of them installs the key.
 */
import type { BackoffOptions } from '../../core/backoff.ts';
import { zero } from '../../core/bytes.ts';
import { SpikeError } from '../../core/errors.ts';
import type { NexusOperator } from '../app.ts';
import type { KeeperLink } from '../keeper-client.ts';
import type { NexusStore, ShardPusherLease } from '../store/index.ts';
import { createContext, type LifecycleLogger, type LifecyclePhase } from './context.ts';
import { firstBoot } from './generation.ts';
import type { MutableRootKeyProvider } from './providers.ts';
import {
  claimForFirstBoot,
  pusherStateOf,
  releasePusherLease,
  startPusherLease,
} from './pusher.ts';
import { recoverFromKeepers } from './recovery.ts';
import { createOperator } from './restore.ts';
import { codeOf } from './share-set.ts';

export interface KeyLifecycleOptions {
  /** Where the key-check value lives. */
  readonly store: Pick<NexusStore, 'getKcv' | 'setKcv'>;
  /** The provider the app reads its keys from; `install` makes Nexus ready. */
  readonly keys: Pick<MutableRootKeyProvider, 'install' | 'ready'>;
  /** The Keepers in `SPIKE_NEXUS_KEEPER_PEERS` order: `keepers[i].index === i + 1`. */
  readonly keepers: readonly KeeperLink[];
  /** `SPIKE_NEXUS_SHAMIR_SHARES` (n); must equal the number of Keepers. */
  readonly shares: number;
  /** `SPIKE_NEXUS_SHAMIR_THRESHOLD` (t), 2 ≤ t ≤ n ≤ 255. */
  readonly threshold: number;
  /** `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL` in milliseconds (default 5 min). */
  readonly updateIntervalMs?: number;
  /** How often each Keeper's `/ready` is probed for a refill (default 2 s). */
  readonly monitorIntervalMs?: number;
  /** Backoff between rounds of asking Keepers for shards (default 250 ms → 2 s). */
  readonly retry?: BackoffOptions;
  readonly log: LifecycleLogger;
  /**
   * Replicas sharing one database (NexusStore.withBootstrapLock): the "first boot or recovery"
   * decision and first boot itself run inside it, so exactly one replica generates the key and
   * the others find its key-check value and recover from the Keepers. Default: no lock.
   */
  readonly bootstrapLock?: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * Replicas sharing one database (NexusStore.shardPusherLease): only the replica holding this
   * lease sends shards to the Keepers (./pusher.ts). Default: this Nexus always pushes.
   */
  readonly shardPusherLease?: ShardPusherLease;
  /** The lease's duration and renewal period in milliseconds (defaults 6000 and 1500). */
  readonly pusherLeaseTiming?: { readonly ttlMs?: number; readonly renewMs?: number };
}

export interface KeyLifecycle {
  /** Break-glass hooks for `createNexusApp({ operator })` (docs/spike-api.md §9). */
  readonly operator: NexusOperator;
  /** Starts first boot or Keeper recovery in the background; returns at once. */
  start(): void;
  /** Resolves once a key is installed (from any source); rejects if stopped first. */
  whenReady(): Promise<void>;
  phase(): LifecyclePhase;
  /** Stops every loop, zeroes the share set and closes the Keeper connections. */
  stop(): Promise<void>;
}

const DEFAULT_UPDATE_INTERVAL_MS = 5 * 60_000;
const DEFAULT_MONITOR_INTERVAL_MS = 2000;
const DEFAULT_RETRY: BackoffOptions = { initialMs: 250, maxMs: 2000 };

/**
 * Creates the key lifecycle of a SQLite-backed Nexus (docs/spike-api.md §9; see the module header).
 * Nothing happens until `start()`; the operator hooks work from the moment it is created.
 *
 * @throws RangeError when the Keeper list does not match n, or n, t are out of range.
 */
export function createKeyLifecycle(options: KeyLifecycleOptions): KeyLifecycle {
  const n = options.shares;
  const t = options.threshold;
  if (!Number.isInteger(n) || !Number.isInteger(t) || t < 2 || n < t || n > 255) {
    throw new RangeError('shares and threshold must satisfy 2 <= t <= n <= 255');
  }
  if (options.keepers.length !== n) {
    throw new RangeError('the number of Keepers must equal the number of shares');
  }
  options.keepers.forEach((link, i) => {
    if (link.index !== i + 1) throw new RangeError('Keeper slots must be numbered 1..n in order');
  });
  const ctx = createContext({
    store: options.store,
    keys: options.keys,
    log: options.log,
    n,
    t,
    keepers: options.keepers,
    updateIntervalMs: options.updateIntervalMs ?? DEFAULT_UPDATE_INTERVAL_MS,
    monitorIntervalMs: options.monitorIntervalMs ?? DEFAULT_MONITOR_INTERVAL_MS,
    retry: options.retry ?? DEFAULT_RETRY,
    pusher: pusherStateOf(options.shardPusherLease, options.pusherLeaseTiming),
  });

  return {
    operator: createOperator(ctx),

    start() {
      if (ctx.phase !== 'idle') return;
      const locked = options.bootstrapLock ?? ((fn) => fn());
      startPusherLease(ctx);
      const run = locked(async () => {
        const storedKcv = ctx.store.getKcv();
        if (storedKcv === undefined) {
          await claimForFirstBoot(ctx);
          await firstBoot(ctx);
        }
        return storedKcv;
      }).then((storedKcv) =>
        storedKcv === undefined ? undefined : recoverFromKeepers(ctx, storedKcv),
      );
      run.catch((error: unknown) => {
        if (ctx.stopped) return;
        ctx.log.error('key lifecycle failed', { error: codeOf(error) });
      });
    },

    whenReady: () => ctx.ready.promise,

    phase: () => ctx.phase,

    async stop() {
      if (ctx.stopped) return;
      ctx.stopped = true;
      ctx.phase = 'stopped';
      ctx.ready.reject(new SpikeError('state_not_ready', 'stopped'));
      ctx.wakeAll(); // every ack waiter is also a sleeper, so this wakes first boot too
      ctx.collector?.clear();
      ctx.collector = undefined;
      if (ctx.current !== undefined) zero(...ctx.current.shares);
      await releasePusherLease(ctx);
      await Promise.allSettled(options.keepers.map((link) => link.close()));
    },
  };
}
