/**
 * The chaos run (issue 13, criterion 6): three Nexus replicas on one PostgreSQL database
 * (`SPIKE_TEST_DATABASE_URL`; `bash .ci/postgres bun run test:slow`), three shared Keepers and
 * four SDK clients with all three URLs running a mixed read/write load for `SPIKE_CHAOS_SECONDS`
 * (default 600), while faults are injected at random (seeded by `SPIKE_CHAOS_SEED`, default 13),
 * one at a time, each followed by a pause of 3–8 s once the deployment is healthy again:
 *
 * - `replica`: SIGKILL of a replica, restarted after 0.5–4 s (a supervisor restarts any exited
 *   process, as systemd's `Restart=always` would);
 * - `keeper`: SIGKILL of a Keeper, restarted empty after 0.5–3 s (the replicas re-push shards
 *   every 3 s, `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`);
 * - `db-sessions`: `pg_terminate_backend` of every session of the Nexus database;
 * - `db-restart`: `pg_ctl restart -m fast` of the server (when `.ci/postgres` exported
 *   `SPIKE_TEST_PG_BIN` and `SPIKE_TEST_PG_DATA_DIR`; as `nobody` when running as root, as
 *   `.ci/postgres` started it).
 *
 * Bounded: one fault at a time, at most one replica or one Keeper down (the threshold is 2 of 3),
 * loopback only. Asserts that no acknowledged write is lost (every one is read back with its
 * value at the end, and no read during the run returned another value). Reports, on one
 * `chaos:` JSON line: calls, availability (share of calls answered with success), errors by kind,
 * recovery time per fault kind (from the fault to every replica and Keeper ready and a write
 * acknowledged; p50 and max), the longest stretch a client went without a successful call.
 */
import { afterAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import { SQL } from 'bun';
import type { SpikeClient } from '../../src/sdk/client.ts';
import {
  lostWrites,
  type ReplicaSet,
  seeded,
  startLoad,
  startReplicas,
} from '../support/replicas.ts';
import {
  freshDatabase,
  TEST_DATABASE_URL,
  TEST_PG_BIN,
  TEST_PG_DATA_DIR,
} from '../support/store-backends.ts';

const SECONDS = Number(process.env.SPIKE_CHAOS_SECONDS || 600);
const SEED = Number(process.env.SPIKE_CHAOS_SEED || 13);
const RECOVERY_LIMIT_MS = 90_000;

type FaultKind = 'replica' | 'keeper' | 'db-sessions' | 'db-restart';

let set: ReplicaSet | undefined;
let admin: SQL | undefined;

afterAll(async () => {
  await set?.close();
  await admin?.close().catch(() => undefined);
}, 60_000);

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.round(p * (sorted.length - 1))]!);
}

/** Runs a command (as `nobody` when we are root, as `.ci/postgres` runs the server). */
async function asDbOwner(cmd: string[]): Promise<number> {
  const full = process.getuid?.() === 0 ? ['runuser', '-u', 'nobody', '--', ...cmd] : cmd;
  const proc = Bun.spawn(full, { stdout: 'ignore', stderr: 'ignore', stdin: 'ignore' });
  return proc.exited;
}

describe.skipIf(TEST_DATABASE_URL === undefined)('postgres: chaos', () => {
  it(
    'postgres: replicas, Keepers and the database killed at random under load: no acknowledged write lost',
    async () => {
      const random = seeded(SEED);
      const databaseUrl = await freshDatabase();
      const dbName = new URL(databaseUrl).pathname.slice(1);
      admin = new SQL(TEST_DATABASE_URL!, { max: 1 });
      const s = await startReplicas({
        databaseUrl,
        nexusEnv: { SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '3s' },
      });
      set = s;
      await s.waitAllReady(120_000);
      const keeperCount = s.cluster.keepers.length;

      // Held-down processes are not restarted by the supervisor until their time comes.
      const heldUntil = new Map<string, number>();
      let supervising = true;
      const supervisor = (async () => {
        while (supervising) {
          const now = performance.now();
          for (const p of [...s.replicas.map((r) => r.proc), ...s.cluster.keepers]) {
            if (!p.running() && (heldUntil.get(p.name) ?? 0) <= now) {
              await p.start().catch(() => undefined);
            }
          }
          await Bun.sleep(250);
        }
      })();

      const clients: SpikeClient[] = await Promise.all(
        [0, 1, 2, 3].map((i) => s.client('pilot', i % 3)),
      );
      const probe = await s.client('pilot', 0);
      let probeSeq = 0;
      const healthy = async (): Promise<boolean> => {
        const replicas = await Promise.all(s.replicas.map((r) => r.ready()));
        if (!replicas.every((c) => c === 200)) return false;
        for (let i = 1; i <= keeperCount; i++) {
          if ((await s.cluster.keeperReady(i)) !== 200) return false;
        }
        try {
          await probe.putSecret(`chaos-probe/p${probeSeq++}`, { v: 'x' });
          return true;
        } catch {
          return false;
        }
      };

      const canRestartDb = TEST_PG_BIN !== undefined && TEST_PG_DATA_DIR !== undefined;
      const kinds: FaultKind[] = ['replica', 'replica', 'keeper', 'db-sessions'];
      if (canRestartDb) kinds.push('db-restart');
      const recovery = new Map<FaultKind, number[]>();
      const unrecovered: string[] = [];

      const load = startLoad(clients, 'chaos', random);
      const end = performance.now() + SECONDS * 1000;
      // Leave the last part of the run fault-free, for the final recovery.
      while (performance.now() < end - 10_000) {
        await Bun.sleep(3000 + random() * 5000);
        const kind = kinds[Math.floor(random() * kinds.length)]!;
        const at = performance.now();
        if (kind === 'replica') {
          const r = s.replicas[Math.floor(random() * s.replicas.length)]!;
          heldUntil.set(r.proc.name, at + 500 + random() * 3500);
          await r.proc.kill('SIGKILL');
        } else if (kind === 'keeper') {
          const k = s.cluster.keepers[Math.floor(random() * keeperCount)]!;
          heldUntil.set(k.name, at + 500 + random() * 2500);
          await k.kill('SIGKILL');
        } else if (kind === 'db-sessions') {
          await admin.unsafe(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${dbName}' AND pid <> pg_backend_pid()`,
          );
        } else {
          // The admin session dies with the server; it reconnects on its next query.
          const code = await asDbOwner([
            join(TEST_PG_BIN!, 'pg_ctl'),
            '-D',
            TEST_PG_DATA_DIR!,
            '-l',
            join(TEST_PG_DATA_DIR!, '..', 'server.log'),
            '-m',
            'fast',
            '-w',
            '-t',
            '60',
            'restart',
          ]);
          expect(code).toBe(0);
        }
        let waited: number;
        try {
          waited = await s.cluster.waitUntil(healthy, RECOVERY_LIMIT_MS, `recovery from ${kind}`);
          waited = performance.now() - at;
        } catch {
          waited = RECOVERY_LIMIT_MS;
          unrecovered.push(kind);
        }
        const list = recovery.get(kind) ?? [];
        list.push(waited);
        recovery.set(kind, list);
      }
      while (performance.now() < end) await Bun.sleep(250);
      const result = await load.stop();
      supervising = false;
      await supervisor;
      await s.waitAllReady(RECOVERY_LIMIT_MS);

      const lost = await lostWrites(probe, result.acked);
      const errorKinds: Record<string, number> = {};
      for (const e of result.errors) {
        const key = `${e.op}:${e.code}${e.status === undefined ? '' : `/${e.status}`}${e.maybeApplied ? ':maybeApplied' : ''}`;
        errorKinds[key] = (errorKinds[key] ?? 0) + 1;
      }
      let unknownApplied = 0;
      for (const [path, value] of result.unknown) {
        try {
          if ((await probe.getSecret(path)).data.v === value) unknownApplied++;
        } catch {
          // not applied
        }
      }
      const report = {
        seconds: SECONDS,
        seed: SEED,
        calls: result.calls,
        succeeded: result.succeeded,
        availability: Number((result.succeeded / Math.max(1, result.calls)).toFixed(5)),
        acknowledgedWrites: result.acked.size,
        acknowledgedWritesLost: lost.length,
        badReads: result.badReads.length,
        maybeAppliedWrites: result.unknown.size,
        maybeAppliedThatLanded: unknownApplied,
        errors: errorKinds,
        faults: Object.fromEntries(
          [...recovery].map(([kind, times]) => [
            kind,
            {
              count: times.length,
              recoveryP50Ms: percentile(times, 0.5),
              recoveryMaxMs: percentile(times, 1),
            },
          ]),
        ),
        unrecovered,
        longestClientGapMs: Math.round(result.longestGapMs),
      };
      console.log(`chaos: ${JSON.stringify(report)}`);

      expect(lost).toEqual([]);
      expect(result.badReads).toEqual([]);
      expect(result.acked.size).toBeGreaterThan(0);
      expect([...recovery.values()].flat().length).toBeGreaterThan(0);
      expect(unrecovered).toEqual([]);
    },
    (SECONDS + 300) * 1000,
  );
});
