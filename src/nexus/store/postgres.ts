/**
 * The PostgreSQL backend (`SPIKE_NEXUS_BACKEND_STORE=postgres`, `SPIKE_NEXUS_DATABASE_URL`):
 * Drizzle over Bun's built-in SQL client (`drizzle-orm/bun-sql`), a connection pool shared by
 * every request, for several Nexus replicas over one database (docs/architecture.md
 * "PostgreSQL backend").
 *
 * Atomicity across replicas (docs/spike-api.md §6): a write of a path is one READ COMMITTED
 * transaction that locks the path's head row with `SELECT … FOR UPDATE`, reads its versions,
 * runs the plan (encryption included) and applies the write; a second writer of the path, at any
 * replica, waits on the row lock and then sees the first one's result. Two writers creating the
 * same new path collide on the primary key (23505); the loser re-plans against the winner's row,
 * as it does after a serialization failure (40001) or a deadlock (40P01). Version numbers come
 * from the locked head row, so no two replicas ever write the same version.
 *
 * Reads are one REPEATABLE READ, read-only transaction: the head, the version states and the
 * picked version's data form one snapshot.
 *
 * Settings (the key-check value, the Vault mount configuration) are plaintext rows of
 * `store_meta`, cached in the process: the port reads them synchronously. `refreshSettings`
 * (called under the bootstrap lock) reloads them; `setKcv` and `setSetting` write through and are
 * durable when the promise they return resolves.
 *
 * Policies carry a change counter (`store_meta` row `policy_epoch`), bumped in the transaction of
 * every policy write; `watchPolicies` polls it, so a replica drops its policy cache within one
 * poll interval of a change made at another replica.
 *
 * Erasure: PostgreSQL keeps dead tuples until VACUUM; a destroy or purge is followed by a plain
 * `VACUUM` of the two secret tables, best effort (docs/architecture.md "PostgreSQL backend").
 */
import { SQL } from 'bun';
import { and, asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/bun-sql';
import { policies, secrets, secretVersions, storeMeta } from '../../../schema/pg/tables.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import type { VersionState } from '../../core/kv/semantics.ts';
import type {
  PolicyRow,
  SecretPlan,
  SecretRead,
  SecretRecord,
  SecretWrite,
  StoreBackend,
} from './backend.ts';
import { policyChange } from './change-log.ts';
import { storageFailure } from './errors.ts';
import {
  applyPgMigrations,
  BOOTSTRAP_LOCK,
  checkPgSchema,
  LOCK_CLASS,
} from './postgres-migrate.ts';
import {
  appendChange,
  applyWrite,
  changeBounds,
  type Db,
  pruneChanges,
  readChanges,
  type Tx,
} from './postgres-write.ts';

export interface PostgresBackendOptions {
  /** `SPIKE_NEXUS_DATABASE_URL`: a libpq-style URL; `sslmode` and friends pass through. */
  readonly url: string;
  /** `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION`: only check the schema, never migrate. */
  readonly skipSchemaCreation?: boolean;
  /** Pool size; default 10. */
  readonly maxConnections?: number;
}

/** What the PostgreSQL backend adds to the port, for several replicas over one database. */
export interface PostgresBackend extends StoreBackend {
  readonly kind: 'postgres';
  /**
   * Runs `fn` holding the database-wide bootstrap lock (a session advisory lock), with the
   * settings cache reloaded first: at most one replica at a time decides "first boot or
   * recovery". Released when `fn` settles, or by the server when the connection drops.
   */
  withBootstrapLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Reloads the cached settings (the key-check value among them) from the database. */
  refreshSettings(): Promise<void>;
  /** Calls `onChange` after a policy write at any replica; returns the function that stops it. */
  watchPolicies(onChange: () => void, intervalMs?: number): () => void;
}

const KCV_KEY = 'kcv';
const POLICY_EPOCH = 'policy_epoch';
/** A write is re-planned this many times after a conflict before it fails. */
const MAX_ATTEMPTS = 8;
/** SQLSTATEs after which the whole write is retried. */
const RETRY = new Set(['40001', '40P01', '23505']);

function sqlState(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'string' && /^[0-9A-Z]{5}$/.test(errno)) return errno;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw storageFailure(error);
  }
}

function isErasure(write: SecretWrite): boolean {
  return write.head === null || (write.update ?? []).some((state) => state.destroyed);
}

/** Opens the pool, migrates (or checks) the schema and loads the settings. */
export async function openPostgresBackend(
  options: PostgresBackendOptions,
): Promise<PostgresBackend> {
  const client = new SQL(options.url, { max: options.maxConnections ?? 10 });
  try {
    await guarded(async () => {
      if (options.skipSchemaCreation === true) await checkPgSchema(client);
      else await applyPgMigrations(client);
    });
    const backend = new Postgres(client);
    await backend.refreshSettings();
    return backend;
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
}

class Postgres implements PostgresBackend {
  readonly kind = 'postgres' as const;
  readonly #client: SQL;
  readonly #db: Db;
  #settings = new Map<string, string>();
  #closed = false;
  readonly #watchers = new Set<ReturnType<typeof setInterval>>();
  readonly #listeners = new Set<() => void>();

  constructor(client: SQL) {
    this.#client = client;
    this.#db = drizzle({ client });
  }

  async #loadRecord(tx: Tx | Db, path: string, lock: boolean): Promise<SecretRecord | undefined> {
    const select = tx.select().from(secrets).where(eq(secrets.path, path));
    const [row] = lock ? await select.for('update') : await select;
    if (row === undefined) return undefined;
    const versions: VersionState[] = await tx
      .select({
        version: secretVersions.version,
        createdAt: secretVersions.createdAt,
        deletedAt: secretVersions.deletedAt,
        destroyed: secretVersions.destroyed,
      })
      .from(secretVersions)
      .where(eq(secretVersions.path, path))
      .orderBy(asc(secretVersions.version));
    const { path: _path, ...head } = row;
    return { path, head, versions };
  }

  readSecret(
    path: string,
    pick?: (record: SecretRecord) => number | undefined,
  ): Promise<SecretRead | undefined> {
    return guarded(() =>
      this.#db.transaction(
        async (tx) => {
          const record = await this.#loadRecord(tx, path, false);
          if (record === undefined) return undefined;
          const version = pick?.(record);
          if (version === undefined) return { record, data: undefined };
          const [row] = await tx
            .select({ data: secretVersions.data })
            .from(secretVersions)
            .where(and(eq(secretVersions.path, path), eq(secretVersions.version, version)));
          return { record, data: row === undefined ? undefined : row.data };
        },
        { isolationLevel: 'repeatable read', accessMode: 'read only' },
      ),
    );
  }

  listSecretPaths(): Promise<string[]> {
    return guarded(async () => {
      const rows = await this.#db
        .select({ path: secrets.path })
        .from(secrets)
        .orderBy(sql`${secrets.path} COLLATE "C"`);
      return rows.map((r) => r.path);
    });
  }

  async updateSecret<T>(path: string, plan: SecretPlan<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let planFailed = false;
      let erased = false;
      try {
        const result = await this.#db.transaction(async (tx) => {
          const record = await this.#loadRecord(tx, path, true);
          let update: Awaited<ReturnType<SecretPlan<T>>>;
          try {
            update = await plan(record);
          } catch (error) {
            planFailed = true;
            throw error;
          }
          if (update.write !== null) {
            await applyWrite(tx, path, record, update.write);
            erased = isErasure(update.write);
          }
          return update.result;
        });
        this.#committed();
        if (erased) await this.#vacuum();
        return result;
      } catch (error) {
        if (planFailed || isSpikeError(error)) throw error;
        const state = sqlState(error);
        if (state === undefined || !RETRY.has(state) || attempt >= MAX_ATTEMPTS) {
          throw storageFailure(error);
        }
        await Bun.sleep(Math.floor(Math.random() * 5 * attempt));
      }
    }
  }

  /** Removes dead tuples of erased data now rather than at the next autovacuum; best effort. */
  async #vacuum(): Promise<void> {
    try {
      await this.#client.unsafe('VACUUM secret_versions, secrets');
    } catch {
      // Another VACUUM running, or no permission: autovacuum removes the tuples later.
    }
  }

  async #bumpPolicyEpoch(tx: Tx): Promise<void> {
    await tx
      .insert(storeMeta)
      .values({ key: POLICY_EPOCH, value: '1' })
      .onConflictDoUpdate({
        target: storeMeta.key,
        set: { value: sql`(${storeMeta.value}::bigint + 1)::text` },
      });
  }

  async upsertPolicy(name: string, data: Uint8Array, now: number) {
    const row = await guarded(() =>
      this.#db.transaction(async (tx) => {
        const [row] = await tx
          .insert(policies)
          .values({ name, data, createdAt: now, updatedAt: now })
          .onConflictDoUpdate({ target: policies.name, set: { data, updatedAt: now } })
          .returning({ createdAt: policies.createdAt, updatedAt: policies.updatedAt });
        if (row === undefined) throw new Error('upsert returned nothing');
        await this.#bumpPolicyEpoch(tx);
        await appendChange(tx, policyChange(name));
        return row;
      }),
    );
    this.#committed();
    return row;
  }

  readPolicy(name: string): Promise<PolicyRow | undefined> {
    return guarded(async () => {
      const [row] = await this.#db.select().from(policies).where(eq(policies.name, name));
      return row;
    });
  }

  listPolicies(): Promise<PolicyRow[]> {
    return guarded(() =>
      this.#db.select().from(policies).orderBy(sql`${policies.name} COLLATE "C"`),
    );
  }

  async deletePolicy(name: string): Promise<boolean> {
    const gone = await guarded(() =>
      this.#db.transaction(async (tx) => {
        const gone = await tx
          .delete(policies)
          .where(eq(policies.name, name))
          .returning({ name: policies.name });
        if (gone.length > 0) {
          await this.#bumpPolicyEpoch(tx);
          await appendChange(tx, policyChange(name));
        }
        return gone.length > 0;
      }),
    );
    if (gone) this.#committed();
    return gone;
  }

  readChanges(after: number, limit: number) {
    return guarded(() => readChanges(this.#db, after, limit));
  }

  changeBounds() {
    return guarded(() => changeBounds(this.#db));
  }

  pruneChanges(time: number) {
    return guarded(() => pruneChanges(this.#db, time));
  }

  onCommit(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #committed(): void {
    for (const listener of this.#listeners) listener();
  }

  #checkOpen(): void {
    if (this.#closed) throw new SpikeError('api_internal_error', 'storage failure');
  }

  getKcv(): string | undefined {
    this.#checkOpen();
    return this.#settings.get(KCV_KEY);
  }

  setKcv(kcv: string): Promise<void> {
    return this.#store(KCV_KEY, kcv);
  }

  getSetting(key: string): string | undefined {
    if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
    this.#checkOpen();
    return this.#settings.get(key);
  }

  setSetting(key: string, value: string): Promise<void> {
    if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
    return this.#store(key, value);
  }

  #store(key: string, value: string): Promise<void> {
    this.#checkOpen();
    this.#settings.set(key, value);
    return guarded(async () => {
      await this.#db
        .insert(storeMeta)
        .values({ key, value })
        .onConflictDoUpdate({ target: storeMeta.key, set: { value } });
    });
  }

  refreshSettings(): Promise<void> {
    return guarded(async () => {
      const rows = await this.#db.select().from(storeMeta);
      this.#settings = new Map(rows.map((r) => [r.key, r.value]));
    });
  }

  async withBootstrapLock<T>(fn: () => Promise<T>): Promise<T> {
    this.#checkOpen();
    const conn = await guarded(() => this.#client.reserve());
    try {
      await guarded(
        () => conn`SELECT pg_advisory_lock(${LOCK_CLASS}::int, ${BOOTSTRAP_LOCK}::int)`,
      );
      try {
        await this.refreshSettings();
        return await fn();
      } finally {
        await conn`SELECT pg_advisory_unlock(${LOCK_CLASS}::int, ${BOOTSTRAP_LOCK}::int)`.catch(
          () => undefined,
        );
      }
    } finally {
      conn.release();
    }
  }

  watchPolicies(onChange: () => void, intervalMs = 250): () => void {
    let last: string | undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.#closed) return;
      busy = true;
      this.#db
        .select({ value: storeMeta.value })
        .from(storeMeta)
        .where(eq(storeMeta.key, POLICY_EPOCH))
        .then(([row]) => {
          const epoch = row?.value ?? '0';
          if (last !== undefined && epoch !== last) onChange();
          last = epoch;
        })
        .catch(() => undefined) // a dropped connection: the next poll tries again
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    timer.unref?.();
    this.#watchers.add(timer);
    return () => {
      clearInterval(timer);
      this.#watchers.delete(timer);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#watchers) clearInterval(timer);
    this.#watchers.clear();
    await this.#client.close().catch(() => undefined);
  }
}
