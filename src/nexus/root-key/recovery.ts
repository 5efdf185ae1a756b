/**
 * Recovery from Keepers on restart (docs/spike-api.md §9 "Lifecycle"; a key-check record is
 * present): every Keeper is asked for its envelopes, each on its own jittered backoff (a frozen
 * Keeper delays no other), until t shares of one generation combine into a key whose KCV equals
 * the stored one. A shard that is malformed, carries another KCV (another deployment) or spoils a
 * combination (a corrupted share, a wrong index) is set aside and logged without its bytes; other
 * combinations and Keepers are tried. A wrong key is never installed.
 */
import { backoffDelay } from '../../core/backoff.ts';
import { zero } from '../../core/bytes.ts';
import { isSpikeError } from '../../core/errors.ts';
import { combineShards, groupByGeneration, type ShardEnvelope } from '../../core/shamir/shards.ts';
import type { KeeperLink } from '../keeper-client.ts';
import type { LifecycleContext } from './context.ts';
import { noteProblem } from './distribution.ts';
import { acquire } from './install.ts';
import { codeOf } from './share-set.ts';

/** How often a Keeper that already answered is asked again while recovery is stuck. */
const ANSWERED_RECHECK_MS = 10_000;
/** How often "still not ready" is logged while recovering. */
const NOT_READY_LOG_INTERVAL_MS = 10_000;
/** Upper bound on share combinations tried per round (only reached with many bad shares). */
const MAX_COMBINATIONS_PER_ROUND = 256;

/** A share offered by a Keeper during recovery. */
interface Candidate {
  readonly envelope: ShardEnvelope;
  /** Slot of the Keeper that held it. */
  readonly keeper: number;
  /** Whether the Keeper listed it as its current envelope (first in its answer). */
  readonly current: boolean;
}

/** One recovery run: the shares offered so far and what was tried. */
interface Recovery {
  readonly ctx: LifecycleContext;
  readonly storedKcv: string;
  readonly pool: Map<string, Candidate>;
  /** Keepers whose shards are in the pool (asking again would normally give the same). */
  readonly answered: Set<number>;
  readonly tried: Set<string>;
  /** Combination rounds run one after the other. */
  combining: Promise<unknown>;
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

/** The pool's generations, the one most Keepers list as current first (normally the newest). */
function generationsByCurrent(all: readonly Candidate[]): string[] {
  const currentCount = new Map<string, number>();
  for (const c of all) {
    if (c.current) {
      currentCount.set(c.envelope.generation, (currentCount.get(c.envelope.generation) ?? 0) + 1);
    }
  }
  return [...groupByGeneration(all.map((c) => c.envelope)).keys()].sort(
    (a, b) => (currentCount.get(b) ?? 0) - (currentCount.get(a) ?? 0),
  );
}

/**
 * Tries one subset: `'skip'` when it cannot combine (repeated indexes or x coordinates) or was
 * tried before, `'exhausted'` when this round's budget is spent, `null` when the combination does
 * not verify, else the verified key (the caller zeroes it).
 */
async function combineSubset(
  r: Recovery,
  generation: string,
  subset: readonly Candidate[],
  budget: { left: number },
): Promise<Uint8Array | null | 'skip' | 'exhausted'> {
  const { t } = r.ctx;
  const indexes = subset.map((c) => c.envelope.index);
  const xs = subset.map((c) => c.envelope.shard.slice(-2));
  if (new Set(indexes).size < t || new Set(xs).size < t) return 'skip';
  const id = subset
    .map((c) => `${c.envelope.index}:${c.envelope.shard}`)
    .sort()
    .join('|');
  if (r.tried.has(id)) return 'skip';
  r.tried.add(id);
  if (budget.left-- <= 0) return 'exhausted';
  try {
    return await combineShards(
      subset.map((c) => c.envelope),
      t,
      r.storedKcv,
    );
  } catch (error) {
    r.ctx.log.warn('shards set aside: their combination does not verify', {
      generation,
      indexes: indexes.join(','),
      keepers: subset.map((c) => c.keeper).join(','),
      error: codeOf(error),
    });
    return null;
  }
}

/** Tries the untried combinations of the pool; installs the key on the first that verifies. */
async function tryCombine(r: Recovery): Promise<void> {
  const { ctx } = r;
  if (ctx.keys.ready || ctx.stopped) return;
  const all = [...r.pool.values()];
  const budget = { left: MAX_COMBINATIONS_PER_ROUND };
  for (const generation of generationsByCurrent(all)) {
    const candidates = all.filter((c) => c.envelope.generation === generation);
    if (new Set(candidates.map((c) => c.envelope.index)).size < ctx.t) continue;
    for (const subset of subsets(candidates, ctx.t)) {
      const rootKey = await combineSubset(r, generation, subset, budget);
      if (rootKey === 'exhausted') return;
      if (rootKey === 'skip' || rootKey === null) continue;
      try {
        await acquire(ctx, rootKey, 'keepers');
      } catch (error) {
        if (!(isSpikeError(error) && error.code === 'state_already_initialized')) throw error;
      } finally {
        zero(rootKey);
      }
      return;
    }
  }
}

/** Adds a Keeper's envelopes of the stored key to the pool; logs the ones set aside. */
function collect(r: Recovery, link: KeeperLink, envelopes: readonly ShardEnvelope[]): void {
  const { log } = r.ctx;
  envelopes.forEach((envelope, position) => {
    if (envelope.kcv !== r.storedKcv) {
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
    if (!r.pool.has(key)) {
      r.pool.set(key, { envelope, keeper: link.index, current: position === 0 });
    }
  });
}

/** Asks one Keeper for its shards, pools them and runs a combination round. */
async function ask(r: Recovery, link: KeeperLink): Promise<void> {
  const { ctx } = r;
  const slot = ctx.slots[link.index - 1]!;
  let answer: Awaited<ReturnType<KeeperLink['shards']>>;
  try {
    answer = await link.shards();
  } catch (error) {
    noteProblem(ctx, slot, codeOf(error), 'keeper did not answer with shards; will retry');
    return;
  }
  if (ctx.stopped || ctx.keys.ready) return;
  if (answer.kind === 'empty') {
    noteProblem(ctx, slot, 'none_held', 'keeper holds no shard; will retry');
    return;
  }
  slot.lastProblem = undefined;
  r.answered.add(link.index);
  for (const reason of answer.rejected) {
    ctx.log.warn('shard set aside: malformed', { keeper: link.index, reason });
  }
  collect(r, link, answer.envelopes);
  ctx.log.info('keeper answered with shards', {
    keeper: link.index,
    count: answer.envelopes.length,
  });
  const run = r.combining.then(() => tryCombine(r));
  r.combining = run.catch(() => undefined);
  await run.catch((error: unknown) => {
    ctx.log.error('installing the recovered key failed', { error: codeOf(error) });
  });
}

/** Asks every Keeper for shards until the key is installed or the lifecycle stops. */
export async function recoverFromKeepers(ctx: LifecycleContext, storedKcv: string): Promise<void> {
  ctx.phase = 'recovering';
  ctx.log.info('key-check record found: asking keepers for shards');
  const r: Recovery = {
    ctx,
    storedKcv,
    pool: new Map(),
    answered: new Set(),
    tried: new Set(),
    combining: Promise.resolve(),
  };
  // Each Keeper on its own schedule, so a frozen one never delays the others. One that
  // answered is asked again only slowly: its shards are in the pool already.
  const summary = setInterval(() => {
    ctx.log.warn('not ready: waiting for shards from keepers', {
      threshold: ctx.t,
      answered: r.answered.size,
    });
  }, NOT_READY_LOG_INTERVAL_MS);
  try {
    await Promise.all(
      ctx.keepers.map(async (link) => {
        for (let attempt = 0; !ctx.stopped && !ctx.keys.ready; attempt++) {
          await ask(r, link);
          if (ctx.stopped || ctx.keys.ready) break;
          await ctx.sleep(
            r.answered.has(link.index)
              ? ANSWERED_RECHECK_MS
              : backoffDelay(Math.min(attempt, 16), ctx.retry),
          );
        }
      }),
    );
  } finally {
    clearInterval(summary);
  }
  r.pool.clear();
}
