/**
 * The Nexus SQLite schema (Drizzle), docs/architecture.md decision 10.
 *
 * What is in clear and what is not (invariant 2): paths, version numbers, times, flags and policy
 * names are plaintext; secret values and policy contents (patterns and permissions) are AES-GCM
 * envelopes (docs/spike-api.md §9) bound to their row by associated data. The key-check value is
 * plaintext by design. Times are epoch milliseconds.
 *
 * Changing this file means generating a new migration (`bunx drizzle-kit generate --config
 * schema/drizzle.config.ts`) and listing it in `schema/migrations/index.ts`; shipped migrations
 * are never edited.
 */
import { customType, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** A BLOB column read and written as `Uint8Array` (drizzle's buffer mode would copy to `Buffer`). */
export const bytes = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'blob',
});

/** One row per secret path: the per-path record of docs/spike-api.md §6 and docs/vault-kv2.md §4.1. */
export const secrets = sqliteTable('secrets', {
  path: text('path').primaryKey().notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  /** Highest version ever written (Vault's `current_version`); the next put writes this + 1. */
  latestVersion: integer('latest_version').notNull(),
  /** Bumped by every write of the path; lets a writer detect a concurrent change. */
  revision: integer('revision').notNull(),
  // Room for the Vault-compatible API (docs/vault-kv2.md §4), added by migration 0001; NULL = unset.
  // The SPIKE API never writes these, and its writes leave them untouched.
  /** Per-key `max_versions` (docs/vault-kv2.md §4.2). */
  maxVersions: integer('max_versions'),
  /** Per-key `cas_required` (docs/vault-kv2.md §4.4). */
  casRequired: integer('cas_required', { mode: 'boolean' }),
  /** Per-key `delete_version_after`, milliseconds (docs/vault-kv2.md §4.3). */
  deleteVersionAfterMs: integer('delete_version_after_ms'),
  /** Envelope of the `custom_metadata` map, AAD `spike/v1/secret-meta ‖ 0 ‖ path` (docs/vault-kv2.md §4.5). */
  customMetadata: bytes('custom_metadata'),
  /**
   * Vault's retention floor `oldest_version` (docs/vault-kv2.md §4.2), added by migration 0002: 0
   * until the first trim, then `latest − max + 1` of the last trim. Written by both APIs' puts.
   */
  oldestVersion: integer('oldest_version').notNull().default(0),
});

/** One row per kept version. `data` is NULL once the version is destroyed. */
export const secretVersions = sqliteTable(
  'secret_versions',
  {
    path: text('path')
      .notNull()
      .references(() => secrets.path, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    /** Envelope of the JSON values, AAD `spike/v1/secret ‖ 0 ‖ path ‖ 0 ‖ version`. */
    data: bytes('data'),
    createdAt: integer('created_at').notNull(),
    deletedAt: integer('deleted_at'),
    destroyed: integer('destroyed', { mode: 'boolean' }).notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.path, t.version] })],
);

/** Policies by name; `data` is the envelope of `{spiffeidPattern, pathPattern, permissions}`. */
export const policies = sqliteTable('policies', {
  name: text('name').primaryKey().notNull(),
  /** Envelope, AAD `spike/v1/policy ‖ 0 ‖ name`. */
  data: bytes('data').notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** Small plaintext settings of the store itself, such as the key-check value (`kcv`). */
export const storeMeta = sqliteTable('store_meta', {
  key: text('key').primaryKey().notNull(),
  value: text('value').notNull(),
});

/**
 * The change log (issue 14, docs/spike-api.md "Watch"), added by migration 0003: one row per
 * write, delete, undelete, destroy, purge or policy change, appended in the change's own
 * transaction. Never a value: the path (or policy name), the version it touched, the kind and the
 * time. `seq` is AUTOINCREMENT, so a number is never reused after the retention window prunes
 * rows; one writer connection commits in `seq` order.
 */
export const changeLog = sqliteTable('change_log', {
  seq: integer('seq').primaryKey({ autoIncrement: true }),
  path: text('path').notNull(),
  version: integer('version').notNull(),
  /** `put` | `delete` | `undelete` | `destroy` | `purge` | `policy`. */
  kind: text('kind').notNull(),
  time: integer('time').notNull(),
});
