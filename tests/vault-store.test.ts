/**
 * The Vault KV v2 view of the store (src/nexus/store/vault-kv.ts, docs/vault-kv2.md §4) on BOTH
 * backends: trim and `oldest_version`, effective `max_versions`, `delete_version_after`,
 * check-and-set (also on SPIKE writes), `custom_metadata` sealed at rest, and the mapping to the SPIKE view (§4.1).
 */
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSpikeError } from '../src/core/errors.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore, type StoreKind } from '../src/nexus/store/index.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function open(kind: StoreKind, clock: () => number, dir?: string) {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'spike-vault-store-'));
  if (dir === undefined) dirs.push(dataDir);
  const store: NexusStore = await openStore(
    kind === 'sqlite' ? { backend: 'sqlite', dataDir, clock } : { backend: 'memory', clock },
  );
  const keys = await createStaticRootKeyProvider(new Uint8Array(32).fill(7));
  return { store, dataDir, kv: store.vault(keys), spike: store.secrets(keys) };
}

async function message(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isSpikeError(e)) return e.message;
    throw e;
  }
  throw new Error('expected a SpikeError');
}

for (const kind of ['memory', 'sqlite'] as const) {
  describe(`vault view on ${kind}`, () => {
    it('writes, trims with the oldest_version floor and never reuses numbers', async () => {
      let now = 1_000_000;
      const { kv, spike, store } = await open(kind, () => now);
      await kv.writeMetadata('a', { maxVersions: 3 }, 'write');
      for (let i = 1; i <= 5; i++) {
        now += 10;
        const r = await kv.write('a', { n: i, nested: { x: [i] } });
        expect(r.version.version).toBe(i);
      }
      const meta = await kv.metadata('a');
      expect(meta?.currentVersion).toBe(5);
      expect(meta?.oldestVersion).toBe(3);
      expect(meta?.versions.map((v) => v.version)).toEqual([3, 4, 5]);
      // SPIKE writes continue the same numbering and the same trim.
      expect((await spike.put('a', { k: 'v' })).version).toBe(6);
      expect((await kv.metadata('a'))?.oldestVersion).toBe(4);
      expect((await kv.read('a', 0))?.data).toEqual({ k: 'v' });
      // A Vault value that is not a string is its JSON text in the SPIKE view.
      expect(await spike.get('a', 5)).toEqual({ n: '5', nested: '{"x":[5]}' });
      expect((await kv.read('a', 2))?.version).toBeUndefined();
      await store.close();
    });

    it('effective max_versions is the larger of key and mount', async () => {
      const { kv, store } = await open(kind, () => 5);
      kv.configure({ maxVersions: 4 });
      await kv.writeMetadata('b', { maxVersions: 2 }, 'write');
      for (let i = 0; i < 6; i++) await kv.write('b', { i });
      expect((await kv.metadata('b'))?.versions.length).toBe(4);
      expect(kv.config().maxVersions).toBe(4);
      await store.close();
    });

    it('delete_version_after schedules deletion; data stays readable until then', async () => {
      let now = 10_000;
      const { kv, spike, store } = await open(kind, () => now);
      kv.configure({ deleteVersionAfterMs: 60_000 });
      await kv.writeMetadata('c', { deleteVersionAfterMs: 30_000 }, 'write');
      const w = await kv.write('c', { a: '1' });
      expect(w.version.deletedAt).toBe(40_000);
      expect((await kv.read('c', 0))?.data).toEqual({ a: '1' });
      expect(await spike.get('c')).toEqual({ a: '1' });
      now = 40_000;
      const gone = await kv.read('c', 0);
      expect(gone?.version?.version).toBe(1);
      expect(gone?.data).toBeNull();
      await kv.undelete('c', [1]);
      expect((await kv.metadata('c'))?.versions[0]?.deletedAt).toBe(70_000);
      kv.configure({ deleteVersionAfterMs: -1000 });
      await kv.undelete('c', [1]);
      expect((await kv.metadata('c'))?.versions[0]?.deletedAt).toBeNull();
      await store.close();
    });

    it('check-and-set at mount and key level', async () => {
      const { kv, store } = await open(kind, () => 1);
      expect((await kv.write('d', { a: 1 }, 0)).version.version).toBe(1);
      expect(await message(kv.write('d', { a: 1 }, 0))).toBe(
        'check-and-set parameter did not match the current version',
      );
      await kv.writeMetadata('d', { casRequired: true }, 'write');
      expect(await message(kv.write('d', { a: 2 }))).toBe(
        'check-and-set parameter required for this call',
      );
      expect(await message(kv.patch('d', { a: 2 }))).toBe(
        'check-and-set parameter required for this call',
      );
      expect((await kv.write('d', { a: 2 }, 1)).version.version).toBe(2);
      // Soft-deleted latest still counts for CAS.
      await kv.deleteLatest('d');
      expect((await kv.write('d', { a: 3 }, 2)).version.version).toBe(3);
      kv.configure({ casRequired: true });
      const w = await kv.writeMetadata('e', { casRequired: false }, 'write');
      expect(w.warnings).toEqual([
        '"cas_required" set to false, but is mandated by backend config. This value will be ignored.',
      ]);
      expect(await message(kv.write('e', { a: 1 }))).toBe(
        'check-and-set parameter required for this call',
      );
      await store.close();
    });

    it('a SPIKE put honours cas_required of the key and of the mount (§4.4)', async () => {
      const { kv, spike, store } = await open(kind, () => 1);
      await kv.write('f', { a: 1 });
      await kv.writeMetadata('f', { casRequired: true }, 'write');
      expect(await message(spike.put('f', { a: '2' }))).toBe(
        'check-and-set parameter required for this call',
      );
      // Refused, nothing written: the Vault write with the right cas gets version 2.
      expect((await kv.metadata('f'))?.currentVersion).toBe(1);
      expect((await kv.write('f', { a: 2 }, 1)).version.version).toBe(2);
      // Key requirement lifted: the SPIKE put goes through, until the mount requires CAS.
      await kv.writeMetadata('f', { casRequired: false }, 'write');
      expect((await spike.put('f', { a: '3' })).version).toBe(3);
      kv.configure({ casRequired: true });
      expect(await message(spike.put('f', { a: '4' }))).toBe(
        'check-and-set parameter required for this call',
      );
      expect(await message(spike.put('new', { a: '1' }))).toBe(
        'check-and-set parameter required for this call',
      );
      expect(await spike.get('f', 0)).toEqual({ a: '3' });
      await store.close();
    });

    it('patch merges; delete, undelete, destroy follow Vault', async () => {
      const { kv, spike, store } = await open(kind, () => 100);
      expect((await kv.patch('f', { a: 1 })).kind).toBe('absent');
      await kv.write('f', { a: '1', b: { c: 1, d: 2 } });
      const p = await kv.patch('f', { a: null, b: { d: null, e: 3 }, z: 'new' });
      expect(p.kind).toBe('written');
      expect((await kv.read('f', 0))?.data).toEqual({ b: { c: 1, e: 3 }, z: 'new' });
      await kv.deleteLatest('f');
      const gone = await kv.patch('f', { a: 1 });
      expect(gone.kind).toBe('gone');
      // SPIKE's latest is the highest live version.
      expect(await spike.get('f')).toEqual({ a: '1', b: '{"c":1,"d":2}' });
      await kv.undelete('f', [2]);
      await kv.destroy('f', [1, 99]);
      const meta = await kv.metadata('f');
      expect(meta?.versions.map((v) => [v.version, v.destroyed, v.deletedAt])).toEqual([
        [1, true, null],
        [2, false, null],
      ]);
      expect((await kv.read('f', 1))?.data).toBeNull();
      await kv.deleteVersions('f', [2]);
      await kv.deleteMetadata('f');
      expect(await kv.metadata('f')).toBeUndefined();
      await store.close();
    });

    it('custom_metadata: write replaces, patch merges, limits enforced', async () => {
      const { kv, spike, store } = await open(kind, () => 1);
      await kv.writeMetadata('g', { customMetadata: { owner: 'x', team: 'y' } }, 'write');
      expect((await kv.metadata('g'))?.customMetadata).toEqual({ owner: 'x', team: 'y' });
      // metadata alone is no version: the SPIKE view has nothing to read
      expect((await kv.metadata('g'))?.currentVersion).toBe(0);
      await expect(spike.get('g')).rejects.toThrow();
      await kv.writeMetadata('g', { customMetadata: { owner: null, z: '1' } }, 'patch');
      expect((await kv.metadata('g'))?.customMetadata).toEqual({ team: 'y', z: '1' });
      await kv.writeMetadata('g', { customMetadata: { only: '1' } }, 'write');
      expect((await kv.metadata('g'))?.customMetadata).toEqual({ only: '1' });
      expect(
        await message(kv.writeMetadata('g', { customMetadata: { k: '' } }, 'write')),
      ).toStartWith('custom_metadata validation failed: ');
      expect((await kv.writeMetadata('nope', { maxVersions: 1 }, 'patch')).found).toBe(false);
      expect(await kv.metadata('nope')).toBeUndefined();
      await store.close();
    });
  });
}

describe('vault view on sqlite: at rest and across reopen', () => {
  it('seals custom_metadata, keeps oldest_version and the mount config', async () => {
    const first = await open('sqlite', () => 1);
    await first.kv.writeMetadata(
      'h',
      { customMetadata: { marker: 'plainvalue' }, maxVersions: 1 },
      'write',
    );
    await first.kv.write('h', { v: 1 });
    await first.kv.write('h', { v: 2 });
    first.kv.configure({ casRequired: true, maxVersions: 7 });
    await first.store.close();
    const file = join(first.dataDir, 'spike.db');
    const db = new Database(file, { readonly: true });
    const row = db
      .query<{ custom_metadata: Uint8Array; oldest_version: number }, []>(
        "SELECT custom_metadata, oldest_version FROM secrets WHERE path = 'h'",
      )
      .get();
    db.close();
    expect(new TextDecoder().decode(row?.custom_metadata)).not.toContain('plainvalue');
    const again = await open('sqlite', () => 2, first.dataDir);
    expect(again.kv.config()).toEqual({
      maxVersions: 7,
      casRequired: true,
      deleteVersionAfterMs: 0,
    });
    const meta = await again.kv.metadata('h');
    expect(meta?.customMetadata).toEqual({ marker: 'plainvalue' });
    expect(meta?.oldestVersion).toBe(row?.oldest_version ?? -1);
    await again.store.close();
  });
});
