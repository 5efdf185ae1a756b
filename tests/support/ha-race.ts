/**
 * The first-boot race of issue 13 (criterion 2): `rounds` times, an empty database and 3 replicas
 * started at once; each round exactly one replica generates the root key (one first boot, one
 * key-check value) and the two others recover it from the Keepers; in the first and the last
 * round a secret written at one replica is read at the two others and every Keeper ends up with
 * one generation (one pusher). Used by tests/ha-postgres.test.ts and tests/slow.
 */
import { expect } from 'bun:test';
import { SQL } from 'bun';
import { oneGeneration, type Replica, startHaCluster } from './ha-cluster.ts';
import { TEST_DATABASE_URL } from './store-backends.ts';

const FIRST_BOOT = 'no key-check record: first boot, generating the root key';
const READY = 'root key installed; nexus is ready';

const countOf = (r: Replica, msg: string) => r.logs().filter((l) => l.msg === msg).length;

/** Runs the race `rounds` times (needs SPIKE_TEST_DATABASE_URL). */
export async function raceRounds(rounds: number): Promise<void> {
  const name = `ha_race_${crypto.randomUUID().replaceAll('-', '')}`;
  const admin = new SQL(TEST_DATABASE_URL!, { max: 2 });
  const url = new URL(TEST_DATABASE_URL!);
  url.pathname = `/${name}`;
  const ha = await startHaCluster({ databaseUrl: url.toString(), replicas: 3 });
  try {
    for (let round = 0; round < rounds; round++) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.unsafe(`CREATE DATABASE "${name}"`);
      const before = ha.replicas.map((r) => [countOf(r, FIRST_BOOT), r.logs().length] as const);
      await Promise.all(ha.replicas.map((r) => r.start()));
      await ha.waitAllReady(90_000);
      const fresh = ha.replicas.map((r, i) => r.logs().slice(before[i]![1]));
      const sources = fresh.map((lines) => lines.find((l) => l.msg === READY)?.source);
      expect(sources.filter((s) => s === 'first-boot')).toHaveLength(1);
      expect(sources.filter((s) => s === 'keepers')).toHaveLength(2);
      const firstBoots = ha.replicas.map((r, i) => countOf(r, FIRST_BOOT) - before[i]![0]);
      expect(firstBoots.reduce((a, b) => a + b, 0)).toBe(1);
      const db = new SQL(url.toString(), { max: 1 });
      const kcvs = await db`SELECT value FROM store_meta WHERE key = 'kcv'`;
      await db.close();
      expect(kcvs).toHaveLength(1);
      if (round === 0 || round === rounds - 1) {
        // The same key at every replica: what one writes, the others decrypt.
        const path = `race/r${round}`;
        const a = await ha.client('pilot', 0);
        expect(
          (await a.post('/v1/store/secrets', { path, values: { k: `v${round}` } })).status,
        ).toBe(200);
        for (const i of [1, 2]) {
          const c = await ha.client('pilot', i);
          const got = await c.post('/v1/store/secrets?action=get', { path });
          expect(got.status).toBe(200);
          expect(got.json.data).toEqual({ k: `v${round}` });
          await c.close();
        }
        await a.close();
        // One pusher: every Keeper ends up with the first-boot generation.
        await oneGeneration(ha);
      }
      await Promise.all(ha.replicas.map((r) => r.kill('SIGKILL')));
    }
  } finally {
    await ha.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
    await admin.close();
  }
}
