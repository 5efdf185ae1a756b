/**
 * The root-key lifecycle end to end (src/nexus/root-key/, src/nexus/main.ts; docs/spike-api.md §9;
 * docs/architecture.md "The flows that matter"): one real Nexus process and three real Keeper
 * processes over mTLS, with SVIDs from the development issuer (tests/support/cluster.ts).
 *
 * The tests run in order on one deployment:
 * 1. first boot, then SIGKILL and restart: ready within 2 s of the spawn, secret intact;
 * 2. threshold 2 of 3: a restart with one Keeper dead recovers; the dead Keeper, restarted
 *    empty, is refilled by the running Nexus within seconds;
 * 3. two Keepers frozen (SIGSTOP): a restarted Nexus stays `503 state_not_ready`; one resumed
 *    (SIGCONT) and Nexus becomes ready by itself;
 * 4. total loss: everything restarted empty → not ready → operator restore with shards from an
 *    earlier recover; foreign, mixed, corrupted and wrongly indexed shards are refused and leave
 *    Nexus unchanged; then ready with every secret intact, Keepers refilled;
 * 5. no root key and no shard in any file the processes wrote (database, WAL, logs).
 *
 * A second block drives the lifecycle in-process against Keeper doubles for the edge cases that
 * are slow or awkward with processes: first boot waiting for t Keepers, the update interval,
 * recovery from an older generation, and a restore winning over a stuck recovery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { fromHex } from '../src/core/bytes.ts';
import { computeKcv } from '../src/core/crypto/keys.ts';
import { SpikeError } from '../src/core/errors.ts';
import { combineShards, type ShardEnvelope, splitRootKey } from '../src/core/shamir/shards.ts';
import type { KeeperLink } from '../src/nexus/keeper-client.ts';
import { createKeyLifecycle, type KeyLifecycle } from '../src/nexus/root-key/lifecycle.ts';
import { MutableRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import {
  type Cluster,
  type Needle,
  type NexusClient,
  scanFiles,
  startCluster,
} from './support/cluster.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('nexus root-key lifecycle with keepers', () => {
  let cluster: Cluster;
  let pilot: NexusClient;
  let recoverer: NexusClient;
  let restorer: NexusClient;
  /** Every recover set handed out, in order (different generations of one key). */
  const recoverSets: ShardEnvelope[][] = [];
  /** Every envelope read straight from a Keeper. */
  const keeperEnvelopes: ShardEnvelope[] = [];
  /** Secrets written so far: path → values. */
  const written = new Map<string, Record<string, string>>();

  async function put(path: string, values: Record<string, string>): Promise<void> {
    const answer = await pilot.post('/v1/store/secrets', { path, values });
    expect(answer.status).toBe(200);
    written.set(path, values);
  }

  async function expectAllSecrets(): Promise<void> {
    for (const [path, values] of written) {
      const answer = await pilot.post('/v1/store/secrets?action=get', { path });
      expect(answer.status).toBe(200);
      expect(answer.json.data).toEqual(values);
    }
  }

  async function recoverSet(): Promise<ShardEnvelope[]> {
    const answer = await recoverer.post('/v1/operator/recover', {});
    expect(answer.status).toBe(200);
    const shards = answer.json.shards as ShardEnvelope[];
    expect(shards.map((s) => s.index)).toEqual([1, 2, 3]);
    expect(new Set(shards.map((s) => s.generation)).size).toBe(1);
    recoverSets.push(shards);
    return shards;
  }

  /** What each Keeper holds right now (read with the Nexus SVID), remembered for the scan. */
  async function snapshotKeepers(): Promise<void> {
    for (let i = 1; i <= 3; i++) {
      if (!cluster.keepers[i - 1]!.running()) continue;
      const client = await cluster.keeperClient(i);
      try {
        const answer = await client.post('/v1/store/shard', {});
        if (answer.status === 200) keeperEnvelopes.push(...(answer.json.shards as ShardEnvelope[]));
      } finally {
        await client.close();
      }
    }
  }

  /** Restarts Nexus (SIGKILL first) and returns the spawn time. */
  async function restartNexus(): Promise<number> {
    await cluster.nexus.kill('SIGKILL');
    return cluster.nexus.start();
  }

  beforeAll(async () => {
    cluster = await startCluster({ keepers: 3, threshold: 2 });
    pilot = await cluster.client('pilot');
    recoverer = await cluster.client('recover');
    restorer = await cluster.client('restore');
  }, 20_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('boots, then recovers from Keepers after SIGKILL within 2 s, secret intact', async () => {
    await cluster.waitReady(10_000);
    const first = await recoverSet();
    await put('app/db', { user: 'admin', password: 'first-boot-secret' });
    await snapshotKeepers();

    const spawnedAt = await restartNexus();
    // Not ready until it has its key back: probes answer, routes say state_not_ready.
    await cluster.waitReady(5000);
    const startToReady = performance.now() - spawnedAt;
    expect(startToReady).toBeLessThan(2000);
    await expectAllSecrets();

    // Recovery minted a new generation of the same key and pushed it to every Keeper.
    const second = await recoverSet();
    expect(second[0]!.kcv).toBe(first[0]!.kcv);
    expect(second[0]!.generation).not.toBe(first[0]!.generation);
    await cluster.waitUntil(
      async () => {
        const holders = await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)));
        return holders.every((s) => s === 200);
      },
      5000,
      'every keeper holding a shard',
    );
  }, 20_000);

  it('recovers with one Keeper dead, and refills a Keeper restarted empty', async () => {
    await cluster.keepers[2]!.kill('SIGKILL');
    await restartNexus();
    await cluster.waitReady(5000);
    await expectAllSecrets();
    await put('app/cache', { url: 'redis://cache:6379' });

    await cluster.keepers[2]!.start();
    // Up and empty first (503), then refilled by the running Nexus within seconds.
    await cluster.waitUntil(
      async () => (await cluster.keeperReady(3)) !== 0,
      5000,
      'keeper-3 listening',
    );
    const refill = await cluster.waitUntil(
      async () => (await cluster.keeperReady(3)) === 200,
      6000,
      'keeper-3 refilled',
    );
    expect(refill).toBeLessThan(6000);
    await snapshotKeepers();
    // Its envelope belongs to the generation Nexus hands out now.
    const set = await recoverSet();
    const k3 = await cluster.keeperClient(3);
    const held = await k3.post('/v1/store/shard', {});
    await k3.close();
    expect(held.status).toBe(200);
    expect(held.json.shards[0]).toEqual(set[2]);
  }, 20_000);

  it('stays not ready with two Keepers frozen and recovers by itself when one resumes', async () => {
    cluster.keepers[1]!.freeze();
    cluster.keepers[2]!.freeze();
    try {
      await restartNexus();
      await cluster.waitUntil(
        async () => (await cluster.nexusReady()) !== 0,
        5000,
        'nexus health port',
      );
      await sleep(2500);
      expect(await cluster.nexusReady()).toBe(503);
      const denied = await pilot.post('/v1/store/secrets?action=get', { path: 'app/db' });
      expect(denied.status).toBe(503);
      expect(denied.json.err).toBe('state_not_ready');

      cluster.keepers[1]!.thaw();
      const waited = await cluster.waitReady(10_000);
      expect(waited).toBeLessThan(8000);
      await expectAllSecrets();
    } finally {
      cluster.keepers[1]!.thaw();
      cluster.keepers[2]!.thaw();
    }
    await recoverSet();
    await snapshotKeepers();
  }, 25_000);

  it('sets aside corrupted and foreign shards held by Keepers and never uses a wrong key', async () => {
    const set = await recoverSet();
    const asNexus = async (i: number, envelope: ShardEnvelope) => {
      const client = await cluster.keeperClient(i);
      try {
        expect((await client.post('/v1/store/contribute', envelope)).status).toBe(200);
      } finally {
        await client.close();
      }
    };
    // Keeper 1: its share of the current generation, one byte flipped (same generation and KCV).
    const bytes = fromHex(set[0]!.shard);
    bytes[3] = bytes[3]! ^ 0x01;
    await asNexus(1, { ...set[0]!, shard: Buffer.from(bytes).toString('hex') });
    // Keeper 2: a share of another deployment's key on top (its good one becomes "previous").
    const foreign = await splitRootKey(crypto.getRandomValues(new Uint8Array(32)), 3, 2);
    await asNexus(2, foreign[1]!);

    // With keeper 3 frozen, the only pair of this generation includes the corrupted share.
    const before = (await Bun.file(cluster.nexus.outLog).text()).length;
    cluster.keepers[2]!.freeze();
    try {
      await restartNexus();
      await cluster.waitUntil(
        async () =>
          (await Bun.file(cluster.nexus.outLog).text())
            .slice(before)
            .includes('shards set aside: their combination does not verify'),
        6000,
        'the corrupted combination to be set aside',
      );
      expect(await cluster.nexusReady()).toBe(503);
      const log = (await Bun.file(cluster.nexus.outLog).text()).slice(before);
      expect(log).toContain('shard set aside: it belongs to another key');
      cluster.keepers[2]!.thaw();
      await cluster.waitReady(8000);
    } finally {
      cluster.keepers[2]!.thaw();
    }
    await expectAllSecrets();
    // The key is the stored one: the recover set still carries the same KCV.
    const after = await recoverSet();
    expect(after[0]!.kcv).toBe(set[0]!.kcv);
    await snapshotKeepers();
  }, 20_000);

  it('after total loss, restores from recover shards and refuses bad ones', async () => {
    const setA = recoverSets[0]!;
    const setB = recoverSets.at(-1)!;
    expect(setA[0]!.generation).not.toBe(setB[0]!.generation);

    await cluster.nexus.kill('SIGKILL');
    await Promise.all(cluster.keepers.map((k) => k.kill('SIGKILL')));
    await Promise.all(cluster.keepers.map((k) => k.start()));
    await cluster.nexus.start();
    await cluster.waitUntil(async () => (await cluster.nexusReady()) === 503, 5000, 'nexus 503');
    await sleep(1000);
    expect(await cluster.nexusReady()).toBe(503);

    const restore = (envelope: unknown) => restorer.post('/v1/operator/restore', envelope);
    const status = (collected: number, restored = false) => ({
      collected,
      remaining: 2 - collected,
      restored,
      generation: setB[0]!.generation,
      threshold: 2,
    });

    // Only the restore role may restore; recover needs a key.
    expect((await pilot.post('/v1/operator/restore', setB[0])).status).toBe(401);
    expect((await recoverer.post('/v1/operator/recover', {})).status).toBe(503);

    // A shard of another deployment (another key) is refused before it is collected.
    const foreign = await splitRootKey(crypto.getRandomValues(new Uint8Array(32)), 3, 2);
    const refusedForeign = await restore(foreign[0]);
    expect(refusedForeign.status).toBe(400);
    expect(refusedForeign.json.err).toBe('crypto_cipher_verification_failed');

    // Wrong indexes are refused; nothing collected.
    for (const index of [0, 256, -1, 1.5]) {
      const answer = await restore({ ...setB[1]!, index });
      expect(answer.status).toBe(400);
      expect(answer.json.err).toBe('api_bad_request');
    }

    // First shard of set B; a shard of set A (another generation) is refused, set unchanged.
    expect((await restore(setB[0])).json).toEqual(status(1));
    const mixed = await restore(setA[1]);
    expect(mixed.status).toBe(400);
    expect(mixed.json.err).toBe('api_bad_request');
    expect((await restore(setB[0])).json).toEqual(status(1)); // a repeat changes nothing

    // A corrupted share (same generation and KCV, one y-byte flipped) does not verify: the
    // collected set is discarded and Nexus stays not ready.
    const bytes = fromHex(setB[1]!.shard);
    bytes[5] = bytes[5]! ^ 0x5a;
    const corrupted = { ...setB[1]!, shard: Buffer.from(bytes).toString('hex') };
    const badCombine = await restore(corrupted);
    expect(badCombine.status).toBe(400);
    expect(badCombine.json.err).toBe('crypto_cipher_verification_failed');
    expect(await cluster.nexusReady()).toBe(503);

    // The right shards restore the key: collection restarts at 1.
    expect((await restore(setB[2])).json).toEqual(status(1));
    const done = await restore(setB[0]);
    expect(done.status).toBe(200);
    expect(done.json).toEqual(status(2, true));
    expect(await cluster.nexusReady()).toBe(200);
    await expectAllSecrets();

    // Restore never replaces a held key.
    const again = await restore(setB[1]);
    expect(again.status).toBe(409);
    expect(again.json.err).toBe('state_already_initialized');

    // The restored key was split anew and every (empty) Keeper refilled.
    await cluster.waitUntil(
      async () => {
        const holders = await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)));
        return holders.every((s) => s === 200);
      },
      6000,
      'every keeper refilled after restore',
    );
    const fresh = await recoverSet();
    expect(fresh[0]!.kcv).toBe(setB[0]!.kcv);
    expect(fresh[0]!.generation).not.toBe(setB[0]!.generation);
    await snapshotKeepers();

    // And that new generation alone recovers the key after another crash.
    const spawnedAt = await restartNexus();
    await cluster.waitReady(5000);
    expect(performance.now() - spawnedAt).toBeLessThan(2000);
    await expectAllSecrets();
  }, 30_000);

  it('leaves neither the root key nor any shard in the files and logs it wrote', async () => {
    await recoverSet();
    await snapshotKeepers();
    const set = recoverSets[0]!;
    const rootKey = await combineShards(set, 2, set[0]!.kcv);
    const needles: Needle[] = [{ label: 'root key', bytes: rootKey }];
    const seen = new Set<string>();
    for (const envelope of [...recoverSets.flat(), ...keeperEnvelopes]) {
      if (seen.has(envelope.shard)) continue;
      seen.add(envelope.shard);
      needles.push({ label: `shard ${envelope.index}`, bytes: fromHex(envelope.shard) });
    }
    expect(needles.length).toBeGreaterThanOrEqual(1 + 3 * 4);

    const files = cluster.files();
    const names = files.map((f) => f.slice(cluster.dir.length));
    expect(names).toContain('/nexus/data/spike.db');
    expect(names).toContain('/logs/nexus.out.log');
    expect(names).toContain('/logs/nexus.err.log');
    expect(names).toContain('/logs/keeper-1.out.log');
    expect(await scanFiles(files, needles)).toEqual([]);

    // The scanner itself finds every form it looks for.
    const probe = `${cluster.dir}/probe.txt`;
    const hex = Buffer.from(rootKey).toString('hex');
    const b64 = Buffer.from(Uint8Array.of(7, ...rootKey)).toString('base64');
    await Bun.write(probe, `x${hex}y\n{"a":"${b64}"}`);
    const found = await scanFiles([probe], [{ label: 'root key', bytes: rootKey }]);
    expect(found.map((f) => f.form)).toEqual(['hex', 'base64/1']);
  }, 20_000);
});

// ---- the lifecycle in-process, against Keeper doubles (fast edge cases) ---------------------

/** A Keeper double: holds envelopes like the real one ([current, previous]); can be "down". */
class FakeKeeper implements KeeperLink {
  held: ShardEnvelope[] = [];
  up = true;
  contributions = 0;
  readonly index: number;
  readonly url: string;
  constructor(index: number) {
    this.index = index;
    this.url = `https://keeper-${index}.test:8443`;
  }
  #check(): void {
    if (!this.up) throw new SpikeError('net_peer_connection', 'down');
  }
  async shards(): ReturnType<KeeperLink['shards']> {
    this.#check();
    return this.held.length === 0
      ? { kind: 'empty' }
      : { kind: 'held', envelopes: [...this.held], rejected: [] };
  }
  async contribute(envelope: ShardEnvelope): Promise<void> {
    this.#check();
    this.contributions++;
    const [current] = this.held;
    this.held =
      current === undefined || current.generation === envelope.generation
        ? [envelope, ...this.held.slice(1)]
        : [envelope, current];
  }
  async holding(): Promise<boolean> {
    this.#check();
    return this.held.length > 0;
  }
  async close(): Promise<void> {}
}

function memoryKcvStore(initial?: string) {
  let kcv = initial;
  return {
    getKcv: () => kcv,
    setKcv: (v: string) => {
      kcv = v;
    },
  };
}

const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

describe('key lifecycle (in-process, Keeper doubles)', () => {
  const lifecycles: KeyLifecycle[] = [];
  afterAll(async () => {
    for (const l of lifecycles) await l.stop();
  });
  function make(
    keepers: FakeKeeper[],
    store: ReturnType<typeof memoryKcvStore>,
    extra: { updateIntervalMs?: number } = {},
  ) {
    const keys = new MutableRootKeyProvider();
    const lifecycle = createKeyLifecycle({
      store,
      keys,
      keepers,
      shares: keepers.length,
      threshold: 2,
      monitorIntervalMs: 30,
      retry: { initialMs: 10, maxMs: 40 },
      log: quietLog,
      ...extra,
    });
    lifecycles.push(lifecycle);
    return { keys, lifecycle };
  }

  it('first boot stores the KCV only once t Keepers hold their shard, then fills the rest', async () => {
    const keepers = [1, 2, 3].map((i) => new FakeKeeper(i));
    for (const k of keepers) k.up = false;
    const store = memoryKcvStore();
    const { keys, lifecycle } = make(keepers, store);
    lifecycle.start();
    await sleep(200);
    expect(keys.ready).toBe(false);
    expect(store.getKcv()).toBeUndefined();
    keepers[0]!.up = true;
    await sleep(150);
    expect(keys.ready).toBe(false); // one Keeper is not enough: t = 2
    keepers[2]!.up = true;
    await lifecycle.whenReady();
    expect(store.getKcv()).toBe(keys.keys()!.kcv);
    expect(keepers[0]!.held[0]!.index).toBe(1);
    expect(keepers[2]!.held[0]!.index).toBe(3);
    keepers[1]!.up = true;
    await sleep(150);
    expect(keepers[1]!.held[0]!.generation).toBe(keepers[0]!.held[0]!.generation);
    // Any two of the three shards give the key whose KCV was stored.
    const key = await combineShards([keepers[1]!.held[0]!, keepers[2]!.held[0]!], 2);
    expect(await computeKcv(key)).toBe(store.getKcv()!);
  });

  it('re-sends the same shards on the update interval and refills an emptied Keeper', async () => {
    const keepers = [1, 2, 3].map((i) => new FakeKeeper(i));
    const { lifecycle } = make(keepers, memoryKcvStore(), { updateIntervalMs: 100 });
    lifecycle.start();
    await lifecycle.whenReady();
    const first = keepers.map((k) => k.held[0]);
    await sleep(400);
    for (const k of keepers) expect(k.contributions).toBeGreaterThanOrEqual(3);
    expect(keepers.map((k) => k.held[0])).toEqual(first); // the same set, not a new split
    keepers[1]!.held = [];
    await sleep(100);
    expect(keepers[1]!.held[0]).toEqual(first[1]);
  });

  it('recovers from the generation that has t shares, even when it is not the newest', async () => {
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const genA = await splitRootKey(rootKey, 3, 2);
    const genB = await splitRootKey(rootKey, 3, 2);
    const keepers = [1, 2, 3].map((i) => new FakeKeeper(i));
    keepers[0]!.held = [genB[0]!, genA[0]!];
    keepers[1]!.held = [genA[1]!];
    keepers[2]!.up = false;
    const store = memoryKcvStore(genA[0]!.kcv);
    const { keys, lifecycle } = make(keepers, store);
    lifecycle.start();
    await lifecycle.whenReady();
    expect(keys.keys()!.kcv).toBe(genA[0]!.kcv);
    // A new generation was minted and pushed: the reachable Keepers hold it as current.
    await sleep(100);
    const now = keepers[0]!.held[0]!.generation;
    expect(now).not.toBe(genA[0]!.generation);
    expect(now).not.toBe(genB[0]!.generation);
    expect(keepers[1]!.held[0]!.generation).toBe(now);
  });

  it('lets an operator restore win over a stuck recovery, then refuses further restores', async () => {
    const rootKey = crypto.getRandomValues(new Uint8Array(32));
    const set = await splitRootKey(rootKey, 3, 2);
    const keepers = [1, 2, 3].map((i) => new FakeKeeper(i)); // all empty
    const store = memoryKcvStore(set[0]!.kcv);
    const { keys, lifecycle } = make(keepers, store);
    lifecycle.start();
    await sleep(100);
    expect(lifecycle.phase()).toBe('recovering');
    await expect(lifecycle.operator.recover()).rejects.toMatchObject({ code: 'state_not_ready' });
    expect(await lifecycle.operator.restore(set[2]!)).toEqual({
      collected: 1,
      remaining: 1,
      restored: false,
      generation: set[2]!.generation,
      threshold: 2,
    });
    expect(await lifecycle.operator.restore(set[0]!)).toEqual({
      collected: 2,
      remaining: 0,
      restored: true,
      generation: set[2]!.generation,
      threshold: 2,
    });
    expect(keys.ready).toBe(true);
    expect(lifecycle.phase()).toBe('ready');
    await expect(lifecycle.operator.restore(set[1]!)).rejects.toMatchObject({
      code: 'state_already_initialized',
    });
    const handedOut = await lifecycle.operator.recover();
    expect(handedOut.map((e) => e.kcv)).toEqual([set[0]!.kcv, set[0]!.kcv, set[0]!.kcv]);
    await sleep(100);
    for (const k of keepers) expect(k.held[0]).toEqual(handedOut[k.index - 1]);
  });
});
