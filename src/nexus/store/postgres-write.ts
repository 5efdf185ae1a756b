/**
 * Pieces of the PostgreSQL backend (./postgres.ts) kept apart to keep that file small: applying
 * one path's write inside its transaction, and the lease rows (`store_meta`) that pick one
 * replica for a job, on the database clock (docs/architecture.md "PostgreSQL backend").
 */
import type { SQL } from 'bun';
import { and, eq } from 'drizzle-orm';
import type { drizzle } from 'drizzle-orm/bun-sql';
import { secrets, secretVersions } from '../../../schema/pg/tables.ts';
import {
  EMPTY_VAULT_HEAD,
  mergeVaultHead,
  type SecretRecord,
  type SecretWrite,
  setsVaultHead,
} from './backend.ts';

type Db = ReturnType<typeof drizzle>;
/** A Drizzle transaction of the backend's database. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Applies `write` to `path` (whose locked record is `record`) inside the caller's transaction. */
export async function applyWrite(
  tx: Tx,
  path: string,
  record: SecretRecord | undefined,
  write: SecretWrite,
): Promise<void> {
  if (write.head === null) {
    await tx.delete(secretVersions).where(eq(secretVersions.path, path));
    await tx.delete(secrets).where(eq(secrets.path, path));
    return;
  }
  const { createdAt, updatedAt, latestVersion } = write.head;
  if (record === undefined) {
    await tx.insert(secrets).values({
      path,
      createdAt,
      updatedAt,
      latestVersion,
      revision: 1,
      ...mergeVaultHead(EMPTY_VAULT_HEAD, write.head),
    });
  } else {
    await tx
      .update(secrets)
      .set({
        createdAt,
        updatedAt,
        latestVersion,
        revision: record.head.revision + 1,
        ...(setsVaultHead(write.head) ? mergeVaultHead(record.head, write.head) : {}),
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

/** Database time in epoch milliseconds (the one clock every replica shares). */
const NOW_MS = 'floor(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * Takes or renews the lease row `key` (value `<holder> <expiry ms>`) for `ttlMs`: one
 * conditional upsert, so that two replicas never both succeed. True when `holder` holds it now:
 * it was free, expired, already `holder`'s, or `force` is set.
 */
export async function claimLease(
  client: SQL,
  key: string,
  holder: string,
  ttlMs: number,
  force: boolean,
): Promise<boolean> {
  if (!/^[0-9a-z-]{1,64}$/.test(holder)) throw new RangeError('holder must be an id');
  const rows: unknown[] = await client.unsafe(
    `INSERT INTO store_meta (key, value) VALUES ($1, $2 || ' ' || (${NOW_MS} + $3::bigint)::text)
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
     WHERE $4::boolean
       OR split_part(store_meta.value, ' ', 1) = $2
       OR split_part(store_meta.value, ' ', 2)::bigint < ${NOW_MS}
     RETURNING key`,
    [key, holder, Math.max(1, Math.floor(ttlMs)), force],
  );
  return rows.length === 1;
}

/** Deletes the lease row `key` if `holder` holds it. */
export async function releaseLease(client: SQL, key: string, holder: string): Promise<void> {
  await client.unsafe(`DELETE FROM store_meta WHERE key = $1 AND split_part(value, ' ', 1) = $2`, [
    key,
    holder,
  ]);
}
