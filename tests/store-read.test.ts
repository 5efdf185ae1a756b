/**
 * The SQLite backend's one-statement secret read (src/nexus/store/sqlite.ts `readSecret`): for
 * random version histories (live, deleted, deletion scheduled in the future, destroyed), every
 * read must equal the in-memory backend's, whichever version `pick` chooses: the read-ahead
 * version (answered by the single `SELECT`), any other stored version (the transaction
 * fallback), a version that does not exist, or none. `pick` is also the real docs/spike-api.md §6 rule of
 * `secrets.get` (`selectReadVersion`) at times before, between and after the deletion times.
 */
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { selectReadVersion, type VersionState } from '../src/core/kv/semantics.ts';
import type { SecretRecord, StoreBackend } from '../src/nexus/store/backend.ts';
import { createMemoryBackend } from '../src/nexus/store/memory.ts';
import { openSqliteBackend } from '../src/nexus/store/sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-store-read-'));
const sqlite = openSqliteBackend({ file: join(dir, 'spike.db') });
const memory = createMemoryBackend();
afterAll(async () => {
  await sqlite.close();
  await memory.close();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 0, 1);

/** What becomes of one version after it is written live. */
type Fate = 'live' | 'deleted' | 'scheduled' | 'destroyed' | 'deleted-then-destroyed';

interface History {
  readonly fates: readonly Fate[];
  /** Offsets (ms after T0 + 1 min) of deletion times, per version. */
  readonly offsets: readonly number[];
}

const history = fc.record({
  fates: fc.array(
    fc.constantFrom<Fate>('live', 'deleted', 'scheduled', 'destroyed', 'deleted-then-destroyed'),
    { minLength: 1, maxLength: 6 },
  ),
  offsets: fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 6, maxLength: 6 }),
});

/** Writes the same history to a path on a backend: all versions live, then their fates. */
async function write(backend: StoreBackend, path: string, h: History): Promise<void> {
  const versions: VersionState[] = h.fates.map((_, i) => ({
    version: i + 1,
    createdAt: T0 + i,
    deletedAt: null,
    destroyed: false,
  }));
  await backend.updateSecret(path, () => ({
    write: {
      head: { createdAt: T0, updatedAt: T0, latestVersion: versions.length },
      insert: versions.map((state) => ({
        state,
        data: Uint8Array.of(state.version, 0xaa, state.version),
      })),
    },
    result: undefined,
  }));
  const update: VersionState[] = [];
  h.fates.forEach((fate, i) => {
    const when = T0 + 60_000 + (h.offsets[i] ?? 0);
    const v = versions[i]!;
    if (fate === 'deleted') update.push({ ...v, deletedAt: when });
    if (fate === 'scheduled') update.push({ ...v, deletedAt: when + 1_000_000 });
    if (fate === 'destroyed') update.push({ ...v, deletedAt: when, destroyed: true });
    if (fate === 'deleted-then-destroyed') {
      update.push({ ...v, deletedAt: when - 1, destroyed: true });
    }
  });
  if (update.length === 0) return;
  await backend.updateSecret(path, (record) => ({
    write: {
      head: {
        createdAt: record!.head.createdAt,
        updatedAt: T0 + 1,
        latestVersion: record!.head.latestVersion,
      },
      update,
    },
    result: undefined,
  }));
}

/** The same read on both backends; they must agree exactly. */
async function sameRead(path: string, pick?: (record: SecretRecord) => number | undefined) {
  const want = await memory.readSecret(path, pick);
  const got = await sqlite.readSecret(path, pick);
  expect(got).toEqual(want);
  return got;
}

let n = 0;

describe('SQLite one-statement read vs the in-memory backend', () => {
  it('agrees for every pick on random histories', async () => {
    await fc.assert(
      fc.asyncProperty(history, async (h) => {
        const path = `read/${++n}`;
        await write(sqlite, path, h);
        await write(memory, path, h);
        const read = await sameRead(path);
        expect(read?.data).toBeUndefined();
        const numbers = read!.record.versions.map((v) => v.version);
        expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
        // Every stored version, one past the end, and nonsense numbers.
        for (const v of [0, -1, 1.5, ...numbers, numbers.length + 1]) await sameRead(path, () => v);
        await sameRead(path, () => undefined);
        // The §6 rule of a get, at times around the deletion times.
        for (const now of [T0, T0 + 60_000, T0 + 65_000, T0 + 2_000_000, T0 + 10_000_000]) {
          for (const requested of [undefined, 0, 1, 2, numbers.length, -3]) {
            await sameRead(path, (r) => selectReadVersion(r.versions, requested, now)?.version);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a current version comes with its data; a destroyed one reads as null', async () => {
    const path = 'read/fixed';
    const h: History = {
      fates: ['live', 'destroyed', 'live', 'deleted'],
      offsets: [0, 0, 0, 0, 0, 0],
    };
    await write(sqlite, path, h);
    await write(memory, path, h);
    const now = T0 + 120_000;
    const current = await sameRead(path, (r) => selectReadVersion(r.versions, 0, now)?.version);
    expect(current?.data).toEqual(Uint8Array.of(3, 0xaa, 3));
    const older = await sameRead(path, () => 1);
    expect(older?.data).toEqual(Uint8Array.of(1, 0xaa, 1));
    expect((await sameRead(path, () => 2))?.data).toBeNull();
    expect((await sameRead(path, () => 9))?.data).toBeUndefined();
    expect(await sameRead('read/missing', () => 1)).toBeUndefined();
  });
});
