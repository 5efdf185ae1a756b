/**
 * Schema migrations (schema/migrations, src/nexus/store/migrate.ts): the committed SQL matches
 * the Drizzle schema, the recorded schema version moves forward only, and a newer Nexus opens a
 * database written by an older one with its data intact.
 */

import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import journal from '../schema/migrations/meta/_journal.json';
import { concatBytes, utf8 } from '../src/core/bytes.ts';
import { seal } from '../src/core/crypto/envelope.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { openStore } from '../src/nexus/store/index.ts';
import {
  appliedMigrations,
  applyMigrations,
  MIGRATIONS,
  SCHEMA_VERSION,
} from '../src/nexus/store/migrate.ts';

const ROOT = join(import.meta.dir, '..');
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spike-mig-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect((caught as { code?: string } | undefined)?.code).toBe(code);
}

const columns = (db: Database, table: string) =>
  db
    .query<{ name: string }, []>(`PRAGMA table_info(${table})`)
    .all()
    .map((c) => c.name);

describe('committed migrations', () => {
  it('the embedded list is the drizzle-kit journal, file for file', () => {
    expect(MIGRATIONS.map((m) => m.tag)).toEqual(journal.entries.map((e) => e.tag));
    expect(MIGRATIONS.map((m) => m.version)).toEqual(journal.entries.map((e) => e.idx + 1));
    for (const m of MIGRATIONS) {
      expect(m.sql).toBe(readFileSync(join(ROOT, 'schema', 'migrations', `${m.tag}.sql`), 'utf8'));
    }
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
  });

  it('schema/tables.ts has no changes that lack a migration (drizzle-kit generate is a no-op)', () => {
    const work = tempDir();
    cpSync(join(ROOT, 'schema', 'migrations'), join(work, 'migrations'), { recursive: true });
    writeFileSync(
      join(work, 'config.ts'),
      `export default { dialect: 'sqlite', schema: ${JSON.stringify(join(ROOT, 'schema', 'tables.ts'))}, out: './migrations' };\n`,
    );
    const before = readdirSync(join(work, 'migrations')).sort();
    const run = Bun.spawnSync(
      [
        process.execPath,
        join(ROOT, 'node_modules', 'drizzle-kit', 'bin.cjs'),
        'generate',
        '--config',
        'config.ts',
      ],
      { cwd: work, stdout: 'pipe', stderr: 'pipe' },
    );
    const out = run.stdout.toString() + run.stderr.toString();
    expect(run.exitCode).toBe(0);
    expect(out).toContain('No schema changes');
    expect(readdirSync(join(work, 'migrations')).sort()).toEqual(before);
  }, 20_000);
});

describe('schema version', () => {
  it('a new database records every migration once; reopening applies nothing twice', async () => {
    const dir = tempDir();
    for (let i = 0; i < 2; i++) {
      const store = await openStore({ backend: 'sqlite', dataDir: dir });
      await store.close();
    }
    const db = new Database(join(dir, 'spike.db'));
    expect(appliedMigrations(db)).toEqual(
      MIGRATIONS.map((m) => ({ version: m.version, tag: m.tag })),
    );
    expect(applyMigrations(db)).toBe(SCHEMA_VERSION);
    expect(db.query<{ n: number }, []>('SELECT count(*) AS n FROM schema_version').get()?.n).toBe(
      SCHEMA_VERSION,
    );
    db.close();
  });

  it('a newer Nexus opens a database created by migration 1, data intact', async () => {
    const dir = tempDir();
    const file = join(dir, 'spike.db');
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const keys = (await createStaticRootKeyProvider(rootKey)).keys()!;
    const old = new Database(file);
    old.run('PRAGMA journal_mode = WAL');
    expect(applyMigrations(old, MIGRATIONS.slice(0, 1))).toBe(1);
    expect(columns(old, 'secrets')).not.toContain('max_versions');
    // Rows as the version-1 schema stores them, sealed with the docs/spike-api.md §9 formats.
    const aad = (label: string, ...parts: string[]) =>
      concatBytes(utf8.encode(label), ...parts.flatMap((p) => [Uint8Array.of(0), utf8.encode(p)]));
    const t = Date.UTC(2025, 5, 1);
    old.run(
      'INSERT INTO secrets (path, created_at, updated_at, latest_version, revision) VALUES (?, ?, ?, ?, ?)',
      ['legacy/app', t, t + 2, 2, 2],
    );
    for (const [version, value] of [
      [1, 'old-one'],
      [2, 'old-two'],
    ] as const) {
      const data = await seal(
        keys.storage,
        utf8.encode(JSON.stringify({ v: value })),
        aad('spike/v1/secret', 'legacy/app', String(version)),
      );
      old.run(
        'INSERT INTO secret_versions (path, version, data, created_at, deleted_at, destroyed) VALUES (?, ?, ?, ?, ?, ?)',
        ['legacy/app', version, data, t + version, version === 1 ? t + 5 : null, 0],
      );
    }
    const policyData = await seal(
      keys.storage,
      utf8.encode(
        JSON.stringify({
          spiffeIdPattern: '^spiffe://a/b$',
          pathPattern: '^legacy/',
          permissions: ['read'],
        }),
      ),
      aad('spike/v1/policy', 'legacy readers'),
    );
    old.run('INSERT INTO policies (name, data, created_at, updated_at) VALUES (?, ?, ?, ?)', [
      'legacy readers',
      policyData,
      t,
      t,
    ]);
    old.run("INSERT INTO store_meta (key, value) VALUES ('kcv', ?)", [keys.kcv]);
    old.close();

    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const provider = await createStaticRootKeyProvider(rootKey);
    const secrets = store.secrets(provider);
    expect(await secrets.get('legacy/app')).toEqual({ v: 'old-two' });
    await expect(secrets.get('legacy/app', 1)).rejects.toMatchObject({ code: 'api_not_found' });
    const m = await secrets.metadata('legacy/app');
    expect(m.versions.map((v) => [v.version, v.deletedTime?.getTime() ?? null])).toEqual([
      [1, t + 5],
      [2, null],
    ]);
    expect(m.createdTime.getTime()).toBe(t);
    expect(m.maxVersions).toBe(10);
    expect(await secrets.put('legacy/app', { v: 'new' })).toEqual({ version: 3 });
    await secrets.undelete('legacy/app', [1]);
    expect(await secrets.get('legacy/app', 1)).toEqual({ v: 'old-one' });
    expect((await store.policies(provider).get('legacy readers')).pathPattern).toBe('^legacy/');
    expect(store.getKcv()).toBe(keys.kcv);
    await store.close();

    const db = new Database(file);
    expect(appliedMigrations(db).map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(columns(db, 'secrets')).toEqual(
      expect.arrayContaining([
        'max_versions',
        'cas_required',
        'delete_version_after_ms',
        'custom_metadata',
      ]),
    );
    // The Vault-only columns stay unset by SPIKE writes.
    expect(
      db.query('SELECT max_versions, cas_required, custom_metadata FROM secrets').all(),
    ).toEqual([{ max_versions: null, cas_required: null, custom_metadata: null }]);
    db.close();
  });

  it('an older Nexus refuses a newer database, and a foreign lineage, without touching it', async () => {
    const dir = tempDir();
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    await store.close();
    const file = join(dir, 'spike.db');
    const db = new Database(file);
    // What this code would be as an older release: only the first migration.
    await rejectsWithCode(
      Promise.resolve().then(() => applyMigrations(db, MIGRATIONS.slice(0, 1))),
      'config_invalid',
    );
    db.run("INSERT INTO schema_version (version, tag, applied_at) VALUES (?, '0099_future', 0)", [
      SCHEMA_VERSION + 1,
    ]);
    db.close();
    await rejectsWithCode(openStore({ backend: 'sqlite', dataDir: dir }), 'config_invalid');

    const dir2 = tempDir();
    const db2 = new Database(join(dir2, 'spike.db'));
    applyMigrations(db2, MIGRATIONS.slice(0, 1));
    db2.run("UPDATE schema_version SET tag = '0000_something_else' WHERE version = 1");
    db2.close();
    await rejectsWithCode(openStore({ backend: 'sqlite', dataDir: dir2 }), 'config_invalid');
    const check = new Database(join(dir2, 'spike.db'));
    expect(appliedMigrations(check).length).toBe(1);
    check.close();
  });

  it('SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION checks instead of migrating', async () => {
    const empty = tempDir();
    await rejectsWithCode(
      openStore({ backend: 'sqlite', dataDir: empty, skipSchemaCreation: true }),
      'config_invalid',
    );
    const oldDir = tempDir();
    const db = new Database(join(oldDir, 'spike.db'));
    applyMigrations(db, MIGRATIONS.slice(0, 1));
    db.close();
    await rejectsWithCode(
      openStore({ backend: 'sqlite', dataDir: oldDir, skipSchemaCreation: true }),
      'config_invalid',
    );
    const current = tempDir();
    await (await openStore({ backend: 'sqlite', dataDir: current })).close();
    const store = await openStore({
      backend: 'sqlite',
      dataDir: current,
      skipSchemaCreation: true,
    });
    const s = store.secrets(await createStaticRootKeyProvider());
    expect(await s.put('x', { a: 'b' })).toEqual({ version: 1 });
    await store.close();
  });
});

describe('PostgreSQL schema (schema/pg)', () => {
  it('names the same tables and columns as the SQLite schema; its migrations are its journal', async () => {
    const { getTableConfig: sqliteConfig } = await import('drizzle-orm/sqlite-core');
    const { getTableConfig: pgConfig } = await import('drizzle-orm/pg-core');
    const lite = await import('../schema/tables.ts');
    const pg = await import('../schema/pg/tables.ts');
    for (const name of ['secrets', 'secretVersions', 'policies', 'storeMeta'] as const) {
      const a = sqliteConfig(lite[name]);
      const b = pgConfig(pg[name]);
      expect(b.name).toBe(a.name);
      expect(b.columns.map((c) => [c.name, c.notNull, c.primary])).toEqual(
        a.columns.map((c) => [c.name, c.notNull, c.primary]),
      );
    }
    const { PG_MIGRATIONS } = await import('../schema/pg/migrations/index.ts');
    const pgJournal = JSON.parse(
      readFileSync(join(ROOT, 'schema', 'pg', 'migrations', 'meta', '_journal.json'), 'utf8'),
    ) as { entries: { idx: number; tag: string }[] };
    expect(PG_MIGRATIONS.map((m) => m.tag)).toEqual(pgJournal.entries.map((e) => e.tag));
    for (const m of PG_MIGRATIONS) {
      expect(m.sql).toBe(
        readFileSync(join(ROOT, 'schema', 'pg', 'migrations', `${m.tag}.sql`), 'utf8'),
      );
    }
  });
});
