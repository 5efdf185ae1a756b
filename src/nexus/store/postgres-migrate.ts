/**
 * The PostgreSQL migration runner: the same bookkeeping as ./migrate.ts (`schema_version
 * (version, tag, applied_at)`, lineage checked, a newer database refused) for the committed
 * migrations of schema/pg/migrations. Replicas that start together migrate one at a time: the
 * whole run is one transaction holding a transaction-level advisory lock, so a crash leaves all
 * of a migration or none, and the second replica finds the work done.
 */
import type { SQL } from 'bun';
import { PG_MIGRATIONS } from '../../../schema/pg/migrations/index.ts';
import { SpikeError } from '../../core/errors.ts';
import { checkLineage, type Migration } from './migrate.ts';

/** Advisory lock keys `(LOCK_CLASS, n)` of this schema (two-int form; 'SPIK'). */
export const LOCK_CLASS = 0x5350494b;
const MIGRATE_LOCK = 1;
export const BOOTSTRAP_LOCK = 2;

const BOOKKEEPING = `CREATE TABLE IF NOT EXISTS schema_version (
  version integer PRIMARY KEY NOT NULL,
  tag text NOT NULL,
  applied_at bigint NOT NULL
)`;

const BREAKPOINT = '--> statement-breakpoint';

type Tx = Pick<SQL, 'unsafe'> & SQL;

async function applied(tx: Tx): Promise<{ version: number; tag: string }[]> {
  const exists = await tx`SELECT to_regclass('schema_version') IS NOT NULL AS ok`;
  if (exists[0]?.ok !== true) return [];
  const rows: { version: number; tag: string }[] =
    await tx`SELECT version, tag FROM schema_version ORDER BY version`;
  return rows.map((r) => ({ version: Number(r.version), tag: String(r.tag) }));
}

/** Brings the database up to the last of `migrations`; returns the schema version. Idempotent. */
export async function applyPgMigrations(
  sql: SQL,
  migrations: readonly Migration[] = PG_MIGRATIONS,
  now: () => number = Date.now,
): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}::int, ${MIGRATE_LOCK}::int)`;
    await tx.unsafe(BOOKKEEPING);
    const done = await applied(tx);
    checkLineage(done, migrations);
    let version = done.length === 0 ? 0 : done[done.length - 1]!.version;
    for (const m of migrations) {
      if (m.version <= version) continue;
      if (m.version !== version + 1) throw new RangeError('migrations must be numbered 1, 2, 3, …');
      for (const statement of m.sql.split(BREAKPOINT)) {
        if (statement.trim() !== '') await tx.unsafe(statement);
      }
      await tx`INSERT INTO schema_version (version, tag, applied_at) VALUES (${m.version}, ${m.tag}, ${now()})`;
      version = m.version;
    }
    return version;
  });
}

/** For `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION`: checks, changing nothing, that the schema is current. */
export async function checkPgSchema(
  sql: SQL,
  migrations: readonly Migration[] = PG_MIGRATIONS,
): Promise<void> {
  const done = await applied(sql);
  checkLineage(done, migrations);
  if (done.length !== migrations.length) {
    throw new SpikeError(
      'config_invalid',
      `database schema version ${done.length} is older than this Nexus needs (${migrations.length}) and schema creation is skipped`,
    );
  }
}
