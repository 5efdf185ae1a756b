/**
 * The Nexus store: one factory that opens a backend and hands out the domain objects built on it
 * (docs/architecture.md decision 10, docs/spike-api.md §6, §7, §9, §10).
 *
 * ```ts
 * const store = await openStore({ backend: 'sqlite', dataDir: resolveDataDir(process.env).dir });
 * const keys = new MutableRootKeyProvider();          // not ready: operations → state_not_ready
 * const secrets = store.secrets(keys);                 // core/ports.ts Secrets
 * const policies = store.policies(keys);               // core/ports.ts PolicyStore
 * if (store.getKcv() === undefined) store.setKcv((await keys.install(rootKey)).kcv);
 * await store.close();
 * ```
 *
 * `secrets` and `policies` may be called any number of times; every object they return consults
 * its key provider on each call, so objects made before the key is installed start working once
 * it is. Storage faults surface as `api_internal_error` "storage failure" with no values attached.
 */
import { join } from 'node:path';
import { DEFAULT_MAX_VERSIONS } from '../../core/kv/semantics.ts';
import type { EpochClock, PolicyStore, RootKeyProvider, Secrets } from '../../core/ports.ts';
import { DATABASE_FILE } from '../data-dir.ts';
import { ChangeFeed } from '../watch/feed.ts';
import type { StoreBackend } from './backend.ts';
import { createMemoryBackend } from './memory.ts';
import { createPolicyStore } from './policies.ts';
import { openPostgresBackend, type PostgresBackend } from './postgres.ts';
import { createSecrets } from './secrets.ts';
import { type JournalMode, openSqliteBackend } from './sqlite.ts';
import { createMountConfigStore, createVaultKv, type VaultKv } from './vault-kv.ts';

export type { StoreBackend } from './backend.ts';
export type { JournalMode } from './sqlite.ts';
export type { KvMetadata, KvRead, VaultKv } from './vault-kv.ts';
export { DATABASE_FILE };

/** Backends that have a store (`lite` has none: it serves only the cipher routes). */
export type StoreKind = 'sqlite' | 'memory' | 'postgres';

export interface OpenStoreOptions {
  readonly backend: StoreKind;
  /** The data directory (see `resolveDataDir`); required for `sqlite`. */
  readonly dataDir?: string;
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`, an integer ≥ 1; default 10. */
  readonly maxVersions?: number;
  /** Epoch milliseconds; default `Date.now`. */
  readonly clock?: EpochClock;
  /** SQLite only: `SPIKE_NEXUS_DB_JOURNAL_MODE` (default `WAL`). */
  readonly journalMode?: JournalMode;
  /** SQLite only: `SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS` (default 5000). */
  readonly busyTimeoutMs?: number;
  /** SQLite and PostgreSQL: `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION` (check, do not migrate). */
  readonly skipSchemaCreation?: boolean;
  /** PostgreSQL only: `SPIKE_NEXUS_DATABASE_URL`; required for `postgres`. */
  readonly databaseUrl?: string;
  /** `SPIKE_NEXUS_WATCH_RETENTION` (ms): how long change-log entries are kept; default 24h. */
  readonly watchRetentionMs?: number;
  /** PostgreSQL: how often the change log is polled for other replicas' commits; 100 ms. */
  readonly watchPollMs?: number;
}

export interface NexusStore {
  readonly kind: StoreKind;
  /** The database file (`<dataDir>/spike.db`) for `sqlite`. */
  readonly file: string | undefined;
  /** Versioned secrets (docs/spike-api.md §6) sealed under `keys`' storage key. */
  secrets(keys: Pick<RootKeyProvider, 'keys'>): Secrets;
  /** The Vault KV v2 view of the same secrets (docs/vault-kv2.md §4). */
  vault(keys: Pick<RootKeyProvider, 'keys'>): VaultKv;
  /** Policies (§7) sealed under `keys`' storage key. */
  policies(keys: Pick<RootKeyProvider, 'keys'>): PolicyStore;
  /** The stored key-check value (§9), `undefined` before the first key. Plaintext by design. */
  getKcv(): string | undefined;
  /** Records the key-check value (32 lowercase hex characters) durably. */
  setKcv(kcv: string): void | Promise<void>;
  /**
   * Runs `fn` so that no other replica sharing the database runs its own `fn` at the same time,
   * with the key-check value re-read first (PostgreSQL: an advisory lock; else just runs `fn`).
   */
  withBootstrapLock<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Calls `onChange` when another replica may have changed a policy (PostgreSQL; a no-op for the
   * single-process backends). Returns the function that stops watching.
   */
  watchPolicies(onChange: () => void): () => void;
  /** The change feed over the store's change log (src/nexus/watch/feed.ts), started. */
  readonly changes: ChangeFeed;
  /** Closes the database. */
  close(): Promise<void>;
}

const KCV_FORMAT = /^[0-9a-f]{32}$/;

/** Opens the store named by `options.backend` (SQLite: creating and migrating the database). */
export async function openStore(options: OpenStoreOptions): Promise<NexusStore> {
  const maxVersions = options.maxVersions ?? DEFAULT_MAX_VERSIONS;
  if (!Number.isSafeInteger(maxVersions) || maxVersions < 1) {
    throw new RangeError('maxVersions must be an integer ≥ 1');
  }
  const clock = options.clock ?? Date.now;
  let backend: StoreBackend;
  let shared: PostgresBackend | undefined;
  let file: string | undefined;
  if (options.backend === 'postgres') {
    if (options.databaseUrl === undefined) {
      throw new TypeError('the postgres backend needs a databaseUrl');
    }
    shared = await openPostgresBackend({
      url: options.databaseUrl,
      ...(options.skipSchemaCreation === undefined
        ? {}
        : { skipSchemaCreation: options.skipSchemaCreation }),
    });
    backend = shared;
  } else if (options.backend === 'sqlite') {
    if (options.dataDir === undefined) throw new TypeError('the sqlite backend needs a dataDir');
    file = join(options.dataDir, DATABASE_FILE);
    backend = openSqliteBackend({
      file,
      ...(options.journalMode === undefined ? {} : { journalMode: options.journalMode }),
      ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
      ...(options.skipSchemaCreation === undefined
        ? {}
        : { skipSchemaCreation: options.skipSchemaCreation }),
    });
  } else if (options.backend === 'memory') {
    backend = createMemoryBackend();
  } else {
    throw new TypeError('unknown store backend');
  }
  const mount = createMountConfigStore(backend);
  const changes = new ChangeFeed(backend, {
    retentionMs: options.watchRetentionMs ?? 24 * 3600_000,
    ...(shared === undefined ? {} : { pollMs: options.watchPollMs ?? 100 }),
  });
  try {
    await changes.start();
  } catch (error) {
    changes.close();
    await backend.close();
    throw error;
  }
  return {
    kind: options.backend,
    file,
    secrets: (keys) => createSecrets(backend, keys, { maxVersions, clock, mount: mount.get }),
    vault: (keys) => createVaultKv(backend, keys, { maxVersions, clock, mount }),
    policies: (keys) => createPolicyStore(backend, keys, clock),
    getKcv: () => backend.getKcv(),
    setKcv(kcv) {
      if (!KCV_FORMAT.test(kcv)) throw new TypeError('kcv must be 32 lowercase hex characters');
      return backend.setKcv(kcv);
    },
    withBootstrapLock: (fn) => (shared === undefined ? fn() : shared.withBootstrapLock(fn)),
    watchPolicies: (onChange) => shared?.watchPolicies(onChange) ?? (() => {}),
    changes,
    close: () => {
      changes.close();
      return backend.close();
    },
  };
}
