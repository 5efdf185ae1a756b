/**
 * The change log of the SQLite backend (./sqlite.ts; rules in ./change-log.ts): prepared
 * statements on the backend's one connection. `append` runs inside the write's savepoint of the
 * group transaction (./group-commit.ts), so an entry commits, or rolls back, with its change.
 * `seq` is `AUTOINCREMENT`: never reused, and with one writer connection commits are in order.
 */
import type { Database, Statement } from 'bun:sqlite';
import {
  type ChangeBounds,
  type ChangeEntry,
  type ChangeEvent,
  changeKindOf,
} from './change-log.ts';

interface Row {
  seq: number;
  path: string;
  version: number;
  kind: string;
  time: number;
}

/** The change-log statements of one connection. */
export class SqliteChanges {
  readonly #append: Statement;
  readonly #read: Statement<Row, [number, number]>;
  readonly #bounds: Statement<{ head: number | null; first: number | null }, []>;
  readonly #prune: Statement;
  readonly #listeners = new Set<() => void>();

  constructor(db: Database) {
    this.#append = db.prepare(
      'INSERT INTO change_log (path, version, kind, time) VALUES (?1, ?2, ?3, ?4)',
    );
    this.#read = db.prepare(
      'SELECT seq, path, version, kind, time FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2',
    );
    this.#bounds = db.prepare('SELECT max(seq) AS head, min(seq) AS first FROM change_log');
    this.#prune = db.prepare(
      'DELETE FROM change_log WHERE time < ?1 AND seq < (SELECT max(seq) FROM change_log)',
    );
  }

  /** Appends `entry` (inside the caller's transaction). */
  append(entry: ChangeEntry): void {
    this.#append.run(entry.path, entry.version, entry.kind, Date.now());
  }

  read(after: number, limit: number): ChangeEvent[] {
    const out: ChangeEvent[] = [];
    for (const row of this.#read.all(after, limit)) {
      const kind = changeKindOf(row.kind);
      if (kind === undefined) continue;
      out.push({ seq: row.seq, path: row.path, version: row.version, kind, time: row.time });
    }
    return out;
  }

  bounds(): ChangeBounds {
    const row = this.#bounds.get();
    return { head: row?.head ?? 0, first: row?.first ?? undefined };
  }

  prune(time: number): void {
    this.#prune.run(time);
  }

  onCommit(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells the listeners that entries committed. */
  committed(): void {
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch {
        // a failing listener must not fail the write that already committed
      }
    }
  }

  statements(): Statement[] {
    return [this.#append, this.#read, this.#bounds, this.#prune];
  }
}
