/**
 * The store backends the contract suites run over (issue 13: one suite, three backends).
 *
 * `STORE_BACKENDS` lists sqlite, memory and postgres. PostgreSQL runs when
 * `SPIKE_TEST_DATABASE_URL` names a server the tests may create databases on (`.ci/postgres`
 * starts a throwaway one); otherwise its suites are declared with `describe.skipIf` and reported
 * as skipped. Each `location()` is a fresh, empty store: a temp data directory for SQLite, a
 * new database for PostgreSQL; opening the same location twice gives two stores (two "replicas")
 * over the same data.
 */
import { afterAll } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQL } from 'bun';
import { type OpenStoreOptions, openStore, type StoreKind } from '../../src/nexus/store/index.ts';

/** The server the postgres cases use, or `undefined` (they are skipped). */
export const TEST_DATABASE_URL: string | undefined =
  process.env.SPIKE_TEST_DATABASE_URL || undefined;
/** The cluster's data directory, for the "no plaintext at rest" scan (set by `.ci/postgres`). */
export const TEST_PG_DATA_DIR: string | undefined = process.env.SPIKE_TEST_PG_DATA_DIR || undefined;
/** The PostgreSQL binaries (pg_dump), set by `.ci/postgres`. */
export const TEST_PG_BIN: string | undefined = process.env.SPIKE_TEST_PG_BIN || undefined;

/** Where a store lives: what `openStore` needs besides the backend name. */
export type StoreLocation = Pick<OpenStoreOptions, 'backend' | 'dataDir' | 'databaseUrl'>;

export interface BackendCase {
  readonly kind: StoreKind;
  /** True when this backend cannot run here (postgres without a server). */
  readonly skip: boolean;
  /** A fresh, empty store location. */
  location(): Promise<StoreLocation>;
}

const dirs: string[] = [];
const databases: string[] = [];
let admin: SQL | undefined;

afterAll(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (admin !== undefined) {
    const server = admin;
    await Promise.all(
      databases
        .splice(0)
        .map((name) =>
          server.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined),
        ),
    );
    await server.close().catch(() => undefined);
    admin = undefined;
  }
}, 120_000);

/** A new, empty database on the test server; returns its URL. */
export async function freshDatabase(): Promise<string> {
  if (TEST_DATABASE_URL === undefined) throw new Error('SPIKE_TEST_DATABASE_URL is not set');
  admin ??= new SQL(TEST_DATABASE_URL, { max: 4 });
  const name = `spike_t_${process.pid}_${databases.length}_${crypto.randomUUID().slice(0, 8)}`;
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  databases.push(name);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

function freshDataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spike-store-'));
  dirs.push(d);
  return d;
}

export const STORE_BACKENDS: readonly BackendCase[] = [
  {
    kind: 'sqlite',
    skip: false,
    location: async () => ({ backend: 'sqlite', dataDir: freshDataDir() }),
  },
  { kind: 'memory', skip: false, location: async () => ({ backend: 'memory' }) },
  {
    kind: 'postgres',
    skip: TEST_DATABASE_URL === undefined,
    location: async () => ({ backend: 'postgres', databaseUrl: await freshDatabase() }),
  },
];

/** Opens a store at `location` with the extra options of a test. */
export function openAt(
  location: StoreLocation,
  extra: Omit<OpenStoreOptions, keyof StoreLocation> = {},
): ReturnType<typeof openStore> {
  return openStore({ ...location, ...extra });
}
