/**
 * Several Nexus replicas over one PostgreSQL database and one set of Keepers (issue 13), as real
 * processes on loopback with real mTLS: the issuer and the Keepers of `startCluster` (its own
 * Nexus is never started) plus `replicas` processes of `bun src/nexus/main.ts`, each with its own
 * TLS and health port, all with `SPIKE_NEXUS_BACKEND_STORE=postgres` and the same database URL.
 *
 * ```ts
 * const ha = await startHaCluster({ databaseUrl: await freshDatabase(), replicas: 3 });
 * await Promise.all(ha.replicas.map((r) => r.start()));   // all at once
 * await ha.waitAllReady();
 * const a = await ha.client('pilot', 0);                  // mTLS client to replica 0
 * await ha.replicas[1]!.kill();                           // SIGKILL, waits for the exit
 * ha.replicas[0]!.logs();                                 // its JSON stdout lines, all starts
 * await ha.close();
 * ```
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Subprocess, spawn } from 'bun';
import type { ShardEnvelope } from '../../src/core/shamir/shards.ts';
import { authorizeMatching } from '../../src/core/spiffe/authorizer.ts';
import { hasRole } from '../../src/core/spike/roles.ts';
import { createMtlsClient } from '../../src/runtime/tls/client.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { type Cluster, type ClusterOptions, type NexusClient, startCluster } from './cluster.ts';
import { freePort, plainStatus, ROOT, waitUntil } from './process.ts';

export interface HaClusterOptions {
  /** The database every replica uses (e.g. `freshDatabase()` of store-backends.ts). */
  readonly databaseUrl: string;
  /** Number of Nexus replicas; default 3. */
  readonly replicas?: number;
  /** Keepers (default 3) and threshold (default 2). */
  readonly keepers?: number;
  readonly threshold?: number;
  /** Extra Nexus environment variables for every replica. */
  readonly nexusEnv?: Readonly<Record<string, string>>;
  readonly keeperEnv?: ClusterOptions['keeperEnv'];
}

/** One Nexus replica: same command, environment and ports on every start. */
export interface Replica {
  readonly name: string;
  readonly url: string;
  readonly healthPort: number;
  running(): boolean;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** `/ready` on the plain health port: 200, 503 or 0. */
  ready(): Promise<number>;
  waitReady(timeoutMs?: number): Promise<number>;
  /** Every JSON line written to stdout so far (all starts). */
  logs(): Record<string, unknown>[];
  /** The JSON lines of the current (or last) start only. */
  currentLogs(): Record<string, unknown>[];
}

export interface HaCluster {
  /** The issuer and the Keepers (`base.keepers`, `base.keeperClient`, `base.issuer`). */
  readonly base: Cluster;
  readonly replicas: readonly Replica[];
  /** The comma-separated list a client gets in `SPIKE_NEXUS_API_URL`. */
  readonly apiUrls: string;
  /** An mTLS client as `role` to replica `i` (0-based). */
  client(role: string, i: number): Promise<NexusClient>;
  waitAllReady(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const children = new Set<Subprocess>();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function replica(
  name: string,
  env: Record<string, string>,
  logDir: string,
  port: number,
  healthPort: number,
): Replica {
  const outLog = join(logDir, `${name}.out.log`);
  const errLog = join(logDir, `${name}.err.log`);
  let proc: Subprocess | undefined;
  let startLine = 0;
  const alive = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  const self: Replica = {
    name,
    url: `https://127.0.0.1:${port}`,
    healthPort,
    running: alive,
    async start() {
      if (alive()) throw new Error(`${name} is already running`);
      startLine = self.logs().length;
      const out = openSync(outLog, 'a');
      const err = openSync(errLog, 'a');
      try {
        proc = spawn(['bun', 'src/nexus/main.ts'], {
          cwd: ROOT,
          env,
          stdin: 'ignore',
          stdout: out,
          stderr: err,
        });
      } finally {
        closeSync(out);
        closeSync(err);
      }
      const p = proc;
      children.add(p);
      void p.exited.then(() => children.delete(p));
    },
    async kill(signal = 'SIGKILL') {
      const p = proc;
      if (p === undefined || !alive()) return;
      p.kill(signal);
      await p.exited;
    },
    ready: () => plainStatus(healthPort, '/ready'),
    waitReady: (timeoutMs = 60_000) =>
      waitUntil(async () => (await self.ready()) === 200, timeoutMs, `${name} /ready = 200`),
    logs() {
      let text = '';
      try {
        text = readFileSync(outLog, 'utf8');
      } catch {
        return [];
      }
      const lines: Record<string, unknown>[] = [];
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a partial last line
        }
      }
      return lines;
    },
    currentLogs: () => self.logs().slice(startLine),
  };
  return self;
}

/** Starts the issuer and the Keepers; the replicas are created but not started. */
export async function startHaCluster(options: HaClusterOptions): Promise<HaCluster> {
  const n = options.keepers ?? 3;
  const t = options.threshold ?? 2;
  const base = await startCluster({
    keepers: n,
    threshold: t,
    deferNexus: true,
    ...(options.keeperEnv === undefined ? {} : { keeperEnv: options.keeperEnv }),
  });
  const count = options.replicas ?? 3;
  const ports = await Promise.all(Array.from({ length: 2 * count }, () => freePort()));
  const replicas = Array.from({ length: count }, (_, i) => {
    const port = ports[2 * i]!;
    const healthPort = ports[2 * i + 1]!;
    return replica(
      `nexus-${i + 1}`,
      {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? base.dir,
        TMPDIR: base.dir,
        SPIKE_SYSTEM_LOG_LEVEL: 'INFO',
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
        SPIFFE_ENDPOINT_SOCKET: base.issuer.addressFor('nexus'),
        SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${port}`,
        SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${healthPort}`,
        SPIKE_NEXUS_BACKEND_STORE: 'postgres',
        SPIKE_NEXUS_DATABASE_URL: options.databaseUrl,
        SPIKE_NEXUS_KEEPER_PEERS: base.keeperUrls.join(','),
        SPIKE_NEXUS_SHAMIR_SHARES: String(n),
        SPIKE_NEXUS_SHAMIR_THRESHOLD: String(t),
        ...options.nexusEnv,
      },
      base.logDir,
      port,
      healthPort,
    );
  });
  const clients = new Set<NexusClient>();

  async function client(role: string, i: number): Promise<NexusClient> {
    const source = createX509Source({
      address: base.issuer.addressFor(role),
      timeoutMs: 10_000,
      logger: { info() {}, warn() {}, error() {} },
    });
    await source.ready();
    const mtls = createMtlsClient({
      source,
      authorizer: authorizeMatching(
        (id) => hasRole(id.toString(), 'nexus', ['spike.ist']),
        'a nexus ID',
      ),
      baseUrl: replicas[i]!.url,
      timeoutMs: 20_000,
    });
    const c: NexusClient = {
      mtls,
      async post(path, body) {
        const response = await mtls.request(path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = new TextDecoder().decode(response.body);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        return { status: response.status, json };
      },
      async close() {
        clients.delete(c);
        await mtls.close();
        await source.close();
      },
    };
    clients.add(c);
    return c;
  }

  return {
    base,
    replicas,
    apiUrls: replicas.map((r) => r.url).join(','),
    client,
    async waitAllReady(timeoutMs = 60_000) {
      await Promise.all(replicas.map((r) => r.waitReady(timeoutMs)));
    },
    async close() {
      for (const c of [...clients]) await c.close().catch(() => undefined);
      await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
      await base.close();
    },
  };
}

/** The current generation each Keeper holds (read with the Nexus SVID); `null` for none. */
export async function keeperGenerations(ha: HaCluster): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (let i = 1; i <= ha.base.keepers.length; i++) {
    const client = await ha.base.keeperClient(i);
    try {
      const answer = await client.post('/v1/store/shard', {});
      out.push(
        answer.status === 200 ? (answer.json.shards as ShardEnvelope[])[0]!.generation : null,
      );
    } catch {
      out.push(null); // a Keeper still starting
    } finally {
      await client.close();
    }
  }
  return out;
}

/** Waits until every Keeper holds the same current generation; returns it. */
export async function oneGeneration(ha: HaCluster, timeoutMs = 30_000): Promise<string> {
  let gens: (string | null)[] = [];
  await ha.base.waitUntil(
    async () => {
      gens = await keeperGenerations(ha);
      return gens[0] !== null && gens.every((g) => g === gens[0]);
    },
    timeoutMs,
    'every keeper holding one generation',
  );
  return gens[0]!;
}
