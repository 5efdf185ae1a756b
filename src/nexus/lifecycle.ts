/**
 * The root-key lifecycle of a Nexus with the SQLite backend (ARCHITECTURE.md "The flows that
 * matter", decision 8; spec/spike-api.md §9 "Lifecycle", "Recover", "Restore").
 *
 * - **First boot** (no key-check record in the store): a fresh 32-byte key from Web Crypto is
 *   split into n shares of a new generation; every Keeper is sent its envelope, and once t of
 *   them have acknowledged, the key-check value (KCV) is stored and the key installed. Storing
 *   the KCV only after t Keepers hold the key is deliberate: a crash in between leaves no KCV, so
 *   the next start simply boots afresh (nothing was ever encrypted under the lost key), whereas a
 *   KCV without Keeper shares would leave a database that can never become ready.
 * - **Restart** (KCV present): every Keeper is asked for its envelopes, each on its own jittered
 *   backoff (a frozen Keeper delays no other), until t shares of one generation combine into a key whose KCV equals the stored one. A shard
 *   that is malformed, carries another KCV (another deployment) or spoils a combination (a
 *   corrupted share, a wrong index) is set aside and logged without its bytes; other
 *   combinations and Keepers are tried. A wrong key is never installed.
 * - **Steady state**: whenever the key is acquired (first boot, Keeper recovery, restore) a new
 *   generation is minted and every Keeper is sent its envelope. A cheap monitor probes each
 *   Keeper's `GET /ready` every few seconds and refills one that answers "none held" (a Keeper
 *   restarted empty is refilled within seconds); the same set is re-sent to all Keepers every
 *   `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`.
 * - **Break-glass**: `recover()` hands out the current generation's envelopes; `restore()` feeds
 *   operator shards to a `RestoreCollector` and installs the key once it verifies, then mints a
 *   new generation and pushes it. A shard whose KCV differs from the stored one (another
 *   deployment) is refused before it is collected, so it cannot disturb the collected set.
 *   Restore never replaces a held key (`state_already_initialized`).
 *
 * Invariants: the raw root key exists only between its creation (or reconstruction) and its
 * installation, and is zeroed right after; the share set is kept as bytes and zeroed on `stop()`;
 * log lines carry Keeper slots, indexes, generation ids and error codes, never a key, share or KCV
 * of a rejected set. Key acquisition (first-boot commit, Keeper recovery, restore) is serialised,
 * so exactly one of them installs the key.
 */

import { type BackoffOptions, backoffDelay } from '../core/backoff.ts';
import { fromHex, toHex, zero } from '../core/bytes.ts';
import { computeKcv, generateRootKey } from '../core/crypto/keys.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  combineShards,
  groupByGeneration,
  RestoreCollector,
  type RestoreStatus,
  type ShardEnvelope,
  splitRootKey,
} from '../core/shamir/shards.ts';
import type { NexusOperator } from './app.ts';
import type { KeeperLink } from './keeper-client.ts';
import type { MutableRootKeyProvider } from './root-key.ts';
import type { NexusStore } from './store/index.ts';

/** What the lifecycle logs through; fields are slots, indexes, generation ids and codes only. */
export type LifecycleLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

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
}

/** Where the lifecycle is. */
export type LifecyclePhase = 'idle' | 'first-boot' | 'recovering' | 'ready' | 'stopped';

export interface KeyLifecycle {
  /** Break-glass hooks for `createNexusApp({ operator })` (spike-api.md §9). */
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
/** How often a Keeper that already answered is asked again while recovery is stuck. */
const ANSWERED_RECHECK_MS = 10_000;
/** How often "still not ready" is logged while recovering. */
const NOT_READY_LOG_INTERVAL_MS = 10_000;
/** Upper bound on share combinations tried per round (only reached with many bad shares). */
const MAX_COMBINATIONS_PER_ROUND = 256;

/** One generation's shares, as bytes so that they can be zeroed; `shares[i]` has index i + 1. */
interface ShareSet {
  readonly generation: string;
  readonly kcv: string;
  readonly shares: Uint8Array[];
}

/** A Keeper slot as the monitor tracks it. */
interface Slot {
  readonly link: KeeperLink;
  /** The current set was acknowledged and nothing since suggests the Keeper lost it. */
  confirmed: boolean;
  /** When the current set was last acknowledged (epoch ms). */
  pushedAt: number;
  /** The last problem logged, so that a Keeper that stays down is not logged every round. */
  lastProblem?: string;
}

/** A share offered by a Keeper during recovery. */
interface Candidate {
  readonly envelope: ShardEnvelope;
  /** Slot of the Keeper that held it. */
  readonly keeper: number;
  /** Whether the Keeper listed it as its current envelope (first in its answer). */
  readonly current: boolean;
}

function codeOf(error: unknown): string {
  if (isSpikeError(error)) return error.code;
  return error instanceof Error ? error.name : 'unknown';
}

/** Every k-subset of `items`, in lexicographic order of positions. */
function* subsets<T>(items: readonly T[], k: number, from = 0, prefix: T[] = []): Generator<T[]> {
  if (prefix.length === k) {
    yield [...prefix];
    return;
  }
  for (let i = from; i <= items.length - (k - prefix.length); i++) {
    prefix.push(items[i]!);
    yield* subsets(items, k, i + 1, prefix);
    prefix.pop();
  }
}

function toShareSet(envelopes: readonly ShardEnvelope[]): ShareSet {
  const first = envelopes[0]!;
  return {
    generation: first.generation,
    kcv: first.kcv,
    shares: envelopes.map((e) => fromHex(e.shard)),
  };
}

function envelopeOf(set: ShareSet, index: number): ShardEnvelope {
  return {
    version: 1,
    index,
    generation: set.generation,
    kcv: set.kcv,
    shard: toHex(set.shares[index - 1]!),
  };
}

/**
 * Creates the key lifecycle of a SQLite-backed Nexus (spike-api.md §9; see the module header).
 * Nothing happens until `start()`; the operator hooks work from the moment it is created.
 *
 * @throws RangeError when the Keeper list does not match n, or n, t are out of range.
 */
export function createKeyLifecycle(options: KeyLifecycleOptions): KeyLifecycle {
  const { store, keys, log } = options;
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
  const updateIntervalMs = options.updateIntervalMs ?? DEFAULT_UPDATE_INTERVAL_MS;
  const monitorIntervalMs = options.monitorIntervalMs ?? DEFAULT_MONITOR_INTERVAL_MS;
  const retry = options.retry ?? DEFAULT_RETRY;

  const slots: Slot[] = options.keepers.map((link) => ({ link, confirmed: false, pushedAt: 0 }));
  let phase: LifecyclePhase = 'idle';
  let stopped = false;
  let monitoring = false;
  /** The share set being distributed (first boot: before the key is installed). */
  let current: ShareSet | undefined;
  let collector: RestoreCollector | undefined;

  // ---- small async utilities -------------------------------------------------------------

  const wakers = new Set<() => void>();
  /** Sleeps `ms`, or less when `stop()` or `nudge()` wakes every sleeper. */
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });
  }
  function wakeAll(): void {
    for (const wake of [...wakers]) wake();
  }

  let ready: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void };
  {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    ready = { promise, resolve, reject };
  }

  /** Key acquisition runs one at a time (first-boot commit, Keeper recovery, restore). */
  let acquisition: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = acquisition.then(fn);
    acquisition = run.catch(() => undefined);
    return run;
  }

  /** Waiters for "t Keepers acknowledged the current set" (first boot). */
  const ackWaiters = new Set<() => void>();

  // ---- distribution and the refill monitor -------------------------------------------------

  function noteProblem(slot: Slot, problem: string, message: string): void {
    if (slot.lastProblem === problem) {
      log.debug(message, { keeper: slot.link.index, error: problem });
      return;
    }
    slot.lastProblem = problem;
    log.warn(message, { keeper: slot.link.index, error: problem });
  }

  async function push(slot: Slot, set: ShareSet): Promise<void> {
    await slot.link.contribute(envelopeOf(set, slot.link.index));
    if (current !== set) return; // a newer set replaced this one meanwhile
    const wasConfirmed = slot.confirmed;
    slot.confirmed = true;
    slot.pushedAt = Date.now();
    if (slot.lastProblem !== undefined)
      log.info('keeper reachable again', { keeper: slot.link.index });
    slot.lastProblem = undefined;
    const fields = { keeper: slot.link.index, generation: set.generation };
    if (wasConfirmed) log.debug('shard sent to keeper', fields);
    else log.info('shard sent to keeper', fields);
    for (const wake of [...ackWaiters]) wake();
  }

  /** One monitor step for one Keeper: push when needed, else probe and refill if empty. */
  async function tend(slot: Slot): Promise<void> {
    const set = current;
    if (set === undefined) return;
    try {
      if (!slot.confirmed || Date.now() - slot.pushedAt >= updateIntervalMs) {
        await push(slot, set);
        return;
      }
      if (!(await slot.link.holding())) {
        log.info('keeper holds no shard; refilling', { keeper: slot.link.index });
        slot.confirmed = false;
        await push(slot, set);
      }
    } catch (error) {
      slot.confirmed = false;
      noteProblem(slot, codeOf(error), 'keeper did not take its shard; will retry');
    }
  }

  function startMonitor(): void {
    if (monitoring) return;
    monitoring = true;
    for (const slot of slots) {
      void (async () => {
        while (!stopped) {
          await tend(slot);
          if (stopped) break;
          await sleep(monitorIntervalMs);
        }
      })();
    }
  }

  /** Makes `set` the one to distribute and has every Keeper sent its envelope at once. */
  function distribute(set: ShareSet): void {
    const previous = current;
    current = set;
    if (previous !== undefined && previous !== set) zero(...previous.shares);
    for (const slot of slots) slot.confirmed = false;
    startMonitor();
    wakeAll();
  }

  function confirmedCount(): number {
    return slots.filter((s) => s.confirmed).length;
  }

  // ---- installing a key --------------------------------------------------------------------

  function becomeReady(source: string, set: ShareSet): void {
    phase = 'ready';
    log.info('root key installed; nexus is ready', { source, generation: set.generation });
    ready.resolve();
  }

  /**
   * Installs a key reconstructed from Keeper shares or restored by the operator: checks it
   * against the stored KCV, mints a new generation, installs it, and distributes the new set.
   * The caller zeroes `rootKey`.
   */
  function acquire(rootKey: Uint8Array, source: 'keepers' | 'restore'): Promise<void> {
    return exclusive(async () => {
      if (stopped) throw new SpikeError('state_not_ready', 'nexus is stopping');
      if (keys.ready)
        throw new SpikeError('state_already_initialized', 'a root key is already held');
      const kcv = await computeKcv(rootKey);
      const stored = store.getKcv();
      if (stored !== undefined && stored !== kcv) {
        throw new SpikeError('crypto_cipher_verification_failed', 'key does not match the store');
      }
      const set = toShareSet(await splitRootKey(rootKey, n, t, kcv));
      if (stored === undefined) store.setKcv(kcv);
      await keys.install(rootKey);
      distribute(set);
      becomeReady(source, set);
    });
  }

  // ---- first boot ----------------------------------------------------------------------------

  async function firstBoot(): Promise<void> {
    phase = 'first-boot';
    log.info('no key-check record: first boot, generating the root key');
    const rootKey = generateRootKey();
    let set: ShareSet;
    try {
      set = toShareSet(await splitRootKey(rootKey, n, t));
      distribute(set);
      // Wait until t Keepers hold their share (see the module header for why before the KCV).
      while (!stopped && current === set && !keys.ready && confirmedCount() < t) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            ackWaiters.delete(wake);
            wakers.delete(wake);
            resolve();
          };
          ackWaiters.add(wake);
          wakers.add(wake);
        });
      }
      await exclusive(async () => {
        if (stopped || keys.ready || current !== set) return; // restore won, or stopping
        store.setKcv(set.kcv);
        await keys.install(rootKey);
        becomeReady('first-boot', set);
      });
    } finally {
      zero(rootKey);
    }
  }

  // ---- restart: recovery from Keepers ------------------------------------------------------

  async function recoverFromKeepers(storedKcv: string): Promise<void> {
    phase = 'recovering';
    log.info('key-check record found: asking keepers for shards');
    const pool = new Map<string, Candidate>();
    /** Keepers whose shards are in the pool (asking again would normally give the same). */
    const answered = new Set<number>();
    const tried = new Set<string>();
    let combining: Promise<unknown> = Promise.resolve();

    /** Tries the untried combinations of the pool; installs the key on the first that verifies. */
    async function tryCombine(): Promise<void> {
      if (keys.ready || stopped) return;
      const all = [...pool.values()];
      const currentCount = new Map<string, number>();
      for (const c of all) {
        if (c.current) {
          currentCount.set(
            c.envelope.generation,
            (currentCount.get(c.envelope.generation) ?? 0) + 1,
          );
        }
      }
      // Most often "current" first: normally the newest generation.
      const generations = [...groupByGeneration(all.map((c) => c.envelope)).keys()].sort(
        (a, b) => (currentCount.get(b) ?? 0) - (currentCount.get(a) ?? 0),
      );
      let budget = MAX_COMBINATIONS_PER_ROUND;
      for (const generation of generations) {
        const candidates = all.filter((c) => c.envelope.generation === generation);
        if (new Set(candidates.map((c) => c.envelope.index)).size < t) continue;
        for (const subset of subsets(candidates, t)) {
          const indexes = subset.map((c) => c.envelope.index);
          const xs = subset.map((c) => c.envelope.shard.slice(-2));
          if (new Set(indexes).size < t || new Set(xs).size < t) continue;
          const id = subset
            .map((c) => `${c.envelope.index}:${c.envelope.shard}`)
            .sort()
            .join('|');
          if (tried.has(id)) continue;
          tried.add(id);
          if (budget-- <= 0) return;
          let rootKey: Uint8Array | undefined;
          try {
            rootKey = await combineShards(
              subset.map((c) => c.envelope),
              t,
              storedKcv,
            );
          } catch (error) {
            log.warn('shards set aside: their combination does not verify', {
              generation,
              indexes: indexes.join(','),
              keepers: subset.map((c) => c.keeper).join(','),
              error: codeOf(error),
            });
            continue;
          }
          try {
            await acquire(rootKey, 'keepers');
          } catch (error) {
            if (!(isSpikeError(error) && error.code === 'state_already_initialized')) throw error;
          } finally {
            zero(rootKey);
          }
          return;
        }
      }
    }

    async function ask(link: KeeperLink): Promise<void> {
      const slot = slots[link.index - 1]!;
      let answer: Awaited<ReturnType<KeeperLink['shards']>>;
      try {
        answer = await link.shards();
      } catch (error) {
        noteProblem(slot, codeOf(error), 'keeper did not answer with shards; will retry');
        return;
      }
      if (stopped || keys.ready) return;
      if (answer.kind === 'empty') {
        noteProblem(slot, 'none_held', 'keeper holds no shard; will retry');
        return;
      }
      slot.lastProblem = undefined;
      answered.add(link.index);
      for (const reason of answer.rejected) {
        log.warn('shard set aside: malformed', { keeper: link.index, reason });
      }
      answer.envelopes.forEach((envelope, position) => {
        if (envelope.kcv !== storedKcv) {
          log.warn('shard set aside: it belongs to another key', {
            keeper: link.index,
            index: envelope.index,
            generation: envelope.generation,
          });
          return;
        }
        if (envelope.index !== link.index) {
          log.warn('keeper holds the shard of another slot', {
            keeper: link.index,
            index: envelope.index,
          });
        }
        const key = `${envelope.generation}|${envelope.index}|${envelope.shard}`;
        if (!pool.has(key)) {
          pool.set(key, { envelope, keeper: link.index, current: position === 0 });
        }
      });
      log.info('keeper answered with shards', {
        keeper: link.index,
        count: answer.envelopes.length,
      });
      const run = combining.then(tryCombine);
      combining = run.catch(() => undefined);
      await run.catch((error: unknown) => {
        log.error('installing the recovered key failed', { error: codeOf(error) });
      });
    }

    // Each Keeper on its own schedule, so a frozen one never delays the others. One that
    // answered is asked again only slowly: its shards are in the pool already.
    const summary = setInterval(() => {
      log.warn('not ready: waiting for shards from keepers', {
        threshold: t,
        answered: answered.size,
      });
    }, NOT_READY_LOG_INTERVAL_MS);
    try {
      await Promise.all(
        options.keepers.map(async (link) => {
          for (let attempt = 0; !stopped && !keys.ready; attempt++) {
            await ask(link);
            if (stopped || keys.ready) break;
            await sleep(
              answered.has(link.index)
                ? ANSWERED_RECHECK_MS
                : backoffDelay(Math.min(attempt, 16), retry),
            );
          }
        }),
      );
    } finally {
      clearInterval(summary);
    }
    pool.clear();
  }

  // ---- break-glass operator hooks -----------------------------------------------------------

  const operator: NexusOperator = {
    async recover() {
      const set = current;
      if (stopped || !keys.ready || set === undefined) {
        throw new SpikeError('state_not_ready', 'no root key yet');
      }
      log.info('recovery shards handed out', { generation: set.generation, count: n });
      return Array.from({ length: n }, (_, i) => envelopeOf(set, i + 1));
    },

    async restore(envelope): Promise<RestoreStatus> {
      if (keys.ready)
        throw new SpikeError('state_already_initialized', 'a root key is already held');
      const stored = store.getKcv();
      if (stored !== undefined && envelope.kcv !== stored) {
        // Refused before collection, so a foreign shard never disturbs the collected set.
        log.info('restore: shard refused', { reason: 'shard belongs to another key' });
        throw new SpikeError(
          'crypto_cipher_verification_failed',
          'shard belongs to a different key than the stored one',
        );
      }
      collector ??= new RestoreCollector(t, stored);
      const used = collector;
      let step: Awaited<ReturnType<RestoreCollector['add']>>;
      try {
        step = await used.add(envelope);
      } catch (error) {
        if (isSpikeError(error) && error.code === 'crypto_cipher_verification_failed') {
          log.warn('restore: shards do not give the stored key; collected shards discarded');
          if (collector === used) collector = undefined;
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
      if (collector === used) collector = undefined;
      try {
        await acquire(rootKey, 'restore');
      } finally {
        zero(rootKey);
      }
      return step.status;
    },
  };

  // ---- public surface ------------------------------------------------------------------------

  return {
    operator,

    start() {
      if (phase !== 'idle') return;
      const storedKcv = store.getKcv();
      const run = storedKcv === undefined ? firstBoot() : recoverFromKeepers(storedKcv);
      run.catch((error: unknown) => {
        if (stopped) return;
        log.error('key lifecycle failed', { error: codeOf(error) });
      });
    },

    whenReady: () => ready.promise,

    phase: () => phase,

    async stop() {
      if (stopped) return;
      stopped = true;
      phase = 'stopped';
      ready.reject(new SpikeError('state_not_ready', 'stopped'));
      wakeAll(); // every ack waiter is also a sleeper, so this wakes first boot too
      collector?.clear();
      collector = undefined;
      if (current !== undefined) zero(...current.shares);
      await Promise.allSettled(options.keepers.map((link) => link.close()));
    },
  };
}
