/**
 * The SQLite backend (`SPIKE_NEXUS_BACKEND_STORE=sqlite`, the default): Drizzle over `bun:sqlite`
 * (docs/architecture.md decision 10), one connection, prepared statements.
 *
 * Durability (invariant 3): WAL journal with `synchronous=FULL`, so a commit is fsynced to the
 * WAL before the write that caused it is acknowledged. Atomicity (docs/spike-api.md §6): a write of a
 * path holds an in-process per-path lock while it reads, encrypts and writes, and applies its
 * changes in a savepoint of the group's `BEGIN IMMEDIATE` transaction (./group-commit.ts: the
 * writes of one tick share one transaction and one fsync) that first re-checks the path's
 * revision (a changed revision means another writer won: the write is re-planned). bun:sqlite
 * is synchronous, so a transaction never interleaves with other statements on the connection.
 * After start-up the connection never waits on another process's lock (`busy_timeout=0`, async
 * retries, then `state_not_ready`: docs/architecture.md "Group commit and a busy database").
 *
 * Reads (§6 Get) are one `SELECT`: the head row and every version's state, `UNION ALL`ed, plus the
 * data of the version a read of the current version resolves to (the highest version never
 * deleted or destroyed). One statement is one consistent snapshot, with no transaction around it;
 * only a read that picks another version falls back to a deferred transaction of three queries.
 *
 * Erasure (destroy, purge): `secure_delete` overwrites freed content with zeros, and a
 * `wal_checkpoint(TRUNCATE)` after every destroy or purge moves the zeroed pages into the database
 * and empties the `-wal` file, so the erased ciphertext is left in neither file.
 *
 * One Nexus process owns a database file. The file is created with mode 0600 (SQLite gives the
 * `-wal` and `-shm` files the same mode) inside the 0700 data directory.
 */
import { Database } from 'bun:sqlite';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { drizzle } from 'drizzle-orm/bun-sqlite';
import { SpikeError } from '../../core/errors.ts';
import type { VersionState } from '../../core/kv/semantics.ts';
import {
  EMPTY_VAULT_HEAD,
  mergeVaultHead,
  type PolicyRow,
  type SecretPlan,
  type SecretRead,
  type SecretRecord,
  type SecretUpdate,
  type SecretWrite,
  type StoreBackend,
  setsVaultHead,
} from './backend.ts';
import { changeOf, policyChange } from './change-log.ts';
import { guard, storageFailure } from './errors.ts';
import { busyError, GroupCommit, isBusy } from './group-commit.ts';
import { KeyedLock } from './lock.ts';
import { applyMigrations, checkSchema } from './migrate.ts';
import { HEAD_ROW, prepareQueries } from './queries.ts';
import { SqliteChanges } from './sqlite-changes.ts';

/** Journal modes that keep commits durable; `MEMORY` and `OFF` would break invariant 3. */
export type JournalMode = 'WAL' | 'DELETE' | 'TRUNCATE' | 'PERSIST';

export interface SqliteBackendOptions {
  /** The database file, normally `<data dir>/spike.db`. */
  readonly file: string;
  /** `SPIKE_NEXUS_DB_JOURNAL_MODE`; default `WAL`. */
  readonly journalMode?: JournalMode;
  /** `SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS`; default 5000. */
  readonly busyTimeoutMs?: number;
  /** `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION`: only check the schema, never migrate. */
  readonly skipSchemaCreation?: boolean;
}

/** How many times a write is re-planned after losing a revision check before it gives up. */
const MAX_ATTEMPTS = 5;
const KCV_KEY = 'kcv';
/** The longest a request waits for another process's write lock before `state_not_ready` (ms). */
const MAX_BUSY_WAIT_MS = 1000;

function createPrivateFile(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}

function configure(db: Database, options: SqliteBackendOptions): void {
  const mode = options.journalMode ?? 'WAL';
  const got = db.query<{ journal_mode: string }, []>(`PRAGMA journal_mode = ${mode}`).get();
  if (got?.journal_mode.toUpperCase() !== mode) {
    throw new SpikeError('config_invalid', `SQLite refused journal mode ${mode}`);
  }
  db.run('PRAGMA synchronous = FULL');
  db.run(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
  db.run('PRAGMA foreign_keys = ON');
  db.run('PRAGMA secure_delete = ON');
}

/** Whether a write erases data for good (a purge, or a destroy), so that it must not linger. */
function erases(write: SecretWrite): boolean {
  return write.head === null || (write.update ?? []).some((state) => state.destroyed);
}

/**
 * Opens (creating if needed) the database file, migrates it to the current schema and returns
 * the backend. Throws `config_invalid` for a database from a newer Nexus.
 */
export function openSqliteBackend(options: SqliteBackendOptions): StoreBackend {
  const client = guard(() => {
    createPrivateFile(options.file);
    const db = new Database(options.file, { create: true, readwrite: true, strict: true });
    try {
      configure(db, options);
      if (options.skipSchemaCreation === true) checkSchema(db);
      else applyMigrations(db);
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  });
  return guard(() => new SqliteBackend(client, Math.trunc(options.busyTimeoutMs ?? 5000)));
}

/** The Vault head fields as bound parameters (booleans as 0/1, as the column stores them). */
function vaultParams(v: ReturnType<typeof mergeVaultHead>): Record<string, unknown> {
  return {
    maxVersions: v.maxVersions,
    casRequired: v.casRequired === null ? null : v.casRequired ? 1 : 0,
    deleteVersionAfterMs: v.deleteVersionAfterMs,
    customMetadata: v.customMetadata,
    oldestVersion: v.oldestVersion,
  };
}

/**
 * One row of the one-statement read as `values()` returns it (columns in selection order, no
 * per-row mapping). Head row: created, updated, latest version, revision, max versions, cas
 * required (0/1/NULL), delete-version-after, oldest version, sealed custom metadata. Version
 * row: version, created, deleted, destroyed (0/1), read-ahead flag (1 when `data` is this
 * version's data, else 0 or NULL and `data` is NULL), NULL, NULL, NULL, data.
 */
type ReadRow = readonly [
  kind: number,
  a: number,
  b: number,
  c: number | null,
  d: number | null,
  e: number | null,
  f: number | null,
  g: number | null,
  h: number | null,
  data: Uint8Array | null,
];

/** What the one-statement read found: the record and the read-ahead version with its data. */
interface ReadAhead {
  readonly record: SecretRecord;
  /** The version whose data came along, if any. */
  readonly version: number | undefined;
  readonly data: Uint8Array | null;
}

/** Splits the rows of the one-statement read; `undefined` for a missing path. */
function readAheadOf(path: string, rows: readonly ReadRow[]): ReadAhead | undefined {
  let head: SecretRecord['head'] | undefined;
  const versions: VersionState[] = [];
  let aheadVersion: number | undefined;
  let aheadData: Uint8Array | null = null;
  for (const [kind, a, b, c, d, e, f, g, h, data] of rows) {
    if (kind === HEAD_ROW) {
      head = {
        createdAt: a,
        updatedAt: b,
        latestVersion: c as number,
        revision: d as number,
        maxVersions: e,
        casRequired: f === null ? null : Number(f) === 1,
        deleteVersionAfterMs: g,
        oldestVersion: h ?? 0,
        customMetadata: data,
      };
      continue;
    }
    // `destroyed` is a 0/1 column, read the way drizzle's boolean mode reads it.
    versions.push({ version: a, createdAt: b, deletedAt: c, destroyed: Number(d) === 1 });
    if (e === 1) {
      aheadVersion = a;
      aheadData = data;
    }
  }
  if (head === undefined) return undefined;
  // A UNION ALL has no defined order; the record lists versions ascending.
  versions.sort((x, y) => x.version - y.version);
  return { record: { path, head, versions }, version: aheadVersion, data: aheadData };
}

class SqliteBackend implements StoreBackend {
  readonly kind = 'sqlite' as const;
  readonly #client: Database;
  readonly #lock = new KeyedLock();
  #closed = false;
  readonly #q: ReturnType<typeof prepareQueries>;
  readonly #readTx;
  readonly #group: GroupCommit;
  readonly #busyTimeoutMs: number;
  readonly #busyBudgetMs: number;
  readonly #changes: SqliteChanges;

  constructor(client: Database, busyTimeoutMs: number) {
    this.#client = client;
    this.#busyTimeoutMs = busyTimeoutMs;
    const busyBudgetMs = Math.min(busyTimeoutMs, MAX_BUSY_WAIT_MS);
    this.#busyBudgetMs = busyBudgetMs;
    // From here on the connection never waits on a lock (./group-commit.ts).
    client.run('PRAGMA busy_timeout = 0');
    this.#q = prepareQueries(drizzle({ client }));
    this.#changes = new SqliteChanges(client);

    this.#readTx = client.transaction(
      (path: string, pick?: (record: SecretRecord) => number | undefined) => {
        const record = this.#loadRecord(path);
        if (record === undefined) return undefined;
        const version = pick?.(record);
        if (version === undefined) return { record, data: undefined };
        const row = this.#q.data.get({ path, version });
        return { record, data: row === undefined ? undefined : row.data };
      },
    );

    this.#group = new GroupCommit(client, {
      busyBudgetMs,
      // Outside WAL mode the pragma does nothing; the data is then overwritten in place.
      afterCommit: () => client.run('PRAGMA wal_checkpoint(TRUNCATE)'),
    });
  }

  /**
   * The statements of one write of a path, run inside the group's transaction (./group-commit.ts);
   * false when the path's revision is not `expected` (another writer won).
   */
  #apply(path: string, expected: number, write: SecretWrite): boolean {
    const q = this.#q;
    const row = q.revision.get({ path });
    if ((row?.revision ?? 0) !== expected) return false;
    const change = changeOf(path, write);
    if (change !== undefined) this.#changes.append(change);
    if (write.head === null) {
      q.deleteAllVersions.run({ path });
      q.deleteHead.run({ path });
      return true;
    }
    const { createdAt, updatedAt, latestVersion } = write.head;
    if (row === undefined) {
      q.insertHead.run({
        path,
        createdAt,
        updatedAt,
        latestVersion,
        ...vaultParams(mergeVaultHead(EMPTY_VAULT_HEAD, write.head)),
      });
    } else {
      q.updateHead.run({ path, createdAt, updatedAt, latestVersion });
      if (setsVaultHead(write.head)) {
        const stored = q.head.get({ path });
        if (stored !== undefined) {
          q.updateVaultHead.run({ path, ...vaultParams(mergeVaultHead(stored, write.head)) });
        }
      }
    }
    for (const { state, data } of write.insert ?? []) {
      q.insertVersion.run({
        path,
        version: state.version,
        data,
        createdAt: state.createdAt,
        deletedAt: state.deletedAt,
        destroyed: state.destroyed ? 1 : 0,
      });
    }
    for (const state of write.update ?? []) {
      const params = { path, version: state.version, deletedAt: state.deletedAt };
      if (state.destroyed) q.destroyVersion.run(params);
      else q.updateVersion.run(params);
    }
    for (const version of write.remove ?? []) q.deleteVersion.run({ path, version });
    return true;
  }

  /**
   * A read on the request path: the connection never waits on a lock (busy_timeout=0), so a read
   * that meets `SQLITE_BUSY` (rare in WAL mode) is retried after a short sleep, within the budget.
   */
  async #read<T>(fn: () => T): Promise<T> {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw storageFailure(error);
        if (performance.now() - started >= this.#busyBudgetMs) throw busyError();
      }
      await Bun.sleep(Math.min(2 ** attempt, 50));
    }
  }

  /** A synchronous setter (start-up only): waits on a lock up to the configured busy timeout. */
  #waiting<T>(fn: () => T): T {
    return guard(() => {
      this.#client.run(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      try {
        return fn();
      } finally {
        this.#client.run('PRAGMA busy_timeout = 0');
      }
    });
  }

  #loadRecord(path: string): SecretRecord | undefined {
    const head = this.#q.head.get({ path });
    if (head === undefined) return undefined;
    const versions: VersionState[] = this.#q.versions.all({ path });
    return { path, head, versions };
  }

  async readSecret(
    path: string,
    pick?: (record: SecretRecord) => number | undefined,
  ): Promise<SecretRead | undefined> {
    const rows = await this.#read(() => this.#q.read.values({ path }) as unknown as ReadRow[]);
    const read = readAheadOf(path, rows);
    if (read === undefined) return undefined;
    const { record } = read;
    const version = pick?.(record);
    if (version === undefined) return { record, data: undefined };
    if (version === read.version) return { record, data: read.data };
    if (!record.versions.some((v) => v.version === version)) return { record, data: undefined };
    // Another version than the read-ahead one: read everything again in one transaction.
    return this.#read(() => this.#readTx.deferred(path, pick));
  }

  async listSecretPaths(): Promise<string[]> {
    return this.#read(() => this.#q.paths.values().map((r) => r[0] as string));
  }

  updateSecret<T>(path: string, plan: SecretPlan<T>): Promise<T> {
    return this.#lock.run(path, async () => {
      for (let attempt = 1; ; attempt++) {
        let expected = 0;
        let update: SecretUpdate<T>;
        this.#group.planning();
        try {
          const record = await this.#read(() => this.#loadRecord(path));
          expected = record?.head.revision ?? 0;
          update = await plan(record);
        } finally {
          this.#group.planned();
        }
        const { write, result } = update;
        if (write === null) return result;
        const applied = await this.#group.run(
          () => this.#apply(path, expected, write),
          erases(write),
        );
        if (applied) {
          this.#changes.committed();
          return result;
        }
        if (attempt >= MAX_ATTEMPTS) {
          throw new SpikeError('api_internal_error', 'storage conflict');
        }
      }
    });
  }

  async upsertPolicy(name: string, data: Uint8Array, now: number) {
    const row = await this.#group.run(() => {
      const upserted = this.#q.upsertPolicy.get({ name, data, now });
      if (upserted === undefined) throw new Error('upsert returned nothing');
      this.#changes.append(policyChange(name));
      return upserted;
    });
    this.#changes.committed();
    return row;
  }

  async readPolicy(name: string): Promise<PolicyRow | undefined> {
    return this.#read(() => this.#q.policy.get({ name }));
  }

  async listPolicies(): Promise<PolicyRow[]> {
    return this.#read(() => this.#q.policies.all());
  }

  async deletePolicy(name: string): Promise<boolean> {
    const gone = await this.#group.run(() => {
      const found = this.#q.deletePolicy.all({ name }).length > 0;
      if (found) this.#changes.append(policyChange(name));
      return found;
    });
    if (gone) this.#changes.committed();
    return gone;
  }

  readChanges(after: number, limit: number) {
    return this.#read(() => this.#changes.read(after, limit));
  }

  changeBounds() {
    return this.#read(() => this.#changes.bounds());
  }

  async pruneChanges(time: number): Promise<void> {
    await this.#group.run(() => this.#changes.prune(time));
  }

  onCommit(listener: () => void): () => void {
    return this.#changes.onCommit(listener);
  }

  getKcv(): string | undefined {
    return this.#waiting(() => this.#q.getMeta.get({ key: KCV_KEY })?.value);
  }

  setKcv(kcv: string): void {
    this.#waiting(() => this.#q.setMeta.run({ key: KCV_KEY, value: kcv }));
  }

  getSetting(key: string): string | undefined {
    if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
    return this.#waiting(() => this.#q.getMeta.get({ key })?.value);
  }

  setSetting(key: string, value: string): void {
    if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
    this.#waiting(() => this.#q.setMeta.run({ key, value }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    guard(() => {
      // Unfinalized statements would leave SQLite's connection open as a "zombie" (no final
      // checkpoint, file handles kept), so finalize every prepared statement first.
      for (const query of Object.values(this.#q)) {
        (query as unknown as { stmt?: { finalize(): void } }).stmt?.finalize();
      }
      for (const statement of this.#group.statements()) statement.finalize();
      for (const statement of this.#changes.statements()) statement.finalize();
      this.#client.close(true);
    });
  }
}
