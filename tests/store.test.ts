/**
 * The Nexus store (src/nexus/store): the docs/spike-api.md §6 semantics table, policies and the key-check record,
 * run against BOTH backends (one suite, parameterised by backend), plus the SQLite-only
 * properties: no lost updates under concurrent writers, pruned rows physically gone, durability
 * across a reopen, and the data-directory rules of §10.
 */

import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSpikeError, type SpikeErrorCode } from '../src/core/errors.ts';
import type { PolicyStore, Secrets } from '../src/core/ports.ts';
import { checkDataDir, resolveDataDir } from '../src/nexus/data-dir.ts';
import {
  createStaticRootKeyProvider,
  MutableRootKeyProvider,
} from '../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore } from '../src/nexus/store/index.ts';
import { type BackendCase, openAt, STORE_BACKENDS } from './support/store-backends.ts';

const tempDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spike-store-'));
  tempDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: SpikeErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  if (!isSpikeError(caught)) throw new Error(`expected SpikeError ${code}, got ${String(caught)}`);
  expect(caught.code).toBe(code);
}

/** Counts rows with raw SQL on a separate connection (sees only committed data). */
function rawQuery<T>(file: string, query: string, ...params: (string | number)[]): T[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.query<T, (string | number)[]>(query).all(...params);
  } finally {
    db.close();
  }
}

const START = Date.UTC(2026, 0, 1, 12, 0, 0);

function backendSuite({ kind, skip, location }: BackendCase): void {
  describe.skipIf(skip)(`store on ${kind}`, () => {
    let now = START;
    const tick = (ms = 1000) => {
      now += ms;
      return now;
    };
    let store: NexusStore;
    let secrets: Secrets;
    let policies: PolicyStore;
    let n = 0;
    const fresh = (prefix = 'p') => `${prefix}/${kind}/${++n}`;
    const rowsOf = (path: string) =>
      store.file === undefined
        ? undefined
        : rawQuery<{ version: number; data: Uint8Array | null; destroyed: number }>(
            store.file,
            'SELECT version, data, destroyed FROM secret_versions WHERE path = ? ORDER BY version',
            path,
          );

    beforeAll(async () => {
      store = await openAt(await location(), { maxVersions: 3, clock: () => now });
      const keys = await createStaticRootKeyProvider();
      secrets = store.secrets(keys);
      policies = store.policies(keys);
    });
    afterAll(async () => {
      await store.close();
    });

    describe('put', () => {
      it('new path: version 1; created = updated = now; current = oldest = 1', async () => {
        const p = fresh();
        const t = tick();
        expect(await secrets.put(p, { user: 'admin', pass: 's3cret' })).toEqual({ version: 1 });
        expect(await secrets.get(p)).toEqual({ user: 'admin', pass: 's3cret' });
        const m = await secrets.metadata(p);
        expect(m.currentVersion).toBe(1);
        expect(m.oldestVersion).toBe(1);
        expect(m.createdTime.getTime()).toBe(t);
        expect(m.updatedTime.getTime()).toBe(t);
        expect(m.maxVersions).toBe(3);
        expect(m.versions).toEqual([
          { version: 1, createdTime: new Date(t), deletedTime: null, destroyed: false },
        ]);
      });

      it('existing path: highest + 1 becomes current; updated moves, created stays', async () => {
        const p = fresh();
        const t1 = tick();
        await secrets.put(p, { v: 'one' });
        const t2 = tick();
        expect(await secrets.put(p, { v: 'two' })).toEqual({ version: 2 });
        expect(await secrets.get(p)).toEqual({ v: 'two' });
        expect(await secrets.get(p, 0)).toEqual({ v: 'two' });
        expect(await secrets.get(p, 1)).toEqual({ v: 'one' });
        const m = await secrets.metadata(p);
        expect([m.currentVersion, m.oldestVersion]).toEqual([2, 1]);
        expect(m.createdTime.getTime()).toBe(t1);
        expect(m.updatedTime.getTime()).toBe(t2);
      });

      it('accepts an empty values map and any string values', async () => {
        const p = fresh();
        await secrets.put(p, {});
        expect(await secrets.get(p)).toEqual({});
        const odd = { 'key with space': 'äöü ✓ 🔐', empty: '', json: '{"a":1}', __proto__x: 'x' };
        await secrets.put(p, odd);
        expect(await secrets.get(p)).toEqual(odd);
      });

      it('never reuses a number: put after deleting the current version writes highest + 1', async () => {
        const p = fresh();
        await secrets.put(p, { v: '1' });
        await secrets.put(p, { v: '2' });
        await secrets.delete(p, []);
        expect((await secrets.metadata(p)).currentVersion).toBe(1);
        expect(await secrets.put(p, { v: '3' })).toEqual({ version: 3 });
        const m = await secrets.metadata(p);
        expect(m.versions.map((v) => [v.version, v.deletedTime !== null])).toEqual([
          [1, false],
          [2, true],
          [3, false],
        ]);
        expect(m.currentVersion).toBe(3);
      });

      it('after every version is deleted, a put still writes highest + 1', async () => {
        const p = fresh();
        await secrets.put(p, { v: '1' });
        await secrets.delete(p, [1]);
        await expectCode(secrets.get(p), 'api_not_found');
        expect(await secrets.put(p, { v: '2' })).toEqual({ version: 2 });
        expect(await secrets.get(p)).toEqual({ v: '2' });
      });

      it('prunes to the newest max versions, deleted ones included, removing them from storage', async () => {
        const p = fresh();
        for (let i = 1; i <= 5; i++) await secrets.put(p, { i: String(i) });
        let m = await secrets.metadata(p);
        expect(m.versions.map((v) => v.version)).toEqual([3, 4, 5]);
        expect([m.currentVersion, m.oldestVersion]).toEqual([5, 3]);
        await expectCode(secrets.get(p, 2), 'api_not_found');
        await secrets.delete(p, [5]);
        await secrets.put(p, { i: '6' });
        m = await secrets.metadata(p);
        expect(m.versions.map((v) => [v.version, v.deletedTime !== null])).toEqual([
          [4, false],
          [5, true],
          [6, false],
        ]);
        expect([m.currentVersion, m.oldestVersion]).toEqual([6, 4]);
        const rows = rowsOf(p);
        if (rows !== undefined) expect(rows.map((r) => r.version)).toEqual([4, 5, 6]);
      });
    });

    describe('get and metadata', () => {
      it('missing path → api_not_found', async () => {
        await expectCode(secrets.get('nope/never'), 'api_not_found');
        await expectCode(secrets.metadata('nope/never'), 'api_not_found');
      });

      it('missing, negative, fractional, deleted and destroyed versions → api_not_found', async () => {
        const p = fresh();
        for (let i = 1; i <= 3; i++) await secrets.put(p, { i: String(i) });
        await secrets.delete(p, [2]);
        await secrets.destroy(p, [1]);
        for (const v of [1, 2, 4, 99, -1, 1.5]) {
          await expectCode(secrets.get(p, v), 'api_not_found');
          await expectCode(secrets.metadata(p, v), 'api_not_found');
        }
        expect(await secrets.get(p, 3)).toEqual({ i: '3' });
        const m = await secrets.metadata(p, 3);
        expect(m.versions.map((v) => [v.version, v.deletedTime !== null, v.destroyed])).toEqual([
          [1, true, true],
          [2, true, false],
          [3, false, false],
        ]);
      });

      it('current 0 → get and metadata answer api_not_found; metadata lists deleted versions otherwise', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.put(p, { a: '2' });
        const t = tick();
        await secrets.delete(p, [2]);
        const m = await secrets.metadata(p);
        expect(m.versions[1]).toEqual({
          version: 2,
          createdTime: m.versions[1]!.createdTime,
          deletedTime: new Date(t),
          destroyed: false,
        });
        await secrets.delete(p, [1]);
        await expectCode(secrets.get(p), 'api_not_found');
        await expectCode(secrets.get(p, 0), 'api_not_found');
        await expectCode(secrets.metadata(p), 'api_not_found');
      });
    });

    describe('delete', () => {
      it('missing path → api_not_found', async () => {
        await expectCode(secrets.delete('nope/del', []), 'api_not_found');
      });

      it('[] and 0 mean current; the previous live version becomes current', async () => {
        const p = fresh();
        for (let i = 1; i <= 3; i++) await secrets.put(p, { i: String(i) });
        await secrets.delete(p, []);
        expect((await secrets.metadata(p)).currentVersion).toBe(2);
        await secrets.delete(p, [0]);
        expect(await secrets.get(p)).toEqual({ i: '1' });
        const m = await secrets.metadata(p);
        expect([m.currentVersion, m.oldestVersion]).toEqual([1, 1]);
      });

      it('unknown and negative numbers match nothing and it still succeeds', async () => {
        const p = fresh();
        await secrets.put(p, { a: 'b' });
        const before = await secrets.metadata(p);
        tick();
        await secrets.delete(p, [99, -1, -7]);
        expect(await secrets.metadata(p)).toEqual(before);
      });

      it('updatedTime moves only when currentVersion changes', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.put(p, { a: '2' });
        const tPut = tick();
        await secrets.put(p, { a: '3' });
        tick();
        await secrets.delete(p, [1]); // not current: updatedTime stays
        expect((await secrets.metadata(p)).updatedTime.getTime()).toBe(tPut);
        const tDel = tick();
        await secrets.delete(p, [3]); // current 3 → 2
        expect((await secrets.metadata(p)).updatedTime.getTime()).toBe(tDel);
        tick();
        await secrets.undelete(p, [1]); // current stays 2
        expect((await secrets.metadata(p)).updatedTime.getTime()).toBe(tDel);
        const tUndel = tick();
        await secrets.undelete(p, [3]); // current 2 → 3
        expect((await secrets.metadata(p)).updatedTime.getTime()).toBe(tUndel);
      });

      it('with everything deleted, [] succeeds and changes nothing', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.delete(p, []);
        await secrets.delete(p, []);
        await secrets.undelete(p, [1]);
        expect(await secrets.get(p)).toEqual({ a: '1' });
      });
    });

    describe('undelete', () => {
      it('missing path → api_not_found', async () => {
        await expectCode(secrets.undelete('nope/undel', []), 'api_not_found');
      });

      it('listed deleted versions come back', async () => {
        const p = fresh();
        for (let i = 1; i <= 3; i++) await secrets.put(p, { i: String(i) });
        await secrets.delete(p, [1, 3]);
        expect((await secrets.metadata(p)).currentVersion).toBe(2);
        await secrets.undelete(p, [3, 99]);
        expect(await secrets.get(p)).toEqual({ i: '3' });
        await secrets.undelete(p, [1]);
        expect(await secrets.get(p, 1)).toEqual({ i: '1' });
        expect((await secrets.metadata(p)).versions.every((v) => v.deletedTime === null)).toBe(
          true,
        );
      });

      it('[] with a live current names only it: nothing undeleted → api_not_found', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.put(p, { a: '2' });
        await secrets.delete(p, [1]);
        await expectCode(secrets.undelete(p, []), 'api_not_found');
        await expectCode(secrets.undelete(p, [0]), 'api_not_found');
      });

      it('[] with current 0 restores the highest deleted version', async () => {
        const p = fresh();
        for (let i = 1; i <= 3; i++) await secrets.put(p, { i: String(i) });
        await secrets.delete(p, [1, 2, 3]);
        await secrets.undelete(p, []);
        const m = await secrets.metadata(p);
        expect(m.currentVersion).toBe(3);
        expect(m.versions.map((v) => v.deletedTime === null)).toEqual([false, false, true]);
      });

      it('0 with current 0 is skipped → api_not_found', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.delete(p, []);
        await expectCode(secrets.undelete(p, [0]), 'api_not_found');
      });

      it('unknown, negative or live versions only → api_not_found', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await expectCode(secrets.undelete(p, [99]), 'api_not_found');
        await expectCode(secrets.undelete(p, [-1]), 'api_not_found');
        await expectCode(secrets.undelete(p, [1]), 'api_not_found');
      });
    });

    describe('destroy', () => {
      it('missing path → api_not_found', async () => {
        await expectCode(secrets.destroy('nope/destroy', []), 'api_not_found');
      });

      it('erases the data for good: destroyed, deleted, never undeletable', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.put(p, { a: '2' });
        const t = tick();
        await secrets.destroy(p, []);
        await expectCode(secrets.get(p, 2), 'api_not_found');
        expect(await secrets.get(p)).toEqual({ a: '1' });
        const m = await secrets.metadata(p);
        expect(m.versions[1]).toEqual({
          version: 2,
          createdTime: m.versions[1]!.createdTime,
          deletedTime: new Date(t),
          destroyed: true,
        });
        await expectCode(secrets.undelete(p, [2]), 'api_not_found');
        await secrets.delete(p, [1]);
        // current is 0 and the only destroyed version is the highest: [] restores version 1.
        await secrets.undelete(p, []);
        expect(await secrets.get(p)).toEqual({ a: '1' });
        const rows = rowsOf(p);
        if (rows !== undefined) {
          expect(rows.map((r) => [r.version, r.data === null, r.destroyed])).toEqual([
            [1, false, 0],
            [2, true, 1],
          ]);
        }
      });

      it('a deleted version keeps its deletion time when destroyed; unknown numbers are ignored', async () => {
        const p = fresh();
        await secrets.put(p, { a: '1' });
        await secrets.put(p, { a: '2' });
        const tDel = tick();
        await secrets.delete(p, [1]);
        tick();
        await secrets.destroy(p, [1, 42, -3]);
        const m = await secrets.metadata(p);
        expect(m.versions[0]).toMatchObject({
          version: 1,
          destroyed: true,
          deletedTime: new Date(tDel),
        });
        expect(m.versions[1]).toMatchObject({ version: 2, destroyed: false, deletedTime: null });
      });
    });

    describe('purge', () => {
      it('missing path → api_not_found', async () => {
        await expectCode(secrets.purge('nope/purge'), 'api_not_found');
      });

      it('removes path, versions and metadata; a later put starts again at 1', async () => {
        const p = fresh();
        for (let i = 1; i <= 3; i++) await secrets.put(p, { i: String(i) });
        await secrets.purge(p);
        expect(await secrets.list()).not.toContain(p);
        await expectCode(secrets.get(p), 'api_not_found');
        await expectCode(secrets.metadata(p), 'api_not_found');
        await expectCode(secrets.delete(p, []), 'api_not_found');
        await expectCode(secrets.purge(p), 'api_not_found');
        expect(rowsOf(p) ?? []).toEqual([]);
        const t = tick();
        expect(await secrets.put(p, { again: 'yes' })).toEqual({ version: 1 });
        const m = await secrets.metadata(p);
        expect(m.createdTime.getTime()).toBe(t);
        expect(m.versions.map((v) => v.version)).toEqual([1]);
      });
    });

    describe('list', () => {
      it('every path with metadata, sorted, all-deleted ones included', async () => {
        const base = fresh('list');
        const paths = [`${base}/b`, `${base}/a/z`, `${base}/a`, `${base}/C`];
        for (const p of paths) await secrets.put(p, { x: 'y' });
        await secrets.delete(`${base}/b`, []);
        const listed = (await secrets.list()).filter((p) => p.startsWith(base));
        expect(listed).toEqual([`${base}/C`, `${base}/a`, `${base}/a/z`, `${base}/b`]);
        const all = await secrets.list();
        expect(all).toEqual([...all].sort());
      });
    });

    describe('root key', () => {
      it('without keys every operation is state_not_ready; installing makes the same objects work', async () => {
        const provider = new MutableRootKeyProvider();
        const s = store.secrets(provider);
        const pol = store.policies(provider);
        const p = fresh();
        for (const call of [
          () => s.put(p, { a: 'b' }),
          () => s.get(p),
          () => s.delete(p, []),
          () => s.undelete(p, []),
          () => s.destroy(p, []),
          () => s.purge(p),
          () => s.list(),
          () => s.metadata(p),
          () =>
            pol.upsert({
              name: 'x',
              spiffeIdPattern: '.*',
              pathPattern: '.*',
              permissions: ['read'],
            }),
          () => pol.get('x'),
          () => pol.list(),
          () => pol.delete('x'),
        ]) {
          await expectCode(call(), 'state_not_ready');
        }
        const key = crypto.getRandomValues(new Uint8Array(32));
        const copy = key.slice();
        const derived = await provider.install(key);
        expect(key).toEqual(copy); // the caller's array is not touched
        expect(derived.kcv).toMatch(/^[0-9a-f]{32}$/);
        expect(provider.ready).toBe(true);
        await expectCode(provider.install(key), 'state_already_initialized');
        await s.put(p, { a: 'b' });
        expect(await s.get(p)).toEqual({ a: 'b' });
        // Data sealed under another root key does not open: generic failure, no value.
        const other = store.secrets(await createStaticRootKeyProvider());
        let err: unknown;
        try {
          await other.get(p);
        } catch (e) {
          err = e;
        }
        expect(isSpikeError(err) && err.code).toBe('api_internal_error');
        expect((err as Error).message).toBe('decryption failed');
      });

      it('the static provider derives from the key it is given', async () => {
        const key = crypto.getRandomValues(new Uint8Array(32));
        const a = await createStaticRootKeyProvider(key);
        const b = await createStaticRootKeyProvider(key);
        expect(a.keys()!.kcv).toBe(b.keys()!.kcv);
        const p = fresh();
        await store.secrets(a).put(p, { same: 'key' });
        expect(await store.secrets(b).get(p)).toEqual({ same: 'key' });
      });
    });

    describe('policies', () => {
      it('upsert, get, list sorted by name, delete; missing → api_not_found', async () => {
        const name = `pol ${kind}`;
        const t1 = tick();
        const created = await policies.upsert({
          name,
          spiffeIdPattern: '^spiffe://example\\.org/app$',
          pathPattern: '^apps/one/',
          permissions: ['read', 'list'],
        });
        expect(created.createdAt.getTime()).toBe(t1);
        expect(await policies.get(name)).toEqual(created);
        const t2 = tick();
        const updated = await policies.upsert({
          name,
          spiffeIdPattern: '^spiffe://example\\.org/other$',
          pathPattern: '^apps/two/',
          permissions: ['write'],
        });
        expect(updated.createdAt.getTime()).toBe(t1);
        expect(updated.updatedAt.getTime()).toBe(t2);
        expect(await policies.get(name)).toEqual({
          name,
          spiffeIdPattern: '^spiffe://example\\.org/other$',
          pathPattern: '^apps/two/',
          permissions: ['write'],
          createdAt: new Date(t1),
          updatedAt: new Date(t2),
        });
        await policies.upsert({
          name: `${name} a`,
          spiffeIdPattern: '.*',
          pathPattern: '.*',
          permissions: ['super'],
        });
        await policies.upsert({
          name: `A ${name}`,
          spiffeIdPattern: 'x',
          pathPattern: 'y',
          permissions: ['execute'],
        });
        const names = (await policies.list()).map((p) => p.name);
        expect(names).toEqual([...names].sort());
        expect(names).toContain(`${name} a`);
        await policies.delete(name);
        await expectCode(policies.get(name), 'api_not_found');
        await expectCode(policies.delete(name), 'api_not_found');
        expect((await policies.list()).map((p) => p.name)).not.toContain(name);
      });
    });

    describe('key-check record', () => {
      it('is empty until set, then returns what was stored; bad formats are refused', async () => {
        expect(store.getKcv()).toBeUndefined();
        const kcv = 'a'.repeat(32);
        await store.setKcv(kcv);
        expect(store.getKcv()).toBe(kcv);
        await store.setKcv('0123456789abcdef0123456789abcdef');
        expect(store.getKcv()).toBe('0123456789abcdef0123456789abcdef');
        expect(() => store.setKcv('A'.repeat(32))).toThrow(TypeError);
        expect(() => store.setKcv('abc')).toThrow(TypeError);
      });
    });

    describe('concurrency', () => {
      it('8 concurrent writers × 500 puts to one path lose nothing', async () => {
        const s2 = await openAt(await location());
        const sec = s2.secrets(await createStaticRootKeyProvider());
        const path = 'contended/path';
        const acked = new Map<number, string>();
        await Promise.all(
          Array.from({ length: 8 }, async (_, w) => {
            for (let i = 0; i < 500; i++) {
              const value = `w${w}-i${i}`;
              const { version } = await sec.put(path, { value });
              expect(acked.has(version)).toBe(false);
              acked.set(version, value);
            }
          }),
        );
        expect(acked.size).toBe(4000);
        expect(Math.min(...acked.keys())).toBe(1);
        expect(Math.max(...acked.keys())).toBe(4000);
        const m = await sec.metadata(path);
        expect(m.currentVersion).toBe(4000);
        expect(m.oldestVersion).toBe(3991);
        expect(m.maxVersions).toBe(10);
        expect(m.versions.map((v) => v.version)).toEqual(
          Array.from({ length: 10 }, (_, i) => 3991 + i),
        );
        for (const v of [3991, 3995, 4000]) {
          expect(await sec.get(path, v)).toEqual({ value: acked.get(v)! });
        }
        await expectCode(sec.get(path, 3990), 'api_not_found');
        if (s2.file !== undefined) {
          const rows = rawQuery<{ n: number; lo: number; hi: number }>(
            s2.file,
            'SELECT count(*) AS n, min(version) AS lo, max(version) AS hi FROM secret_versions WHERE path = ?',
            path,
          );
          expect(rows).toEqual([{ n: 10, lo: 3991, hi: 4000 }]);
          expect(
            rawQuery<{ n: number }>(s2.file, 'SELECT count(*) AS n FROM secret_versions'),
          ).toEqual([{ n: 10 }]);
          expect(
            rawQuery<{ latest_version: number }>(s2.file, 'SELECT latest_version FROM secrets'),
          ).toEqual([{ latest_version: 4000 }]);
        }
        await s2.close();
      }, 60_000);
    });
  });
}

for (const backend of STORE_BACKENDS) backendSuite(backend);

describe('SQLite durability and files', () => {
  it('acknowledged puts are on disk: a copy of db + wal taken while open has them; so does a reopen', async () => {
    const dir = tempDir();
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const sec = store.secrets(await createStaticRootKeyProvider(rootKey));
    for (let i = 1; i <= 20; i++) await sec.put('durable/a', { i: String(i) });
    await sec.put('durable/b', { hello: 'world' });
    store.setKcv('f'.repeat(32));
    const file = join(dir, 'spike.db');
    expect(existsSync(`${file}-wal`)).toBe(true);
    // A crash snapshot: the files as they are now, with no checkpoint and no close.
    const snap = tempDir();
    copyFileSync(file, join(snap, 'spike.db'));
    copyFileSync(`${file}-wal`, join(snap, 'spike.db-wal'));
    const crashed = await openStore({ backend: 'sqlite', dataDir: snap });
    const crashedSecrets = crashed.secrets(await createStaticRootKeyProvider(rootKey));
    expect(await crashedSecrets.get('durable/b')).toEqual({ hello: 'world' });
    expect(await crashedSecrets.get('durable/a')).toEqual({ i: '20' });
    expect((await crashedSecrets.metadata('durable/a')).versions.map((v) => v.version)).toEqual([
      11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ]);
    expect(crashed.getKcv()).toBe('f'.repeat(32));
    await crashed.close();

    await store.close();
    const reopened = await openStore({ backend: 'sqlite', dataDir: dir });
    const again = reopened.secrets(await createStaticRootKeyProvider(rootKey));
    expect(await again.get('durable/a', 15)).toEqual({ i: '15' });
    expect(await again.list()).toEqual(['durable/a', 'durable/b']);
    expect(reopened.getKcv()).toBe('f'.repeat(32));
    expect(await again.put('durable/a', { i: '21' })).toEqual({ version: 21 });
    await reopened.close();
  });

  it('uses the WAL journal and private file modes', async () => {
    const dir = tempDir();
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    await store.secrets(await createStaticRootKeyProvider()).put('m/a', { a: 'b' });
    const file = join(dir, 'spike.db');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    const raw = new Database(file);
    expect(raw.query<{ journal_mode: string }, []>('PRAGMA journal_mode').get()?.journal_mode).toBe(
      'wal',
    );
    raw.close();
    await store.close();
  });
});

describe('openStore options', () => {
  it('refuses bad options', async () => {
    await expect(openStore({ backend: 'sqlite' })).rejects.toThrow(TypeError);
    await expect(openStore({ backend: 'memory', maxVersions: 0 })).rejects.toThrow(RangeError);
    await expect(openStore({ backend: 'memory', maxVersions: 2.5 })).rejects.toThrow(RangeError);
  });

  it('a configured max versions prunes accordingly', async () => {
    const store = await openStore({ backend: 'memory', maxVersions: 1 });
    const s = store.secrets(await createStaticRootKeyProvider());
    await s.put('one', { a: '1' });
    await s.put('one', { a: '2' });
    const m = await s.metadata('one');
    expect(m.versions.map((v) => v.version)).toEqual([2]);
    expect(m.maxVersions).toBe(1);
    await store.close();
    await expectCode(s.get('one'), 'api_internal_error');
  });
});

describe('data directory (§10)', () => {
  const modeOf = (d: string) => statSync(d).mode & 0o777;

  it('uses SPIKE_NEXUS_DATA_DIR with /data appended, mode 0700', () => {
    const base = tempDir();
    const r = resolveDataDir({ SPIKE_NEXUS_DATA_DIR: base, HOME: tempDir() });
    expect(r).toEqual({ dir: join(base, 'data'), source: 'env' });
    expect(modeOf(r.dir)).toBe(0o700);
    // A missing directory whose parent exists is fine too.
    const r2 = resolveDataDir({ SPIKE_NEXUS_DATA_DIR: join(base, 'new'), HOME: tempDir() });
    expect(r2.dir).toBe(join(base, 'new', 'data'));
  });

  it('refuses /, system directories, files and missing parents, falling back to ~/.spike/data', () => {
    const home = tempDir();
    const file = join(tempDir(), 'plain-file');
    writeFileSync(file, 'x');
    for (const bad of [
      '/',
      '/etc',
      '/etc/spike',
      '/usr/local/x',
      '/proc/1',
      '/root/x',
      '/lib64',
      file,
      join(tempDir(), 'a', 'b'),
    ]) {
      const r = resolveDataDir({ SPIKE_NEXUS_DATA_DIR: bad, HOME: home });
      expect(r.source).toBe('home');
      expect(r.dir).toBe(join(home, '.spike', 'data'));
      expect(typeof r.rejected).toBe('string');
      expect(checkDataDir(bad)).toBeDefined();
    }
    expect(modeOf(join(home, '.spike', 'data'))).toBe(0o700);
    expect(checkDataDir('/etcetera-not-restricted-but-missing-parent/x')).toContain('parent');
  });

  it('without a home falls back to .spike-$USER/data in the temp root', () => {
    const tmp = tempDir();
    expect(resolveDataDir({ TMPDIR: tmp, USER: 'alice' })).toEqual({
      dir: join(tmp, '.spike-alice', 'data'),
      source: 'temp',
    });
    expect(resolveDataDir({ TMPDIR: tmp, USER: '../../etc' }).dir).toBe(
      join(tmp, '.spike-etc', 'data'),
    );
    expect(resolveDataDir({ TMPDIR: tmp, USER: '' }).dir).toBe(join(tmp, '.spike-spike', 'data'));
    expect(resolveDataDir({ TMPDIR: tmp, SPIKE_NEXUS_DATA_DIR: '/sys' }).rejected).toContain(
      'restricted',
    );
  });

  it('the store opens in a resolved directory', async () => {
    const base = tempDir();
    mkdirSync(join(base, 'nexus'));
    const { dir } = resolveDataDir({ SPIKE_NEXUS_DATA_DIR: join(base, 'nexus') });
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    expect(store.file).toBe(join(base, 'nexus', 'data', 'spike.db'));
    expect(existsSync(store.file!)).toBe(true);
    await store.close();
  });
});
