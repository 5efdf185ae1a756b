/**
 * The state the parts of the root-key lifecycle share (./lifecycle.ts): options, the Keeper
 * slots, the share set being distributed, and the small async tools (interruptible sleep, the
 * one-at-a-time lock for key acquisition, the "ready" promise).
 */
import type { BackoffOptions } from '../../core/backoff.ts';
import type { Logger } from '../../core/log.ts';
import type { RestoreCollector } from '../../core/shamir/restore-collector.ts';
import type { KeeperLink } from '../keeper-client.ts';
import type { NexusStore } from '../store/index.ts';
import type { MutableRootKeyProvider } from './providers.ts';
import type { PusherState } from './pusher.ts';
import type { ShareSet } from './share-set.ts';

/** What the lifecycle logs through; fields are slots, indexes, generation ids and codes only. */
export type LifecycleLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/** Where the lifecycle is. */
export type LifecyclePhase = 'idle' | 'first-boot' | 'recovering' | 'ready' | 'stopped';

/** A Keeper slot as the monitor tracks it. */
export interface Slot {
  readonly link: KeeperLink;
  /** The current set was acknowledged and nothing since suggests the Keeper lost it. */
  confirmed: boolean;
  /** When the current set was last acknowledged (epoch ms). */
  pushedAt: number;
  /** The last problem logged, so that a Keeper that stays down is not logged every round. */
  lastProblem?: string;
}

/** The shared state of one lifecycle. Fields marked mutable change as it runs. */
export interface LifecycleContext {
  readonly store: Pick<NexusStore, 'getKcv' | 'setKcv'>;
  readonly keys: Pick<MutableRootKeyProvider, 'install' | 'ready'>;
  readonly log: LifecycleLogger;
  /** Shares (n) and threshold (t). */
  readonly n: number;
  readonly t: number;
  readonly keepers: readonly KeeperLink[];
  /** `slots[i]` is Keeper `i + 1`. */
  readonly slots: readonly Slot[];
  readonly updateIntervalMs: number;
  readonly monitorIntervalMs: number;
  readonly retry: BackoffOptions;
  /** Replicas: the lease that picks the one pusher (./pusher.ts); `undefined` = always push. */
  readonly pusher: PusherState | undefined;
  /** Mutable: where the lifecycle is. */
  phase: LifecyclePhase;
  /** Mutable: set once by `stop()`. */
  stopped: boolean;
  /** Mutable: whether the refill monitor runs. */
  monitoring: boolean;
  /** Mutable: the share set being distributed (first boot: before the key is installed). */
  current: ShareSet | undefined;
  /** Mutable: the operator shards collected by `restore` so far. */
  collector: RestoreCollector | undefined;
  /** Waiters for "t Keepers acknowledged the current set" (first boot). */
  readonly ackWaiters: Set<() => void>;
  /** Sleepers; `wakeAll()` wakes every one. */
  readonly wakers: Set<() => void>;
  /** Sleeps `ms`, or less when `wakeAll()` runs. */
  sleep(ms: number): Promise<void>;
  wakeAll(): void;
  /** Runs key acquisitions one at a time (first-boot commit, Keeper recovery, restore). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Resolves once a key is installed; rejected by `stop()`. */
  readonly ready: {
    readonly promise: Promise<void>;
    resolve(): void;
    reject(error: unknown): void;
  };
}

/** The context's fixed part, as the lifecycle options give it. */
export type ContextInit = Pick<
  LifecycleContext,
  | 'store'
  | 'keys'
  | 'log'
  | 'n'
  | 't'
  | 'keepers'
  | 'updateIntervalMs'
  | 'monitorIntervalMs'
  | 'retry'
  | 'pusher'
>;

/** A fresh context: idle, no share set, every slot unconfirmed. */
export function createContext(init: ContextInit): LifecycleContext {
  const wakers = new Set<() => void>();
  let acquisition: Promise<unknown> = Promise.resolve();
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return {
    ...init,
    slots: init.keepers.map((link) => ({ link, confirmed: false, pushedAt: 0 })),
    phase: 'idle',
    stopped: false,
    monitoring: false,
    current: undefined,
    collector: undefined,
    ackWaiters: new Set(),
    wakers,
    sleep(ms) {
      return new Promise((done) => {
        const wake = () => {
          clearTimeout(timer);
          wakers.delete(wake);
          done();
        };
        const timer = setTimeout(wake, ms);
        wakers.add(wake);
      });
    },
    wakeAll() {
      for (const wake of [...wakers]) wake();
    },
    exclusive(fn) {
      const run = acquisition.then(fn);
      acquisition = run.catch(() => undefined);
      return run;
    },
    ready: { promise, resolve, reject },
  };
}
