/**
 * The Nexus schema for PostgreSQL (Drizzle pg-core): the same tables, columns, keys and
 * constraints as `schema/tables.ts`, in PostgreSQL's types (docs/architecture.md "PostgreSQL
 * backend"). `tests/postgres-schema.test.ts` checks that both files name the same columns.
 *
 * Times are epoch milliseconds in `bigint` (read as JavaScript numbers); sealed data is `bytea`.
 * What is in clear and what is not is exactly as in `schema/tables.ts` (invariant 2).
 *
 * Changing this file means generating a new migration (`bunx drizzle-kit generate --config
 * schema/pg/drizzle.config.ts`) and listing it in `schema/pg/migrations/index.ts`, together with
 * the SQLite one; shipped migrations are never edited.
 */
import {
  bigint,
  boolean,
  customType,
  integer,
  pgTable,
  primaryKey,
  text,
} from 'drizzle-orm/pg-core';

/** A `bytea` column read and written as `Uint8Array` (the driver reads a `Buffer`; copied out). */
export const bytes = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => new Uint8Array(value),
});

const millis = (name: string) => bigint(name, { mode: 'number' });

/** One row per secret path (schema/tables.ts `secrets`). */
export const secrets = pgTable('secrets', {
  path: text('path').primaryKey().notNull(),
  createdAt: millis('created_at').notNull(),
  updatedAt: millis('updated_at').notNull(),
  latestVersion: integer('latest_version').notNull(),
  revision: integer('revision').notNull(),
  maxVersions: integer('max_versions'),
  casRequired: boolean('cas_required'),
  deleteVersionAfterMs: millis('delete_version_after_ms'),
  customMetadata: bytes('custom_metadata'),
  oldestVersion: integer('oldest_version').notNull().default(0),
});

/** One row per kept version (schema/tables.ts `secret_versions`); `data` NULL once destroyed. */
export const secretVersions = pgTable(
  'secret_versions',
  {
    path: text('path')
      .notNull()
      .references(() => secrets.path, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    data: bytes('data'),
    createdAt: millis('created_at').notNull(),
    deletedAt: millis('deleted_at'),
    destroyed: boolean('destroyed').notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.path, t.version] })],
);

/** Policies by name (schema/tables.ts `policies`). */
export const policies = pgTable('policies', {
  name: text('name').primaryKey().notNull(),
  data: bytes('data').notNull(),
  createdAt: millis('created_at').notNull(),
  updatedAt: millis('updated_at').notNull(),
});

/** Plaintext settings of the store (schema/tables.ts `store_meta`). */
export const storeMeta = pgTable('store_meta', {
  key: text('key').primaryKey().notNull(),
  value: text('value').notNull(),
});

/**
 * The change log (schema/tables.ts `change_log`), added by PostgreSQL migration 0001. `seq` comes
 * from the `change_seq` counter row of `store_meta`, taken last in the writing transaction, so
 * numbers are gapless and commit in order across replicas (src/nexus/store/change-log-pg.ts).
 */
export const changeLog = pgTable('change_log', {
  seq: bigint('seq', { mode: 'number' }).primaryKey().notNull(),
  path: text('path').notNull(),
  version: integer('version').notNull(),
  kind: text('kind').notNull(),
  time: millis('time').notNull(),
});
