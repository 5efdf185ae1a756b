/**
 * Group commit of the SQLite backend (src/nexus/store/group-commit.ts), on a real database file:
 * writes queued in one tick share one transaction (the WAL grows by one commit, not one per
 * write), a write that fails inside a group fails alone, and a lock held by another connection
 * makes writes answer `state_not_ready` quickly while reads go on.
 */
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSpikeError } from '../src/core/errors.ts';
import type { SecretWrite, StoreBackend } from '../src/nexus/store/backend.ts';
import { openSqliteBackend } from '../src/nexus/store/sqlite.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(): { backend: StoreBackend; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'spike-group-'));
  dirs.push(dir);
  const file = join(dir, 'spike.db');
  return { backend: openSqliteBackend({ file }), file };
}

function firstVersion(n: number, data = new Uint8Array([n & 255])): SecretWrite {
  return {
    head: { createdAt: 1, updatedAt: 1, latestVersion: n },
    insert: [{ state: { version: n, createdAt: 1, deletedAt: null, destroyed: false }, data }],
  };
}

const put = (backend: StoreBackend, path: string, write: SecretWrite) =>
  backend.updateSecret(path, () => ({ write, result: path }));

describe('group commit', () => {
  it('writes of one tick share one commit: the WAL grows by a few pages, not one commit each', async () => {
    const { backend, file } = open();
    await put(backend, 'warm/up', firstVersion(1));
    const before = statSync(`${file}-wal`).size;
    const paths = Array.from({ length: 200 }, (_, i) => `group/p${i}`);
    expect(await Promise.all(paths.map((p) => put(backend, p, firstVersion(1))))).toEqual(paths);
    const grown = statSync(`${file}-wal`).size - before;
    // One commit per write would append ≥ 200 frames of 4 KiB (two tables' pages each).
    expect(grown).toBeLessThan(60 * 4096);
    for (const p of paths) expect((await backend.readSecret(p))?.record.head.latestVersion).toBe(1);
    await backend.close();
  });

  it('a write that fails inside a group fails alone; the others commit', async () => {
    const { backend } = open();
    await put(backend, 'bad/path', firstVersion(1));
    const results = await Promise.allSettled([
      put(backend, 'good/a', firstVersion(1)),
      // Version 1 exists: inserting it again breaks the primary key inside the group.
      backend.updateSecret('bad/path', (record) => ({
        write: { ...firstVersion(1), head: { createdAt: 1, updatedAt: 2, latestVersion: 9 } },
        result: record?.head.revision,
      })),
      put(backend, 'good/b', firstVersion(1)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason;
    expect(isSpikeError(failure) && failure.code).toBe('api_internal_error');
    expect((await backend.readSecret('good/a'))?.record.versions.length).toBe(1);
    expect((await backend.readSecret('good/b'))?.record.versions.length).toBe(1);
    // The failed write left nothing behind: head and versions as before.
    const bad = await backend.readSecret('bad/path');
    expect(bad?.record.head.latestVersion).toBe(1);
    expect(bad?.record.head.revision).toBe(1);
    await backend.close();
  });

  it('another connection holding the write lock: writes get state_not_ready quickly, reads go on', async () => {
    const { backend, file } = open();
    await put(backend, 'held/read', firstVersion(1));
    const other = new Database(file);
    other.run('BEGIN IMMEDIATE');
    try {
      const started = performance.now();
      const write = put(backend, 'held/write', firstVersion(1)).then(
        () => 'written',
        (error: unknown) => (isSpikeError(error) ? error.code : 'other'),
      );
      const read = await backend.readSecret('held/read');
      expect(read?.record.head.latestVersion).toBe(1);
      expect(await write).toBe('state_not_ready');
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      other.run('COMMIT');
      other.close();
    }
    expect(await put(backend, 'held/write', firstVersion(1))).toBe('held/write');
    await backend.close();
  });
});
