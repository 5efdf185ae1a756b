/**
 * Client failover across Nexus replicas (issue 13, criterion 4), with real processes: three
 * Nexus replicas on one PostgreSQL database (`SPIKE_TEST_DATABASE_URL`, `bash .ci/postgres`),
 * three shared Keepers, four SDK clients each listing the three URLs in another order, running a
 * mixed read/write load. One replica is SIGKILLed mid-load. Then: every acknowledged write is
 * readable with its value, no read of an acknowledged write failed or differed, and the only
 * errors any client saw are writes in flight on the killed replica, reported `maybeApplied`
 * (docs/spike-api.md §10.2: never resent, the caller must read back).
 * Skipped without the variable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import type { SpikeClient } from '../src/sdk/client.ts';
import { lostWrites, type ReplicaSet, startLoad, startReplicas } from './support/replicas.ts';
import { freshDatabase, TEST_DATABASE_URL } from './support/store-backends.ts';

let set: ReplicaSet | undefined;

beforeAll(async () => {
  if (TEST_DATABASE_URL === undefined) return;
  set = await startReplicas({ databaseUrl: await freshDatabase() });
  await set.waitAllReady(90_000);
}, 150_000);

afterAll(async () => {
  await set?.close();
});

describe.skipIf(TEST_DATABASE_URL === undefined)('postgres: client failover', () => {
  it('postgres: SIGKILL of one of 3 replicas under load loses no acknowledged write and shows no hidden error', async () => {
    const s = set!;
    const clients: SpikeClient[] = await Promise.all(
      [0, 1, 2, 3].map((i) => s.client('pilot', i % 3)),
    );
    // Every client's first URL answers before the kill.
    for (const c of clients) expect(await c.ready()).toBe(true);
    const load = startLoad(clients, 'failover');
    await Bun.sleep(4000);
    const victim = s.replicas[0]!;
    await victim.proc.kill('SIGKILL');
    const killedAt = performance.now();
    await Bun.sleep(6000);
    const result = await load.stop();

    // The kill happened mid-load: calls succeeded after it, at the other replicas.
    expect(result.succeeded).toBeGreaterThan(50);
    expect(result.acked.size).toBeGreaterThan(20);
    // Only writes that were in flight on the killed replica may fail, and they say so.
    const hidden = result.errors.filter((e) => !(e.op === 'put' && e.maybeApplied));
    expect(hidden).toEqual([]);
    expect(result.errors.every((e) => e.at >= killedAt - 1000)).toBe(true);
    expect(result.badReads).toEqual([]);
    // The clients that preferred the killed replica moved on; the survivors are reported.
    expect(clients[0]!.apiUrl).not.toBe(victim.url);
    const status = await clients[0]!.replicaStatus();
    expect(status.map((r) => r.state)).toEqual(['unreachable', 'ready', 'ready']);

    // Every acknowledged write is there, with its value, read through any replica.
    expect(await lostWrites(clients[1]!, result.acked)).toEqual([]);
    console.log(
      `failover: ${result.calls} calls, ${result.succeeded} ok, ${result.acked.size} acknowledged writes, ` +
        `${result.unknown.size} maybeApplied, longest gap ${Math.round(result.longestGapMs)} ms`,
    );
  }, 120_000);
});
