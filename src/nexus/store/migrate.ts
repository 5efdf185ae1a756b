/**
 * The SQLite migration runner: applies the committed drizzle-kit SQL (schema/migrations) and
 * records the schema version, so a newer Nexus opens a database written by an older one.
 *
 * Bookkeeping lives in `schema_version (version, tag, applied_at)`, one row per applied
 * migration. Each migration runs in its own `BEGIN IMMEDIATE` transaction together with its
 * bookkeeping row, so a crash leaves either all of it or none. A database whose version is newer
 * than this Nexus knows, or whose recorded tags differ from ours, is refused (`config_invalid`)
 * rather than guessed at.
 */
import type { Database } from 'bun:sqlite';
import { MIGRATIONS, type Migration } from '../../../schema/migrations/index.ts';
import { SpikeError } from '../../core/errors.ts';

export type { Migration };
export { MIGRATIONS };

/** The schema version this code expects. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const BOOKKEEPING = `CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER PRIMARY KEY NOT NULL,
  tag TEXT NOT NULL,
  applied_at INTEGER NOT NULL
)`;

/** drizzle-kit separates statements with this marker. */
const BREAKPOINT = '--> statement-breakpoint';

/** The recorded migrations of a database, ascending (none for a new database). */
export function appliedMigrations(db: Database): { version: number; tag: string }[] {
  const exists = db
    .query<{ n: number }, []>(
      "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
    )
    .get();
  if (exists === null || exists.n === 0) return [];
  return db
    .query<{ version: number; tag: string }, []>(
      'SELECT version, tag FROM schema_version ORDER BY version',
    )
    .all();
}

/** Refuses a database whose recorded migrations are not a prefix of `migrations` (`config_invalid`). */
export function checkLineage(
  applied: readonly { version: number; tag: string }[],
  migrations: readonly Migration[],
): void {
  for (const row of applied) {
    const ours = migrations[row.version - 1];
    if (ours === undefined) {
      throw new SpikeError(
        'config_invalid',
        `database schema version ${row.version} is newer than this Nexus supports (${migrations.length})`,
      );
    }
    if (ours.tag !== row.tag || ours.version !== row.version) {
      throw new SpikeError(
        'config_invalid',
        `database schema version ${row.version} is not this Nexus's migration ${ours.tag}`,
      );
    }
  }
}

/**
 * Brings the database up to the last of `migrations` (default: every committed migration) and
 * returns the resulting schema version. Idempotent.
 */
export function applyMigrations(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => number = Date.now,
): number {
  db.run(BOOKKEEPING);
  const applied = appliedMigrations(db);
  checkLineage(applied, migrations);
  let version = applied.length === 0 ? 0 : applied[applied.length - 1]!.version;
  for (const m of migrations) {
    if (m.version <= version) continue;
    if (m.version !== version + 1) throw new RangeError('migrations must be numbered 1, 2, 3, …');
    db.transaction(() => {
      for (const statement of m.sql.split(BREAKPOINT)) {
        if (statement.trim() !== '') db.run(statement);
      }
      db.run('INSERT INTO schema_version (version, tag, applied_at) VALUES (?, ?, ?)', [
        m.version,
        m.tag,
        now(),
      ]);
    }).immediate();
    version = m.version;
  }
  return version;
}

/**
 * For `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION`: checks, without changing anything, that the
 * database already has exactly the schema this Nexus expects.
 */
export function checkSchema(db: Database, migrations: readonly Migration[] = MIGRATIONS): void {
  const applied = appliedMigrations(db);
  checkLineage(applied, migrations);
  if (applied.length !== migrations.length) {
    throw new SpikeError(
      'config_invalid',
      `database schema version ${applied.length} is older than this Nexus needs (${migrations.length}) and schema creation is skipped`,
    );
  }
}
