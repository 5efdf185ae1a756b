/**
 * The SDK's break-glass calls (`recover`, `restore`; docs/spike-api.md §9) against a real deployment
 * (tests/support/cluster.ts: one Nexus process, three Keeper processes, SQLite, mTLS with
 * development SVIDs): recover while healthy, a total loss (every process restarted empty), then
 * two shards (one as a recovery line, one as an envelope) bring Nexus back with its secrets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { formatRecoveryLine } from '../src/core/shamir/shards.ts';
import { createClient, isSpikeError, type SpikeApiError, type SpikeClient } from '../src/index.ts';
import { type Cluster, startCluster } from './support/cluster.ts';

let cluster: Cluster;

async function rejection(fn: () => Promise<unknown>): Promise<SpikeApiError> {
  try {
    await fn();
  } catch (error) {
    expect(isSpikeError(error)).toBe(true);
    return error as SpikeApiError;
  }
  throw new Error('expected a rejection');
}

const open = (role: string): Promise<SpikeClient> =>
  createClient({
    socket: cluster.issuer.addressFor(role),
    apiUrl: cluster.nexusUrl,
    retry: { attempts: 2, initialMs: 10, maxMs: 20 },
  });

beforeAll(async () => {
  cluster = await startCluster({ keepers: 3, threshold: 2 });
  await cluster.waitReady(30_000);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

describe('SDK recover and restore against Nexus with Keepers', () => {
  it('recover, total loss, restore from two shards', async () => {
    const [pilot, recoverer, restorer] = await Promise.all([
      open('pilot'),
      open('recover'),
      open('restore'),
    ]);
    try {
      await pilot.putSecret('kept/db', { pass: 'survives' });
      expect((await rejection(() => pilot.recover())).code).toBe('access_unauthorized');
      const shards = await recoverer.recover();
      expect(shards).toHaveLength(3);
      expect(new Set(shards.map((s) => s.generation)).size).toBe(1);
      const held = await rejection(() => restorer.restore(shards[1]!));
      expect([held.code, held.status]).toEqual(['state_already_initialized', 409]);

      await cluster.nexus.kill();
      await Promise.all(cluster.keepers.map((k) => k.kill()));
      await Promise.all(cluster.keepers.map((k) => k.start()));
      await cluster.nexus.start();
      await cluster.waitUntil(async () => (await cluster.nexusReady()) === 503, 20_000, 'Nexus up');

      expect(await pilot.ready()).toBe(false);
      const notReady = await rejection(() => pilot.getSecret('kept/db'));
      expect([notReady.code, notReady.status]).toEqual(['state_not_ready', 503]);

      const first = await restorer.restore(formatRecoveryLine(shards[2]!));
      expect(first).toEqual({
        collected: 1,
        remaining: 1,
        restored: false,
        generation: shards[2]!.generation,
        threshold: 2,
      });
      const second = await restorer.restore(shards[0]!);
      expect(second).toEqual({
        collected: 2,
        remaining: 0,
        restored: true,
        generation: shards[2]!.generation,
        threshold: 2,
      });
      await cluster.waitReady(10_000);
      expect(await pilot.ready()).toBe(true);
      expect(await pilot.getSecret('kept/db')).toEqual({ data: { pass: 'survives' } });

      const again = await rejection(() => restorer.restore(shards[1]!));
      expect([again.code, again.status]).toEqual(['state_already_initialized', 409]);
    } finally {
      await Promise.all([pilot.close(), recoverer.close(), restorer.close()]);
    }
  }, 60_000);
});
