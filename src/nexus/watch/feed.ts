/**
 * The change feed of one Nexus process (issue 14; docs/spike-api.md "Watch"): reads the store's
 * change log (src/nexus/store/change-log.ts) in order and hands each new batch to its
 * subscribers (the open watch streams).
 *
 * One reader per process, however many watchers: the feed keeps the last number it dispatched
 * (`head`) and, when told that something committed, reads the entries above it, pages of
 * `PAGE` at a time, and dispatches them synchronously, in order. Entries come from the log
 * only, whichever replica wrote them: a local commit pokes the feed at once (the backend's
 * `onCommit`); commits at other replicas sharing the database (PostgreSQL) are found by polling
 * every `pollMs` (default 100 ms), so an event reaches every replica's watchers within about
 * that interval plus one query.
 *
 * Retention: every `pruneEveryMs` the feed removes entries older than `retentionMs`
 * (`SPIKE_NEXUS_WATCH_RETENTION`); every replica does so, which is idempotent.
 */
import type { StoreBackend } from '../store/backend.ts';
import type { ChangeBounds, ChangeEvent } from '../store/change-log.ts';

/** Entries read per query. */
export const PAGE = 512;

export interface ChangeFeedOptions {
  /** How long entries are kept (ms). */
  readonly retentionMs: number;
  /** Poll interval for commits made by other processes; `undefined` = no polling. */
  readonly pollMs?: number;
  /** How often old entries are pruned (ms); default min(retention / 4, 60 s). */
  readonly pruneEveryMs?: number;
}

export type ChangeListener = (events: readonly ChangeEvent[]) => void;

/** The log as the feed needs it. */
type Log = Pick<StoreBackend, 'readChanges' | 'changeBounds' | 'pruneChanges' | 'onCommit'>;

export class ChangeFeed {
  readonly #log: Log;
  readonly #listeners = new Set<ChangeListener>();
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #retentionMs: number;
  #unsubscribe: (() => void) | undefined;
  #head = 0;
  #reading = false;
  #again = false;
  #closed = false;

  constructor(log: Log, options: ChangeFeedOptions) {
    this.#log = log;
    this.#retentionMs = options.retentionMs;
    const pruneEvery = options.pruneEveryMs ?? Math.min(options.retentionMs / 4, 60_000);
    this.#timers.push(setInterval(() => void this.prune(), Math.max(pruneEvery, 10)));
    if (options.pollMs !== undefined) {
      this.#timers.push(setInterval(() => this.poke(), options.pollMs));
    }
    for (const timer of this.#timers) timer.unref?.();
  }

  /** Starts at the log's current head; pokes on every local commit. */
  async start(): Promise<void> {
    this.#head = (await this.#log.changeBounds()).head;
    this.#unsubscribe = this.#log.onCommit(() => this.poke());
  }

  /** The last number dispatched. */
  get head(): number {
    return this.#head;
  }

  /** The log's bounds, read from the store (not the feed's possibly older view). */
  bounds(): Promise<ChangeBounds> {
    return this.#log.changeBounds();
  }

  /** Entries above `after`, from the store. */
  read(after: number, limit = PAGE): Promise<ChangeEvent[]> {
    return this.#log.readChanges(after, limit);
  }

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Something may have committed: read and dispatch what is new (coalesced). */
  poke(): void {
    if (this.#closed) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    void this.#drain().finally(() => {
      this.#reading = false;
    });
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      let page: ChangeEvent[];
      try {
        page = await this.#log.readChanges(this.#head, PAGE);
      } catch {
        return; // a storage fault: the next poke or poll tries again
      }
      if (page.length === 0 || this.#closed) continue;
      this.#head = page[page.length - 1]!.seq;
      for (const listener of this.#listeners) {
        try {
          listener(page);
        } catch {
          // one failing watcher must not starve the others
        }
      }
      if (page.length === PAGE) this.#again = true;
    } while (this.#again && !this.#closed);
  }

  /** Removes entries older than the retention window; best effort. */
  async prune(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#log.pruneChanges(Date.now() - this.#retentionMs);
    } catch {
      // the next round tries again
    }
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#unsubscribe?.();
    this.#listeners.clear();
  }
}
