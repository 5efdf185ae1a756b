/**
 * Several Nexus replicas on one PostgreSQL database with shared Keepers, as real processes on
 * loopback (issue 13): the development issuer and N Keepers of tests/support/cluster.ts (its own
 * single Nexus is never started), plus `count` Nexus processes (`bun src/nexus/main.ts`), each
 * with its own mTLS and health ports, all with the Nexus SVID, `SPIKE_NEXUS_BACKEND_STORE=postgres`
 * and the same `SPIKE_NEXUS_DATABASE_URL` and `SPIKE_NEXUS_KEEPER_PEERS`.
 *
 * ```ts
 * const set = await startReplicas({ databaseUrl: await freshDatabase() });  // 3 replicas, 3 Keepers
 * await set.waitAllReady();
 * const spike = await set.client('pilot', 1);       // SDK client, URLs rotated by 1
 * await set.replicas[0]!.proc.kill();               // SIGKILL; .proc.start() brings it back
 * await set.close();
 * ```
 *
 * Logs: `<cluster.logDir>/nexus-<i>.{out,err}.log`, appended across restarts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, type SpikeClient } from '../../src/sdk/client.ts';
import type { RetryOptions } from '../../src/sdk/types.ts';
import { type Cluster, type ManagedProcess, managed, startCluster } from './cluster.ts';
import { freePort, plainStatus, waitUntil } from './process.ts';

const TRUST_DOMAIN = 'spike.ist';
const SILENT = { info() {}, warn() {}, error() {} };

export interface ReplicaOptions {
  /** The database every replica uses (e.g. `freshDatabase()` of tests/support/store-backends.ts). */
  readonly databaseUrl: string;
  /** Nexus replicas; default 3. */
  readonly count?: number;
  /** Keepers (= shares); default 3. */
  readonly keepers?: number;
  /** Default 2. */
  readonly threshold?: number;
  /** Extra Nexus environment variables (every replica). */
  readonly nexusEnv?: Readonly<Record<string, string>>;
  /** `SPIKE_SYSTEM_LOG_LEVEL`; default WARN. */
  readonly logLevel?: string;
}

interface Replica {
  readonly name: string;
  readonly url: string;
  readonly healthPort: number;
  readonly proc: ManagedProcess;
  /** `/ready` over the plain health port: 200, 503, or 0 when it does not answer. */
  ready(): Promise<number>;
}

export interface ReplicaSet {
  /** The issuer and the Keepers (`cluster.keepers`, `cluster.keeperReady(i)`). */
  readonly cluster: Cluster;
  readonly replicas: readonly Replica[];
  readonly urls: readonly string[];
  /** Starts every replica that is not running (all at once). */
  startAll(): Promise<void>;
  /** Polls until every replica's `/ready` is 200. */
  waitAllReady(timeoutMs?: number): Promise<number>;
  /**
   * An SDK client with the SVID of `role`, the replica URLs rotated by `rotate` (so clients
   * prefer different replicas), closed by `close()` unless closed before.
   */
  client(role: string, rotate?: number, retry?: Partial<RetryOptions>): Promise<SpikeClient>;
  close(): Promise<void>;
}

/** Starts the issuer, the Keepers and `count` replicas (at once: the first boot races). */
export async function startReplicas(options: ReplicaOptions): Promise<ReplicaSet> {
  const count = options.count ?? 3;
  const keepers = options.keepers ?? 3;
  const threshold = options.threshold ?? 2;
  const level = options.logLevel ?? 'WARN';
  const cluster = await startCluster({ keepers, threshold, deferNexus: true, logLevel: level });
  const ports = await Promise.all(Array.from({ length: 2 * count }, () => freePort()));
  const replicas: Replica[] = [];
  for (let i = 0; i < count; i++) {
    const port = ports[2 * i]!;
    const healthPort = ports[2 * i + 1]!;
    const dataDir = join(cluster.dir, `nexus-${i + 1}`);
    mkdirSync(dataDir);
    const name = `nexus-${i + 1}`;
    const proc = managed(
      name,
      ['bun', 'src/nexus/main.ts'],
      {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? cluster.dir,
        TMPDIR: cluster.dir,
        SPIKE_SYSTEM_LOG_LEVEL: level,
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
        SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor('nexus'),
        SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${port}`,
        SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${healthPort}`,
        SPIKE_NEXUS_DATA_DIR: dataDir,
        SPIKE_NEXUS_BACKEND_STORE: 'postgres',
        SPIKE_NEXUS_DATABASE_URL: options.databaseUrl,
        SPIKE_NEXUS_KEEPER_PEERS: cluster.keeperUrls.join(','),
        SPIKE_NEXUS_SHAMIR_SHARES: String(keepers),
        SPIKE_NEXUS_SHAMIR_THRESHOLD: String(threshold),
        ...options.nexusEnv,
      },
      cluster.logDir,
    );
    replicas.push({
      name,
      url: `https://127.0.0.1:${port}`,
      healthPort,
      proc,
      ready: () => plainStatus(healthPort, '/ready'),
    });
  }
  const urls = replicas.map((r) => r.url);
  const clients = new Set<SpikeClient>();

  const set: ReplicaSet = {
    cluster,
    replicas,
    urls,
    async startAll() {
      await Promise.all(replicas.filter((r) => !r.proc.running()).map((r) => r.proc.start()));
    },
    waitAllReady(timeoutMs = 60_000) {
      return waitUntil(
        async () => (await Promise.all(replicas.map((r) => r.ready()))).every((s) => s === 200),
        timeoutMs,
        'every replica /ready = 200',
      );
    },
    async client(role, rotate = 0, retry) {
      const order = urls.map((_, i) => urls[(i + rotate) % urls.length]!);
      const client = await createClient({
        socket: cluster.issuer.addressFor(role),
        apiUrl: order,
        nexusTrustDomains: [TRUST_DOMAIN],
        logger: SILENT,
        timeoutMs: 20_000,
        ...(retry === undefined ? {} : { retry }),
      });
      const close = client.close.bind(client);
      clients.add(client);
      return Object.assign(client, {
        close: async () => {
          clients.delete(client);
          await close();
        },
      });
    },
    async close() {
      for (const c of [...clients]) await c.close().catch(() => undefined);
      await Promise.all(replicas.map((r) => r.proc.kill('SIGKILL')));
      await cluster.close();
    },
  };
  try {
    await set.startAll();
  } catch (error) {
    await set.close();
    throw error;
  }
  return set;
}

/** One failed call of a load worker. */
interface LoadError {
  readonly op: 'put' | 'get' | 'metadata';
  readonly code: string;
  readonly status: number | undefined;
  readonly maybeApplied: boolean;
  /** `performance.now()` of the failure. */
  readonly at: number;
}

export interface LoadResult {
  readonly calls: number;
  readonly succeeded: number;
  readonly errors: readonly LoadError[];
  /** Every acknowledged write: path → the value written (each path is written once). */
  readonly acked: ReadonlyMap<string, string>;
  /** Writes that failed with `maybeApplied`: applied or not, the caller cannot know. */
  readonly unknown: ReadonlyMap<string, string>;
  /** Reads of an acknowledged path that did not return its value (a lost write, seen live). */
  readonly badReads: readonly string[];
  /** Longest stretch (ms) a worker went without a successful call. */
  readonly longestGapMs: number;
}

/** A small seeded PRNG (mulberry32), so a run can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs a mixed load on every client until `stop()`: about half writes (each to a new path, with a
 * unique value), the rest reads of acknowledged paths (checked against the value written) and
 * metadata reads. One worker per client, one call at a time each.
 */
export function startLoad(
  clients: readonly SpikeClient[],
  prefix: string,
  random: () => number = Math.random,
): { stop(): Promise<LoadResult> } {
  let stopped = false;
  let calls = 0;
  let succeeded = 0;
  let longestGapMs = 0;
  const errors: LoadError[] = [];
  const acked = new Map<string, string>();
  const ackedPaths: string[] = [];
  const unknown = new Map<string, string>();
  const badReads: string[] = [];

  const worker = async (spike: SpikeClient, w: number) => {
    let seq = 0;
    let lastOk = performance.now();
    while (!stopped) {
      const roll = random();
      const op: LoadError['op'] =
        roll < 0.5 || ackedPaths.length === 0 ? 'put' : roll < 0.9 ? 'get' : 'metadata';
      const path =
        op === 'put'
          ? `${prefix}/w${w}/s${seq++}`
          : ackedPaths[Math.floor(random() * ackedPaths.length)]!;
      const value = `${w}-${seq}-${random().toString(36).slice(2)}`;
      calls++;
      try {
        if (op === 'put') {
          await spike.putSecret(path, { v: value });
          acked.set(path, value);
          ackedPaths.push(path);
        } else if (op === 'get') {
          const { data } = await spike.getSecret(path);
          if (data.v !== acked.get(path)) badReads.push(path);
        } else {
          const meta = await spike.getSecretMetadata(path);
          if (meta.currentVersion !== 1) badReads.push(path);
        }
        succeeded++;
        const now = performance.now();
        longestGapMs = Math.max(longestGapMs, now - lastOk);
        lastOk = now;
      } catch (error) {
        const e = error as { code?: string; status?: number; maybeApplied?: boolean };
        if (op === 'get' && e.code === 'api_not_found') badReads.push(path);
        if (op === 'put' && e.maybeApplied === true) unknown.set(path, value);
        errors.push({
          op,
          code: String(e.code ?? (error as Error).message),
          status: e.status,
          maybeApplied: e.maybeApplied === true,
          at: performance.now(),
        });
        await Bun.sleep(50);
      }
    }
    longestGapMs = Math.max(longestGapMs, performance.now() - lastOk);
  };
  const running = clients.map((c, i) => worker(c, i));
  return {
    async stop() {
      stopped = true;
      await Promise.all(running);
      return { calls, succeeded, errors, acked, unknown, badReads, longestGapMs };
    },
  };
}

/** Reads back every acknowledged write; returns the paths that are missing or hold another value. */
export async function lostWrites(
  spike: SpikeClient,
  acked: ReadonlyMap<string, string>,
): Promise<string[]> {
  const lost: string[] = [];
  const entries = [...acked];
  for (let i = 0; i < entries.length; i += 25) {
    await Promise.all(
      entries.slice(i, i + 25).map(async ([path, value]) => {
        try {
          const { data } = await spike.getSecret(path);
          if (data.v !== value) lost.push(path);
        } catch (error) {
          if ((error as { code?: string }).code === 'api_not_found') lost.push(path);
          else throw error;
        }
      }),
    );
  }
  return lost;
}
