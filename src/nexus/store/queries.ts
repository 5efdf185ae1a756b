/**
 * The prepared statements of the SQLite backend (./sqlite.ts), built once per connection with
 * Drizzle over the tables of schema/tables.ts.
 */
import { and, asc, eq, isNull, max, not, sql } from 'drizzle-orm';
import type { drizzle } from 'drizzle-orm/bun-sqlite';
import { alias } from 'drizzle-orm/sqlite-core';
import { policies, secrets, secretVersions, storeMeta } from '../../../schema/tables.ts';

type Db = ReturnType<typeof drizzle>;

const p = (name: string) => sql.placeholder(name);

/** Row kinds of the one-statement read. */
export const HEAD_ROW = 0;
const VERSION_ROW = 1;

/**
 * The bound path as an expression rather than a bare parameter. Measured on the SQLite bundled
 * with Bun (3.54): a bare `?` compared with the indexed `path` in an ordered, aggregated or
 * compound query costs ~5 µs more per execution, the price of a re-prepare (SQLite re-prepares a
 * statement whose plan depended on a bound value whenever that parameter is bound again).
 * `CAST(? AS TEXT)` of a string is the same string, so what matches is unchanged.
 */
const pathParam = sql<string>`CAST(${p('path')} AS TEXT)`;

/** The one-statement read (see ./sqlite.ts's module header and its `ReadRow`). */
function readQuery(db: Db) {
  const live = alias(secretVersions, 'live');
  // The version a read of the current version resolves to, unless its deletion is scheduled
  // (then `pick` names another version and the read falls back to the transaction).
  const highestLive = db
    .select({ version: max(live.version) })
    .from(live)
    .where(and(eq(live.path, pathParam), isNull(live.deletedAt), not(live.destroyed)));
  const readAhead = sql<number | null>`${secretVersions.version} = ${highestLive}`;
  return db
    .select({
      kind: sql<number>`${sql.raw(String(HEAD_ROW))}`,
      a: sql<number>`${secrets.createdAt}`,
      b: sql<number>`${secrets.updatedAt}`,
      c: sql<number | null>`${secrets.latestVersion}`,
      d: sql<number | null>`${secrets.revision}`,
      e: sql<number | null>`${secrets.maxVersions}`,
      f: sql<number | null>`${secrets.casRequired}`,
      g: sql<number | null>`${secrets.deleteVersionAfterMs}`,
      h: sql<number | null>`${secrets.oldestVersion}`,
      data: sql<Uint8Array | null>`${secrets.customMetadata}`,
    })
    .from(secrets)
    .where(eq(secrets.path, pathParam))
    .unionAll(
      db
        .select({
          kind: sql<number>`${sql.raw(String(VERSION_ROW))}`,
          a: sql<number>`${secretVersions.version}`,
          b: sql<number>`${secretVersions.createdAt}`,
          c: sql<number | null>`${secretVersions.deletedAt}`,
          d: sql<number | null>`${secretVersions.destroyed}`,
          e: readAhead,
          f: sql<number | null>`NULL`,
          g: sql<number | null>`NULL`,
          h: sql<number | null>`NULL`,
          data: sql<Uint8Array | null>`CASE WHEN ${readAhead} THEN ${secretVersions.data} END`,
        })
        .from(secretVersions)
        .where(eq(secretVersions.path, pathParam)),
    )
    .prepare();
}

/** The policy and store-metadata statements of `prepareQueries`. */
function preparePolicyAndMetaQueries(db: Db) {
  return {
    upsertPolicy: db
      .insert(policies)
      .values({ name: p('name'), data: p('data'), createdAt: p('now'), updatedAt: p('now') })
      .onConflictDoUpdate({
        target: policies.name,
        set: { data: sql`excluded.data`, updatedAt: sql`excluded.updated_at` },
      })
      .returning({ createdAt: policies.createdAt, updatedAt: policies.updatedAt })
      .prepare(),
    policy: db
      .select()
      .from(policies)
      .where(eq(policies.name, p('name')))
      .prepare(),
    policies: db.select().from(policies).orderBy(asc(policies.name)).prepare(),
    deletePolicy: db
      .delete(policies)
      .where(eq(policies.name, p('name')))
      .returning({ name: policies.name })
      .prepare(),
    getMeta: db
      .select({ value: storeMeta.value })
      .from(storeMeta)
      .where(eq(storeMeta.key, p('key')))
      .prepare(),
    setMeta: db
      .insert(storeMeta)
      .values({ key: p('key'), value: p('value') })
      .onConflictDoUpdate({ target: storeMeta.key, set: { value: sql`excluded.value` } })
      .prepare(),
  };
}

/** Every prepared statement of the backend. */
export function prepareQueries(db: Db) {
  const byPath = eq(secrets.path, p('path'));
  const versionByKey = and(
    eq(secretVersions.path, p('path')),
    eq(secretVersions.version, p('version')),
  );
  return {
    head: db
      .select({
        createdAt: secrets.createdAt,
        updatedAt: secrets.updatedAt,
        latestVersion: secrets.latestVersion,
        revision: secrets.revision,
        maxVersions: secrets.maxVersions,
        casRequired: secrets.casRequired,
        deleteVersionAfterMs: secrets.deleteVersionAfterMs,
        customMetadata: secrets.customMetadata,
        oldestVersion: secrets.oldestVersion,
      })
      .from(secrets)
      .where(byPath)
      .prepare(),
    revision: db.select({ revision: secrets.revision }).from(secrets).where(byPath).prepare(),
    versions: db
      .select({
        version: secretVersions.version,
        createdAt: secretVersions.createdAt,
        deletedAt: secretVersions.deletedAt,
        destroyed: secretVersions.destroyed,
      })
      .from(secretVersions)
      .where(eq(secretVersions.path, pathParam))
      .orderBy(asc(secretVersions.version))
      .prepare(),
    read: readQuery(db),
    data: db
      .select({ data: secretVersions.data })
      .from(secretVersions)
      .where(versionByKey)
      .prepare(),
    paths: db.select({ path: secrets.path }).from(secrets).orderBy(asc(secrets.path)).prepare(),
    insertHead: db
      .insert(secrets)
      .values({
        path: p('path'),
        createdAt: p('createdAt'),
        updatedAt: p('updatedAt'),
        latestVersion: p('latestVersion'),
        revision: 1,
        maxVersions: sql`${p('maxVersions')}`,
        casRequired: sql`${p('casRequired')}`,
        deleteVersionAfterMs: sql`${p('deleteVersionAfterMs')}`,
        customMetadata: sql`${p('customMetadata')}`,
        oldestVersion: sql`${p('oldestVersion')}`,
      })
      .prepare(),
    updateHead: db
      .update(secrets)
      .set({
        createdAt: sql`${p('createdAt')}`,
        updatedAt: sql`${p('updatedAt')}`,
        latestVersion: sql`${p('latestVersion')}`,
        revision: sql`${secrets.revision} + 1`,
      })
      .where(byPath)
      .prepare(),
    updateVaultHead: db
      .update(secrets)
      .set({
        maxVersions: sql`${p('maxVersions')}`,
        casRequired: sql`${p('casRequired')}`,
        deleteVersionAfterMs: sql`${p('deleteVersionAfterMs')}`,
        customMetadata: sql`${p('customMetadata')}`,
        oldestVersion: sql`${p('oldestVersion')}`,
      })
      .where(byPath)
      .prepare(),
    deleteHead: db.delete(secrets).where(byPath).prepare(),
    deleteAllVersions: db
      .delete(secretVersions)
      .where(eq(secretVersions.path, p('path')))
      .prepare(),
    insertVersion: db
      .insert(secretVersions)
      .values({
        path: p('path'),
        version: p('version'),
        data: p('data'),
        createdAt: p('createdAt'),
        deletedAt: p('deletedAt'),
        destroyed: p('destroyed'),
      })
      .prepare(),
    updateVersion: db
      .update(secretVersions)
      .set({ deletedAt: sql`${p('deletedAt')}` })
      .where(versionByKey)
      .prepare(),
    destroyVersion: db
      .update(secretVersions)
      .set({ deletedAt: sql`${p('deletedAt')}`, destroyed: true, data: null })
      .where(versionByKey)
      .prepare(),
    deleteVersion: db.delete(secretVersions).where(versionByKey).prepare(),
    ...preparePolicyAndMetaQueries(db),
  };
}
