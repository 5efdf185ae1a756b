/**
 * PostgreSQL-only properties of the store (issue 13): no plaintext at rest in a `pg_dump` or in
 * the cluster's data directory; several stores over one database ("replicas") never reuse a
 * version number and honour check-and-set; exactly one of 3 racing replicas sets the key-check
 * value under the bootstrap lock (20 rounds); a policy written at replica A reaches replica B's
 * policy cache within 1 s. Runs when SPIKE_TEST_DATABASE_URL is set (`.ci/postgres`), else skipped.
 */
import { describe, expect, it } from 'bun:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { toBase64, toHex } from '../src/core/bytes.ts';
import { isSpikeError } from '../src/core/errors.ts';
import { createPolicyEngine } from '../src/core/policy/engine.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import {
  freshDatabase,
  openAt,
  TEST_DATABASE_URL,
  TEST_PG_BIN,
  TEST_PG_DATA_DIR,
} from './support/store-backends.ts';

const enc = new TextEncoder();
const token = (label: string) => `${label}-${crypto.randomUUID()}`;

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(needle);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

const TRUST = {
  nexus: ['spike.ist'],
  keeper: ['spike.ist'],
  bootstrap: ['spike.ist'],
  superuser: ['spike.ist'],
  recover: ['spike.ist'],
  restore: ['spike.ist'],
  'lite-workload': ['spike.ist'],
};

describe.skipIf(TEST_DATABASE_URL === undefined)('postgres', () => {
  it('postgres: pg_dump and the data directory hold no secret value, policy pattern or key bytes', async () => {
    const url = await freshDatabase();
    const store = await openAt({ backend: 'postgres', databaseUrl: url });
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const keys = await createStaticRootKeyProvider(rootKey);
    await store.setKcv(keys.keys()!.kcv);
    const secrets = store.secrets(keys);
    const values: string[] = [];
    const paths: string[] = [];
    for (let i = 0; i < 5; i++) {
      const path = `apps/${token('path')}`;
      paths.push(path);
      const value = token('VALUE');
      values.push(value);
      await secrets.put(path, { password: value });
    }
    const pattern = `^secrets/${token('PATHPAT')}/.*`;
    await store.policies(keys).upsert({
      name: token('pol'),
      spiffeIdPattern: '^spiffe://spike\\.ist/x$',
      pathPattern: pattern,
      permissions: ['read'],
    });
    await store.close();

    const forbidden: [string, Uint8Array][] = [
      ['root key', rootKey],
      ['root key hex', enc.encode(toHex(rootKey))],
      ['root key base64', enc.encode(toBase64(rootKey))],
      ['pattern', enc.encode(pattern)],
      ...values.map((v): [string, Uint8Array] => [`value ${v}`, enc.encode(v)]),
    ];
    const dumped = Bun.spawnSync([join(TEST_PG_BIN ?? '/usr/bin', 'pg_dump'), url], {
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(dumped.exitCode).toBe(0);
    const dump = dumped.stdout;
    // The dump is the real one: the paths are in it (plaintext by design).
    for (const p of paths) expect(indexOf(dump, enc.encode(p))).not.toBe(-1);
    for (const [label, needle] of forbidden) {
      if (indexOf(dump, needle) !== -1) throw new Error(`pg_dump contains the ${label}`);
    }
    if (TEST_PG_DATA_DIR !== undefined) {
      // Flush the heap and WAL to disk, then scan every file of the cluster.
      const { SQL } = await import('bun');
      const admin = new SQL(TEST_DATABASE_URL!, { max: 1 });
      await admin`CHECKPOINT`.catch(() => undefined);
      await admin.close();
      let sawPath = false;
      for (const file of filesUnder(TEST_PG_DATA_DIR)) {
        if (statSync(file).size > 64 * 1024 * 1024) continue;
        const bytes = readFileSync(file);
        if (paths.some((p) => indexOf(bytes, enc.encode(p)) !== -1)) sawPath = true;
        for (const [label, needle] of forbidden) {
          if (indexOf(bytes, needle) !== -1) throw new Error(`${file} contains the ${label}`);
        }
      }
      expect(sawPath).toBe(true);
    }
  }, 120_000);

  it('postgres: two replicas writing one path never reuse a version; CAS is honoured across them', async () => {
    const url = await freshDatabase();
    const a = await openAt({ backend: 'postgres', databaseUrl: url });
    const b = await openAt({ backend: 'postgres', databaseUrl: url });
    const keys = await createStaticRootKeyProvider();
    const [sa, sb] = [a.secrets(keys), b.secrets(keys)];
    const seen = new Set<number>();
    await Promise.all(
      [sa, sb, sa, sb].map(async (s, w) => {
        for (let i = 0; i < 50; i++) {
          const { version } = await s.put('shared/path', { w: `${w}-${i}` });
          expect(seen.has(version)).toBe(false);
          seen.add(version);
        }
      }),
    );
    expect(seen.size).toBe(200);
    expect((await sb.metadata('shared/path')).currentVersion).toBe(200);
    // CAS: both replicas try to write on top of version 200; exactly one wins.
    const [va, vb] = [a.vault(keys), b.vault(keys)];
    const results = await Promise.allSettled([
      va.write('shared/path', { x: 'a' }, 200),
      vb.write('shared/path', { x: 'b' }, 200),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won.length).toBe(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(lost?.status === 'rejected' && isSpikeError(lost.reason)).toBe(true);
    expect((await sa.metadata('shared/path')).currentVersion).toBe(201);
    await Promise.all([a.close(), b.close()]);
  }, 120_000);

  it('postgres: 3 racing replicas, 20 rounds: exactly one sets the key-check value', async () => {
    for (let round = 0; round < 20; round++) {
      const url = await freshDatabase();
      const replicas = await Promise.all(
        [0, 1, 2].map(() => openAt({ backend: 'postgres', databaseUrl: url })),
      );
      const generated: string[] = [];
      await Promise.all(
        replicas.map((r) =>
          r.withBootstrapLock(async () => {
            if (r.getKcv() !== undefined) return;
            await Bun.sleep(5); // first boot takes a while: the others must wait, not race
            const kcv = toHex(crypto.getRandomValues(new Uint8Array(16)));
            generated.push(kcv);
            await r.setKcv(kcv);
          }),
        ),
      );
      expect(generated.length).toBe(1);
      const fresh = await openAt({ backend: 'postgres', databaseUrl: url });
      expect(fresh.getKcv()).toBe(generated[0]);
      await Promise.all([...replicas, fresh].map((r) => r.close()));
    }
  }, 300_000);

  it('postgres: a policy written at replica A reaches replica B within 1 s', async () => {
    const url = await freshDatabase();
    const a = await openAt({ backend: 'postgres', databaseUrl: url });
    const b = await openAt({ backend: 'postgres', databaseUrl: url });
    const keys = await createStaticRootKeyProvider();
    const engineA = createPolicyEngine({ store: a.policies(keys), trustRoots: TRUST });
    const engineB = createPolicyEngine({ store: b.policies(keys), trustRoots: TRUST });
    const stop = b.watchPolicies(() => engineB.invalidate());
    const caller = 'spiffe://spike.ist/workload/app';
    // B has loaded (and cached) the empty policy set.
    expect(await engineB.checkAccess(caller, 'apps/db', ['read'])).toBe(false);
    await Bun.sleep(400); // let B's watcher take its first reading
    await engineA.upsert({
      name: 'apps-read',
      spiffeIdPattern: '^spiffe://spike\\.ist/workload/app$',
      pathPattern: '^apps/.*$',
      permissions: ['read'],
    });
    const started = performance.now();
    while (!(await engineB.checkAccess(caller, 'apps/db', ['read']))) {
      if (performance.now() - started > 1000) throw new Error('replica B still denies after 1 s');
      await Bun.sleep(20);
    }
    await engineA.delete('apps-read');
    const again = performance.now();
    while (await engineB.checkAccess(caller, 'apps/db', ['read'])) {
      if (performance.now() - again > 1000) throw new Error('replica B still allows after 1 s');
      await Bun.sleep(20);
    }
    stop();
    await Promise.all([a.close(), b.close()]);
  }, 60_000);
});
