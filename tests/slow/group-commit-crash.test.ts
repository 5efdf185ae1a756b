/**
 * Group commit under a SIGKILL (docs/architecture.md "Group commit and a busy database"): 64
 * writers keep 64 puts of distinct paths in flight, so every commit carries a group of writes;
 * Nexus is SIGKILLed while a group is being applied and fsynced. After the restart every
 * acknowledged put reads back exactly, and every put that was in flight is either wholly there or
 * wholly absent (a group commits all or nothing, never half a write).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { type Cluster, type NexusClient, startCluster } from '../support/cluster.ts';

const CLIENTS = 8;
const WRITERS_PER_CLIENT = 8;
const KILL_AFTER_ACKS = 1500;

describe('group commit crash consistency', () => {
  let cluster: Cluster;
  const clients: NexusClient[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ keepers: 2, threshold: 2, logLevel: 'WARN' });
    await cluster.waitReady(60_000);
    for (let i = 0; i < CLIENTS; i++) clients.push(await cluster.client('pilot'));
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('loses no acknowledged write and leaves no half write when killed during a group', async () => {
    const run = crypto.randomUUID().slice(0, 8);
    const acked = new Map<string, string>();
    const inFlight = new Map<string, string>();
    let killed = false;
    let inFlightAtKill = 0;
    let kill: Promise<void> | undefined;

    const writer = async (client: NexusClient, w: number) => {
      for (let j = 0; !killed; j++) {
        const path = `group/${run}/w${w}/p${j}`;
        const value = `${run}-${w}-${j}-${crypto.randomUUID()}`;
        inFlight.set(path, value);
        let status = 0;
        try {
          status = (await client.post('/v1/store/secrets', { path, values: { v: value } })).status;
        } catch {
          status = 0;
        }
        if (status !== 200) return; // cut by the kill
        inFlight.delete(path);
        if (killed) return; // answered after the kill was sent: leave it as in flight
        acked.set(path, value);
        if (acked.size >= KILL_AFTER_ACKS && !killed) {
          killed = true;
          inFlightAtKill = inFlight.size;
          kill = cluster.nexus.kill('SIGKILL');
        }
      }
    };
    await Promise.all(
      Array.from({ length: CLIENTS * WRITERS_PER_CLIENT }, (_, w) =>
        writer(clients[w % CLIENTS]!, w),
      ),
    );
    await kill;
    expect(killed).toBe(true);
    // Most writers had a put in flight: the kill landed while groups were being committed.
    expect(inFlightAtKill).toBeGreaterThanOrEqual(32);

    await cluster.nexus.start();
    await cluster.waitReady(60_000);
    const reader = await cluster.client('pilot');
    const wrong: string[] = [];
    for (const [path, value] of acked) {
      const got = await reader.post('/v1/store/secrets?action=get', { path });
      if (got.status !== 200 || got.json?.data?.v !== value) wrong.push(`${path}: ${got.status}`);
    }
    expect(wrong).toEqual([]);
    const half: string[] = [];
    let landed = 0;
    for (const [path, value] of inFlight) {
      const got = await reader.post('/v1/store/secrets?action=get', { path });
      if (got.status === 200 && got.json?.data?.v === value) landed++;
      else if (got.status !== 404) half.push(`${path}: ${got.status}`);
      const listed = await reader.post('/v1/store/secrets?action=list', {});
      if (got.status === 404 && listed.json?.keys?.includes(path)) half.push(`${path}: head only`);
    }
    expect(half).toEqual([]);
    console.log(
      `${acked.size} acknowledged, ${inFlight.size} in flight at the kill (${landed} had landed)`,
    );
    await reader.close();
  }, 240_000);
});
