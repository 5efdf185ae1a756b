/**
 * Group commit for the SQLite backend (docs/architecture.md "Group commit and a busy database").
 *
 * Every write of the request path is queued here instead of committing on its own. The writes
 * queued during one turn of the event loop are applied by one flush, scheduled with
 * `setImmediate`: one `BEGIN IMMEDIATE`, each write inside its own `SAVEPOINT` (a write that
 * throws is rolled back alone and fails alone; the others still commit), one `COMMIT`, and so one
 * fsync of the WAL (`synchronous=FULL`) for the whole group. A write's promise settles only after
 * that `COMMIT` returned, so every acknowledged write is durable before its answer.
 *
 * The event loop never waits on another process's lock: the connection runs with
 * `busy_timeout=0`, so `BEGIN IMMEDIATE` on a database another process holds fails at once with
 * `SQLITE_BUSY`. The flush is then retried after a short, growing delay (the loop keeps serving
 * reads from the WAL meanwhile); a write that has waited longer than its budget fails with
 * `state_not_ready` (503 with `Retry-After`), never a 500.
 */
import type { Database, Statement } from 'bun:sqlite';
import { SpikeError } from '../../core/errors.ts';
import { storageFailure } from './errors.ts';

/** True when `error` is SQLite's "database is locked" (`SQLITE_BUSY`, any extended code). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** The answer of a write that waited too long for another process's lock. */
export function busyError(): SpikeError {
  return new SpikeError('state_not_ready', 'database busy');
}

interface Pending {
  readonly op: () => unknown;
  readonly queuedAt: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Delays between attempts to take the write lock (ms); the last one repeats. */
const RETRY_DELAYS_MS = [2, 5, 10, 20, 40, 80];

export interface GroupCommitOptions {
  /** How long a write may wait for another process's lock before `state_not_ready` (ms). */
  readonly busyBudgetMs: number;
  /** Runs after a group committed, when one of its writes asked for it (e.g. a checkpoint). */
  readonly afterCommit?: () => void;
}

export class GroupCommit {
  readonly #begin: Statement;
  readonly #commit: Statement;
  readonly #rollback: Statement;
  readonly #savepoint: Statement;
  readonly #release: Statement;
  readonly #rollbackTo: Statement;
  readonly #options: GroupCommitOptions;
  #queue: Pending[] = [];
  #scheduled = false;
  #retry = 0;
  #wantsAfterCommit = false;
  #planning = 0;

  constructor(db: Database, options: GroupCommitOptions) {
    this.#begin = db.prepare('BEGIN IMMEDIATE');
    this.#commit = db.prepare('COMMIT');
    this.#rollback = db.prepare('ROLLBACK');
    this.#savepoint = db.prepare('SAVEPOINT w');
    this.#release = db.prepare('RELEASE w');
    this.#rollbackTo = db.prepare('ROLLBACK TO w');
    this.#options = options;
  }

  /**
   * Queues `op` (synchronous statements on the connection) for the next group; resolves with what
   * it returned once its group committed. `afterCommit` asks for the `afterCommit` hook.
   */
  run<T>(op: () => T, afterCommit = false): Promise<T> {
    if (afterCommit) this.#wantsAfterCommit = true;
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        op,
        queuedAt: performance.now(),
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.#schedule(0);
    });
  }

  /** Marks a write that will queue here once planned (see `#schedule`); call `planned` after. */
  planning(): void {
    this.#planning++;
  }

  planned(): void {
    this.#planning--;
  }

  /** Statements to finalize when the connection closes. */
  statements(): Statement[] {
    return [
      this.#begin,
      this.#commit,
      this.#rollback,
      this.#savepoint,
      this.#release,
      this.#rollbackTo,
    ];
  }

  #schedule(delayMs: number): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const flush = () => {
      this.#scheduled = false;
      this.#flush();
    };
    // Another write still planning (encrypting) will queue soon: wait for the end of the tick to
    // take it along. Nothing on its way (a lone write): flush at once, without a tick's delay.
    if (delayMs === 0 && this.#planning > 0) setImmediate(flush);
    else if (delayMs === 0) queueMicrotask(flush);
    else setTimeout(flush, delayMs);
  }

  #flush(): void {
    if (this.#queue.length === 0) return;
    try {
      this.#begin.run();
    } catch (error) {
      if (!isBusy(error)) {
        this.#failAll(storageFailure(error));
        return;
      }
      this.#expire();
      if (this.#queue.length > 0) {
        const delay = RETRY_DELAYS_MS[Math.min(this.#retry, RETRY_DELAYS_MS.length - 1)]!;
        this.#retry++;
        this.#schedule(delay);
      }
      return;
    }
    this.#retry = 0;
    const group = this.#queue;
    this.#queue = [];
    const wantsAfterCommit = this.#wantsAfterCommit;
    this.#wantsAfterCommit = false;
    const outcomes = group.map((w) => this.#apply(w));
    try {
      this.#commit.run();
    } catch (error) {
      try {
        this.#rollback.run();
      } catch {
        // the transaction is gone already
      }
      const failure = isBusy(error) ? busyError() : storageFailure(error);
      for (const w of group) w.reject(failure);
      return;
    }
    if (wantsAfterCommit) {
      try {
        this.#options.afterCommit?.();
      } catch {
        // A failed checkpoint leaves the data where SQLite keeps it; the writes are committed.
      }
    }
    for (const [i, w] of group.entries()) {
      const outcome = outcomes[i]!;
      if (outcome.ok) w.resolve(outcome.value);
      else w.reject(outcome.error);
    }
    if (this.#queue.length > 0) this.#schedule(0);
  }

  /** One write inside its own savepoint: rolled back alone when it throws. */
  #apply(w: Pending): { ok: true; value: unknown } | { ok: false; error: unknown } {
    this.#savepoint.run();
    try {
      const value = w.op();
      this.#release.run();
      return { ok: true, value };
    } catch (error) {
      this.#rollbackTo.run();
      this.#release.run();
      return { ok: false, error: storageFailure(error) };
    }
  }

  /** Fails the writes that have waited longer than the budget for another process's lock. */
  #expire(): void {
    const now = performance.now();
    const keep: Pending[] = [];
    for (const w of this.#queue) {
      if (now - w.queuedAt >= this.#options.busyBudgetMs) w.reject(busyError());
      else keep.push(w);
    }
    this.#queue = keep;
  }

  #failAll(error: SpikeError): void {
    const group = this.#queue;
    this.#queue = [];
    for (const w of group) w.reject(error);
  }
}
