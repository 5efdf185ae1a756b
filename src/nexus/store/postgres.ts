/**
 * The PostgreSQL backend (`SPIKE_NEXUS_BACKEND_STORE=postgres`, `SPIKE_NEXUS_DATABASE_URL`):
 * Drizzle over Bun's SQL client (`drizzle-orm/bun-sql`), one pool, several replicas over one
 * database (docs/architecture.md "PostgreSQL backend").
 *
 * A write of a path is one READ COMMITTED transaction that locks the path's head row
 * (`SELECT … FOR UPDATE`), plans (encryption included) and applies the write; a writer at any
 * replica waits on that lock and sees the first one's result, so no version number is ever
 * written twice. A new-path collision (23505), serialization failure (40001) or deadlock (40P01)
 * re-plans. Reads are one REPEATABLE READ, read-only transaction.
 *
 * Settings (key-check value, Vault mount configuration) are `store_meta` rows cached in the
 * process; the counters `policy_epoch` and `settings_epoch`, bumped in the writing transaction,
 * are polled (100 ms) so every replica follows policy and settings changes. The `shard_pusher`
 * lease row picks the one replica that sends shards (src/nexus/root-key/pusher.ts). A destroy or
 * purge is followed by a best-effort `VACUUM` of the secret tables.
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
  claimLease,
  type Db,
  pruneChanges,
  readChanges,
  releaseLease,
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
  watchPolicies(onChange: () => void): () => void;
  /**
   * Takes or renews the shard-pusher lease for `ttlMs` (database clock): true when `holder` holds
   * it now. `force` takes it from another holder (first boot, under the bootstrap lock).
   */
  claimShardPusher(holder: string, ttlMs: number, force: boolean): Promise<boolean>;
  /** Gives the lease up if `holder` holds it (a clean stop hands over at once). */
  releaseShardPusher(holder: string): Promise<void>;
}

const KCV_KEY = 'kcv';
const POLICY_EPOCH = 'policy_epoch';
const SETTINGS_EPOCH = 'settings_epoch';
const SHARD_PUSHER = 'shard_pusher';
/** How often the change counters are polled. */
const EPOCH_POLL_MS = 100;
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
    backend.startPolling(EPOCH_POLL_MS);
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
  #poller: ReturnType<typeof setInterval> | undefined;
  readonly #policyWatchers = new Set<() => void>();
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

  async #bumpEpoch(tx: Tx, key: string): Promise<void> {
    await tx
      .insert(storeMeta)
      .values({ key, value: '1' })
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
        await this.#bumpEpoch(tx, POLICY_EPOCH);
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
          await this.#bumpEpoch(tx, POLICY_EPOCH);
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
    return guarded(() =>
      this.#db.transaction(async (tx) => {
        await tx
          .insert(storeMeta)
          .values({ key, value })
          .onConflictDoUpdate({ target: storeMeta.key, set: { value } });
        await this.#bumpEpoch(tx, SETTINGS_EPOCH);
      }),
    );
  }

  refreshSettings(): Promise<void> {
    return guarded(async () => {
      const rows = await this.#db.select().from(storeMeta);
      this.#settings = new Map(rows.map((r) => [r.key, r.value]));
    });
  }

  claimShardPusher(holder: string, ttlMs: number, force: boolean): Promise<boolean> {
    this.#checkOpen();
    return guarded(() => claimLease(this.#client, SHARD_PUSHER, holder, ttlMs, force));
  }

  async releaseShardPusher(holder: string): Promise<void> {
    if (this.#closed) return;
    await guarded(() => releaseLease(this.#client, SHARD_PUSHER, holder));
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

  watchPolicies(onChange: () => void): () => void {
    this.#policyWatchers.add(onChange);
    return () => {
      this.#policyWatchers.delete(onChange);
    };
  }

  /**
   * Polls the two change counters: a new `policy_epoch` calls the policy watchers, a new
   * `settings_epoch` reloads the settings (the epoch read with them, so none is missed).
   */
  startPolling(intervalMs: number): void {
    let policyEpoch: string | undefined;
    let busy = false;
    const poll = async () => {
      const rows = await this.#db
        .select()
        .from(storeMeta)
        .where(sql`${storeMeta.key} IN (${POLICY_EPOCH}, ${SETTINGS_EPOCH})`);
      const value = (key: string) => rows.find((r) => r.key === key)?.value ?? '0';
      const policies = value(POLICY_EPOCH);
      if (policyEpoch !== undefined && policies !== policyEpoch) {
        for (const watcher of [...this.#policyWatchers]) watcher();
      }
      policyEpoch = policies;
      // The map holds the epoch it was read with; a local write leaves it behind, so it reloads too.
      if (value(SETTINGS_EPOCH) !== (this.#settings.get(SETTINGS_EPOCH) ?? '0')) {
        await this.refreshSettings();
      }
    };
    this.#poller = setInterval(() => {
      if (busy || this.#closed) return;
      busy = true;
      poll()
        .catch(() => undefined) // a dropped connection: the next poll tries again
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    this.#poller.unref?.();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poller);
    this.#policyWatchers.clear();
    await this.#client.close().catch(() => undefined);
  }
}
