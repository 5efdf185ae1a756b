/**
 * `bun tests/bench/store-scale.ts [--paths N]`: how the SQLite store's cost grows with its size
 * (issue 12 criterion 6), in process, through the store's own API (src/nexus/store/index.ts) with
 * real encryption and real fsyncs. Run by tests/bench/run.ts as the `store` phase.
 *
 * For 100 and N (default 100,000) stored secrets of 10 versions each: seeding time, secret get
 * throughput (64 in flight, random paths, 3 s), `list` of every path, resident memory after
 * loading; then 1,000 policies written one after another. Prints a JSON summary as the last line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStaticRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { openStore } from '../../src/nexus/store/index.ts';

const args = process.argv.slice(2);
const at = args.indexOf('--paths');
const big = at >= 0 ? Number(args[at + 1]) : 100_000;
const VERSIONS = 10;
const IN_FLIGHT = 64;
const GET_MS = 3_000;

interface ScaleFigures {
  paths: number;
  seedMs: number;
  getRps: number;
  listMs: number;
  rssMiB: number;
}

async function measure(paths: number): Promise<ScaleFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'spike-scale-'));
  const store = await openStore({ backend: 'sqlite', dataDir: dir });
  const secrets = store.secrets(await createStaticRootKeyProvider());
  const name = (i: number) => `scale/t${i % 100}/app${i}/db`;
  const seeded = performance.now();
  const batch = 2_000;
  for (let v = 0; v < VERSIONS; v++) {
    for (let start = 0; start < paths; start += batch) {
      const puts: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(paths, start + batch); i++) {
        puts.push(secrets.put(name(i), { username: `u${i}`, password: `p${v}-${i}` }));
      }
      await Promise.all(puts);
    }
  }
  const seedMs = performance.now() - seeded;
  Bun.gc(true);
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  // Warm-up, then a closed loop of gets of random paths.
  let done = 0;
  const until = performance.now() + GET_MS;
  const loop = async () => {
    while (performance.now() < until) {
      await secrets.get(name(Math.floor(Math.random() * paths)));
      done++;
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  const getRps = done / ((performance.now() - began) / 1000);
  const listed = performance.now();
  const all = await secrets.list();
  const listMs = performance.now() - listed;
  if (all.length !== paths) throw new Error(`list returned ${all.length} of ${paths}`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { paths, seedMs, getRps, listMs, rssMiB };
}

async function policies(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'spike-scale-'));
  const store = await openStore({ backend: 'sqlite', dataDir: dir });
  const policyStore = store.policies(await createStaticRootKeyProvider());
  const started = performance.now();
  for (let i = 0; i < 1_000; i++) {
    await policyStore.upsert({
      name: `tenant-${i}`,
      spiffeIdPattern: `^spiffe://spike\\.ist/tenant/${i}/.*$`,
      pathPattern: `^tenants/${i}/.*$`,
      permissions: ['read'],
    });
  }
  const ms = performance.now() - started;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

const small = await measure(100);
const large = await measure(big);
const policyMs = await policies();
for (const f of [small, large]) {
  console.log(
    `store with ${f.paths} secrets × ${VERSIONS} versions: seed ${(f.seedMs / 1000).toFixed(1)} s, ` +
      `get ${f.getRps.toFixed(0)}/s (in process, ${IN_FLIGHT} in flight), list ${f.listMs.toFixed(1)} ms, ` +
      `RSS ${f.rssMiB.toFixed(0)} MiB`,
  );
}
console.log(
  `get with ${large.paths} / with 100 = ${(large.getRps / small.getRps).toFixed(2)} (target ≥ 0.90); ` +
    `list over ${large.paths} paths ${large.listMs.toFixed(1)} ms (target < 200 ms)`,
);
console.log(
  `1,000 policies written one after another: ${policyMs.toFixed(0)} ms (target ≤ 1,000 ms)`,
);
console.log(JSON.stringify({ small, large, policyMs }));
