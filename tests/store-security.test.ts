/**
 * Encryption at rest, seen from the outside (docs/architecture.md invariants 1, 2; docs/spike-api.md §9):
 * the raw database and WAL bytes hold no secret value, policy pattern or key; every stored
 * ciphertext opens with an independent AES-GCM (`@noble/ciphers`) under an independently derived
 * storage key and the §9 associated data; swapped ciphertexts fail with one generic error; and
 * database failures never carry bound values.
 */

import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import { toBase64, toHex } from '../src/core/bytes.ts';
import { isSpikeError } from '../src/core/errors.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { openStore } from '../src/nexus/store/index.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spike-sec-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const enc = new TextEncoder();
const randomToken = (label: string) =>
  `${label}-${toHex(crypto.getRandomValues(new Uint8Array(16)))}`;

/** HKDF-SHA-256 with Web Crypto deriveBits, written here independently of src/core/crypto. */
async function hkdf(rootKey: Uint8Array, info: string, length: number): Promise<Uint8Array> {
  const base = await crypto.subtle.importKey('raw', rootKey as BufferSource, 'HKDF', false, [
    'deriveBits',
  ]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(info) },
      base,
      length * 8,
    ),
  );
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(
    Buffer.from(needle),
  );
}

/** The AAD strings of §9, spelled out here rather than imported. */
const aadSecret = (path: string, version: number) =>
  enc.encode(`spike/v1/secret\u0000${path}\u0000${version}`);
const aadPolicy = (name: string) => enc.encode(`spike/v1/policy\u0000${name}`);

async function caught(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

function describeError(e: Error): string {
  const cause = e.cause as Error | undefined;
  return [
    String(e),
    e.message,
    e.stack ?? '',
    JSON.stringify(e),
    String(cause),
    cause?.message,
    cause?.stack,
  ].join('\n');
}

describe('encryption at rest on SQLite', () => {
  it('database and WAL bytes contain no secret value, policy pattern or key material', async () => {
    const dir = tempDir();
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const provider = await createStaticRootKeyProvider(rootKey);
    const secrets = store.secrets(provider);
    const policies = store.policies(provider);
    store.setKcv(provider.keys()!.kcv);

    const values: string[] = [];
    const paths: string[] = [];
    for (let p = 0; p < 5; p++) {
      const path = `apps/${randomToken('path')}`;
      paths.push(path);
      for (let v = 0; v < 4; v++) {
        const value = randomToken('VALUE');
        values.push(value);
        await secrets.put(path, { password: value, [randomToken('key')]: 'x' });
      }
    }
    const destroyedValue = randomToken('DESTROYED');
    values.push(destroyedValue);
    await secrets.put('apps/destroy-me', { v: destroyedValue });
    await secrets.destroy('apps/destroy-me', []);
    const patterns: string[] = [];
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const spiffe = `^spiffe://example\\.org/${randomToken('SPIFFEPAT')}$`;
      const pathPattern = `^secrets/${randomToken('PATHPAT')}/.*`;
      patterns.push(spiffe, pathPattern);
      const name = randomToken('policy name');
      names.push(name);
      await policies.upsert({ name, spiffeIdPattern: spiffe, pathPattern, permissions: ['read'] });
    }

    const keyMaterial: [string, Uint8Array][] = [
      ['root key', rootKey],
      ['storage key', await hkdf(rootKey, 'spike/v1/storage', 32)],
      ['cipher key', await hkdf(rootKey, 'spike/v1/cipher', 32)],
      ['bootstrap-verify key', await hkdf(rootKey, 'spike/v1/bootstrap-verify', 32)],
    ];
    const forbidden: [string, Uint8Array][] = [];
    for (const [label, bytes] of keyMaterial) {
      forbidden.push(
        [label, bytes],
        [`${label} hex`, enc.encode(toHex(bytes))],
        [`${label} base64`, enc.encode(toBase64(bytes))],
      );
      // Also any 16-byte window of the key, in case a prefix or suffix leaked on its own.
      forbidden.push(
        [`${label} head`, bytes.subarray(0, 16)],
        [`${label} tail`, bytes.subarray(16)],
      );
    }
    for (const v of values) forbidden.push([`value ${v}`, enc.encode(v)]);
    for (const p of patterns) forbidden.push([`pattern ${p}`, enc.encode(p)]);

    const file = join(dir, 'spike.db');
    const scan = (bytes: Uint8Array, where: string) => {
      for (const [label, needle] of forbidden) {
        if (indexOf(bytes, needle) !== -1) throw new Error(`${label} found in ${where}`);
      }
    };
    // While open: most recent pages live in the WAL.
    const wal = new Uint8Array(readFileSync(`${file}-wal`));
    const db = new Uint8Array(readFileSync(file));
    expect(wal.length).toBeGreaterThan(4096);
    scan(wal, 'WAL');
    scan(db, 'database');
    // Positive control: what is meant to be in clear is found by the same scan.
    const both = new Uint8Array([...db, ...wal]);
    for (const p of paths) expect(indexOf(both, enc.encode(p))).not.toBe(-1);
    for (const n of names) expect(indexOf(both, enc.encode(n))).not.toBe(-1);

    // After close everything is checkpointed into the main file: scan it again.
    await store.close();
    const checkpointed = new Uint8Array(readFileSync(file));
    scan(checkpointed, 'database after close');
    for (const p of paths) expect(indexOf(checkpointed, enc.encode(p))).not.toBe(-1);
  });

  it('every stored ciphertext opens with @noble/ciphers under an independently derived key', async () => {
    const dir = tempDir();
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const store = await openStore({ backend: 'sqlite', dataDir: dir, maxVersions: 3 });
    const provider = await createStaticRootKeyProvider(rootKey);
    const secrets = store.secrets(provider);
    const expected = new Map<string, string>();
    for (const path of ['a', 'b/c', 'd e/f(1)']) {
      for (let i = 0; i < 5; i++) {
        const values = { k: randomToken('v'), n: String(i) };
        const { version } = await secrets.put(path, values);
        expected.set(`${path}#${version}`, JSON.stringify(values));
      }
    }
    await secrets.delete('a', [4]);
    await store.policies(provider).upsert({
      name: 'readers',
      spiffeIdPattern: '^spiffe://x/y$',
      pathPattern: '^a$',
      permissions: ['read', 'list'],
    });
    await store.close();

    const storageKey = await hkdf(rootKey, 'spike/v1/storage', 32);
    const raw = new Database(join(dir, 'spike.db'), { readonly: true });
    const rows = raw
      .query<{ path: string; version: number; data: Uint8Array }, []>(
        'SELECT path, version, data FROM secret_versions ORDER BY path, version',
      )
      .all();
    expect(rows.length).toBe(9); // 3 paths × the last 3 versions
    for (const row of rows) {
      expect(row.data[0]).toBe(0x01);
      const nonce = row.data.subarray(1, 13);
      const plain = gcm(storageKey, nonce, aadSecret(row.path, row.version)).decrypt(
        row.data.subarray(13),
      );
      const text = new TextDecoder().decode(plain);
      expect(JSON.parse(text)).toEqual(JSON.parse(expected.get(`${row.path}#${row.version}`)!));
    }
    const policyRows = raw
      .query<{ name: string; data: Uint8Array }, []>('SELECT name, data FROM policies')
      .all();
    expect(policyRows.length).toBe(1);
    const pol = policyRows[0]!;
    expect(pol.data[0]).toBe(0x01);
    const policyPlain = gcm(storageKey, pol.data.subarray(1, 13), aadPolicy(pol.name)).decrypt(
      pol.data.subarray(13),
    );
    expect(JSON.parse(new TextDecoder().decode(policyPlain))).toEqual({
      spiffeIdPattern: '^spiffe://x/y$',
      pathPattern: '^a$',
      permissions: ['read', 'list'],
    });
    // Nonces are all different.
    const nonces = new Set([...rows, pol].map((r) => toHex(r.data.subarray(1, 13))));
    expect(nonces.size).toBe(rows.length + 1);
    raw.close();
  });

  it('destroy and purge leave the erased ciphertext in neither the database nor the WAL', async () => {
    const dir = tempDir();
    const file = join(dir, 'spike.db');
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const secrets = store.secrets(await createStaticRootKeyProvider());
    // Neighbours on the same pages, so that erasure cannot be "the page went away".
    for (let i = 0; i < 20; i++) await secrets.put(`keep/${i}`, { v: randomToken('keep') });
    await secrets.put('erase/destroyed', { v: randomToken('D1') });
    await secrets.put('erase/destroyed', { v: randomToken('D2') });
    await secrets.put('erase/purged', { v: randomToken('P1') });
    await secrets.put('erase/purged', { v: randomToken('P2') });
    await secrets.put('erase/kept', { v: randomToken('K') });

    const ciphertexts = (path: string): Uint8Array[] => {
      const raw = new Database(file, { readonly: true });
      try {
        return raw
          .query<{ data: Uint8Array | null }, [string]>(
            'SELECT data FROM secret_versions WHERE path = ? ORDER BY version',
          )
          .all(path)
          .map((r) => r.data!.slice());
      } finally {
        raw.close();
      }
    };
    const destroyed = ciphertexts('erase/destroyed');
    const purged = ciphertexts('erase/purged');
    const kept = ciphertexts('erase/kept');
    expect([destroyed.length, purged.length, kept.length]).toEqual([2, 2, 1]);

    await secrets.destroy('erase/destroyed', [1, 2]);
    await secrets.purge('erase/purged');

    const bytesOf = (name: string): Uint8Array => {
      try {
        return new Uint8Array(readFileSync(join(dir, name)));
      } catch {
        return new Uint8Array(0); // no WAL file at all is fine
      }
    };
    // Scanned while Nexus still has the database open: no final checkpoint has helped.
    for (const name of ['spike.db', 'spike.db-wal']) {
      const bytes = bytesOf(name);
      for (const c of [...destroyed, ...purged]) {
        // The whole ciphertext, and its tag-free first 24 bytes on their own.
        expect(indexOf(bytes, c)).toBe(-1);
        expect(indexOf(bytes, c.subarray(0, 24))).toBe(-1);
      }
    }
    // The scan can find what is there: the live secret's ciphertext is in one of the files.
    const found = ['spike.db', 'spike.db-wal'].some((n) => indexOf(bytesOf(n), kept[0]!) !== -1);
    expect(found).toBe(true);
    expect(await secrets.get('erase/kept')).toBeDefined();
    await store.close();
  });

  it('swapped ciphertexts fail with a generic error that carries no value', async () => {
    const dir = tempDir();
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const provider = await createStaticRootKeyProvider();
    const secrets = store.secrets(provider);
    const policies = store.policies(provider);
    const v1 = randomToken('SWAP1');
    const v2 = randomToken('SWAP2');
    const other = randomToken('OTHER');
    await secrets.put('swap/x', { v: v1 });
    await secrets.put('swap/x', { v: v2 });
    await secrets.put('swap/y', { v: other });
    await policies.upsert({
      name: 'p1',
      spiffeIdPattern: 'a',
      pathPattern: 'b',
      permissions: ['read'],
    });
    await policies.upsert({
      name: 'p2',
      spiffeIdPattern: 'c',
      pathPattern: 'd',
      permissions: ['write'],
    });

    const file = join(dir, 'spike.db');
    const raw = new Database(file);
    /** Exchanges the `data` of two rows, chosen by a key expression. */
    const swap = (table: string, key: string, a: string, b: string) => {
      const read = (k: string) =>
        raw
          .query<{ data: Uint8Array }, [string]>(`SELECT data FROM ${table} WHERE ${key} = ?`)
          .get(k)!.data;
      const [da, db] = [read(a), read(b)];
      expect(toHex(da)).not.toBe(toHex(db));
      raw.run(`UPDATE ${table} SET data = ? WHERE ${key} = ?`, [db, a]);
      raw.run(`UPDATE ${table} SET data = ? WHERE ${key} = ?`, [da, b]);
      expect(toHex(read(a))).toBe(toHex(db));
    };
    // Two versions of one path.
    swap('secret_versions', "path || '#' || version", 'swap/x#1', 'swap/x#2');
    for (const version of [undefined, 1, 2]) {
      const e = await caught(secrets.get('swap/x', version));
      expect(isSpikeError(e)).toBe(true);
      expect(e.code).toBe('api_internal_error');
      expect(e.message).toBe('decryption failed');
      const text = describeError(e);
      for (const v of [v1, v2, other]) expect(text).not.toContain(v);
    }
    // Across paths.
    swap('secret_versions', "path || '#' || version", 'swap/x#2', 'swap/y#1');
    expect((await caught(secrets.get('swap/y'))).message).toBe('decryption failed');
    // Across policies.
    swap('policies', 'name', 'p1', 'p2');
    expect((await caught(policies.get('p1'))).message).toBe('decryption failed');
    expect((await caught(policies.list())).code).toBe('api_internal_error');
    // A ciphertext with one flipped bit.
    const row = raw
      .query<{ data: Uint8Array }, []>(
        "SELECT data FROM secret_versions WHERE path = 'swap/x' AND version = 1",
      )
      .get()!;
    const flipped = row.data.slice();
    flipped[20] = flipped[20]! ^ 1;
    raw.run("UPDATE secret_versions SET data = ? WHERE path = 'swap/x' AND version = 1", [flipped]);
    expect((await caught(secrets.get('swap/x', 1))).message).toBe('decryption failed');
    raw.close();
    await store.close();
  });

  it('database errors are wrapped without SQL parameters', async () => {
    const dir = tempDir();
    const store = await openStore({ backend: 'sqlite', dataDir: dir });
    const provider = await createStaticRootKeyProvider();
    const secrets = store.secrets(provider);
    const secretPath = `leak/${randomToken('PATH')}`;
    const value = randomToken('LEAKVALUE');
    await secrets.put(secretPath, { v: value });
    const raw = new Database(join(dir, 'spike.db'));
    raw.run('DROP TABLE secret_versions');
    raw.close();
    for (const call of [
      () => secrets.put(secretPath, { v: value }),
      () => secrets.get(secretPath),
      () => secrets.delete(secretPath, []),
    ]) {
      const e = await caught(call());
      expect(e.code).toBe('api_internal_error');
      expect(e.message).toBe('storage failure');
      const text = describeError(e);
      expect(text).not.toContain(secretPath);
      expect(text).not.toContain(value);
      expect(text).not.toContain('params');
      expect(text).not.toContain('secret_versions');
      if (e.cause !== undefined) expect((e.cause as Error).message).toMatch(/^SQLITE_[A-Z_]+$/);
    }
    await store.close();
  });

  it('keeps the data directory private', async () => {
    const dir = join(tempDir(), 'data');
    const { resolveDataDir } = await import('../src/nexus/data-dir.ts');
    const r = resolveDataDir({ SPIKE_NEXUS_DATA_DIR: join(dir, '..') });
    expect(statSync(r.dir).mode & 0o777).toBe(0o700);
  });
});
