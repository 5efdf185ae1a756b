/**
 * The writing half of the PostgreSQL backend (./postgres.ts): one path's write inside its
 * transaction, and the change log (./change-log.ts).
 *
 * Change-log order across replicas: an entry's `seq` comes from the `change_seq` counter row of
 * `store_meta`, incremented by the last statement of the writing transaction. The row lock it
 * takes is held until commit, so the next writer (at any replica) numbers its entry only after
 * the previous one committed: numbers are gapless (a rolled-back transaction rolls its increment
 * back too) and a reader that sees entry n has seen every entry below n. The lock is held only
 * between that last statement and the commit.
 */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { drizzle } from 'drizzle-orm/bun-sql';
import { changeLog, secrets, secretVersions, storeMeta } from '../../../schema/pg/tables.ts';
import {
  EMPTY_VAULT_HEAD,
  mergeVaultHead,
  type SecretRecord,
  type SecretWrite,
  setsVaultHead,
} from './backend.ts';
import {
  type ChangeBounds,
  type ChangeEntry,
  type ChangeEvent,
  changeKindOf,
  changeOf,
} from './change-log.ts';

export type Db = ReturnType<typeof drizzle>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

const CHANGE_SEQ = 'change_seq';

/** Appends `entry`; must be the last statement of the transaction (see the module header). */
export async function appendChange(tx: Tx, entry: ChangeEntry): Promise<void> {
  await tx.execute(sql`WITH n AS (
      INSERT INTO ${storeMeta} (key, value) VALUES (${CHANGE_SEQ}, '1')
      ON CONFLICT (key) DO UPDATE SET value = (${storeMeta}.value::bigint + 1)::text
      RETURNING value::bigint AS seq)
    INSERT INTO ${changeLog} (seq, path, version, kind, time)
    SELECT seq, ${entry.path}, ${entry.version}, ${entry.kind}, ${Date.now()} FROM n`);
}

export async function readChanges(db: Db, after: number, limit: number): Promise<ChangeEvent[]> {
  const rows = await db
    .select()
    .from(changeLog)
    .where(gt(changeLog.seq, after))
    .orderBy(asc(changeLog.seq))
    .limit(limit);
  const out: ChangeEvent[] = [];
  for (const row of rows) {
    const kind = changeKindOf(row.kind);
    if (kind !== undefined) out.push({ ...row, kind });
  }
  return out;
}

export async function changeBounds(db: Db): Promise<ChangeBounds> {
  const [counter] = await db
    .select({ value: storeMeta.value })
    .from(storeMeta)
    .where(eq(storeMeta.key, CHANGE_SEQ));
  const [row] = await db
    .select({ first: sql<string | null>`min(${changeLog.seq})` })
    .from(changeLog);
  const first = row?.first ?? null;
  return { head: Number(counter?.value ?? 0), first: first === null ? undefined : Number(first) };
}

export async function pruneChanges(db: Db, time: number): Promise<void> {
  await db.execute(
    sql`DELETE FROM ${changeLog} WHERE time < ${time} AND seq < (SELECT max(seq) FROM ${changeLog})`,
  );
}

/** Applies one path's write (the path's head row locked by the caller), then its log entry. */
export async function applyWrite(
  tx: Tx,
  path: string,
  record: SecretRecord | undefined,
  write: SecretWrite,
): Promise<void> {
  const change = changeOf(path, write);
  if (write.head === null) {
    await tx.delete(secretVersions).where(eq(secretVersions.path, path));
    await tx.delete(secrets).where(eq(secrets.path, path));
  } else {
    await writeRows(tx, path, record, write.head, write);
  }
  if (change !== undefined) await appendChange(tx, change);
}

async function writeRows(
  tx: Tx,
  path: string,
  record: SecretRecord | undefined,
  head: NonNullable<SecretWrite['head']>,
  write: SecretWrite,
): Promise<void> {
  const { createdAt, updatedAt, latestVersion } = head;
  if (record === undefined) {
    await tx.insert(secrets).values({
      path,
      createdAt,
      updatedAt,
      latestVersion,
      revision: 1,
      ...mergeVaultHead(EMPTY_VAULT_HEAD, head),
    });
  } else {
    await tx
      .update(secrets)
      .set({
        createdAt,
        updatedAt,
        latestVersion,
        revision: record.head.revision + 1,
        ...(setsVaultHead(head) ? mergeVaultHead(record.head, head) : {}),
      })
      .where(eq(secrets.path, path));
  }
  const insert = write.insert ?? [];
  if (insert.length > 0) {
    await tx.insert(secretVersions).values(
      insert.map(({ state, data }) => ({
        path,
        version: state.version,
        data,
        createdAt: state.createdAt,
        deletedAt: state.deletedAt,
        destroyed: state.destroyed,
      })),
    );
  }
  for (const state of write.update ?? []) {
    await tx
      .update(secretVersions)
      .set(
        state.destroyed
          ? { deletedAt: state.deletedAt, destroyed: true, data: null }
          : { deletedAt: state.deletedAt },
      )
      .where(and(eq(secretVersions.path, path), eq(secretVersions.version, state.version)));
  }
  for (const version of write.remove ?? []) {
    await tx
      .delete(secretVersions)
      .where(and(eq(secretVersions.path, path), eq(secretVersions.version, version)));
  }
}
