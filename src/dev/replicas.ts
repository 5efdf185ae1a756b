/**
 * The Nexus processes of `bun run dev` (src/dev/up.ts): one on SQLite, or with `--postgres`
 * `--replicas n` of them on consecutive ports over the development PostgreSQL cluster
 * (./postgres.ts), sharing the Keepers (docs/deployment.md "Topology"). The first is named
 * `nexus`, the others `nexus-2` … `nexus-n` (their logs are `logs/<name>.log`).
 */
import { join } from 'node:path';
import { createClient } from '../sdk/client.ts';
import type { DevIssuer } from './issuer.ts';
import { HOST, type Options } from './options.ts';
import { note, sleep } from './output.ts';
import { shown, tail } from './state-files.ts';
import type { Child, Supervisor } from './supervisor.ts';

const THRESHOLD = 2;
const REPLICA_READY_TIMEOUT_MS = 60_000;

/** What starting the replicas needs from the run. */
export interface NexusLaunch {
  readonly options: Options;
  readonly dir: string;
  readonly logDir: string;
  readonly hadData: boolean;
  readonly nexusCommand: string[];
  readonly issuer: DevIssuer;
  readonly supervisor: Supervisor;
  /** The development PostgreSQL cluster (`--postgres`); SQLite in `dir` otherwise. */
  readonly databaseUrl: string | undefined;
}

/** The replicas' ports: the Nexus port and the ones after it. */
export function replicaPorts(options: Options): number[] {
  return Array.from({ length: options.replicas }, (_, i) => options.nexusPort + i);
}

/** `https://127.0.0.1:<port>` of every replica, in order. */
export function replicaUrls(options: Options): string[] {
  return replicaPorts(options).map((port) => `https://${HOST}:${port}`);
}

/** Spawns every replica (not waiting for them); the first child is `nexus`. */
export function startNexusReplicas(ctx: NexusLaunch): Child[] {
  const { options } = ctx;
  const store =
    ctx.databaseUrl === undefined
      ? { SPIKE_NEXUS_BACKEND_STORE: 'sqlite', SPIKE_NEXUS_DATA_DIR: ctx.dir }
      : { SPIKE_NEXUS_BACKEND_STORE: 'postgres', SPIKE_NEXUS_DATABASE_URL: ctx.databaseUrl };
  const children = replicaPorts(options).map((port, i) => {
    const name = i === 0 ? 'nexus' : `nexus-${i + 1}`;
    return ctx.supervisor.spawn(name, ctx.nexusCommand, port, {
      ...process.env,
      SPIKE_SYSTEM_LOG_LEVEL: process.env.SPIKE_SYSTEM_LOG_LEVEL || 'INFO',
      SPIFFE_ENDPOINT_SOCKET: ctx.issuer.addressFor('nexus'),
      SPIKE_NEXUS_TLS_PORT: `${HOST}:${port}`,
      ...store,
      SPIKE_NEXUS_KEEPER_PEERS: options.keeperPorts.map((p) => `https://${HOST}:${p}`).join(','),
      SPIKE_NEXUS_SHAMIR_SHARES: String(options.keeperPorts.length),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: String(THRESHOLD),
      SPIKE_NEXUS_AUDIT_FILE: join(ctx.logDir, `${name}-audit.log`),
      SPIKE_NEXUS_VAULT_API: 'true',
      ...(options.jwtAudience === undefined
        ? {}
        : { SPIKE_NEXUS_JWT_AUDIENCE: options.jwtAudience }),
    });
  });
  const where =
    ctx.databaseUrl === undefined
      ? shown(join(ctx.dir, 'data'))
      : `the development PostgreSQL cluster (${shown(join(ctx.dir, 'postgres'))})`;
  const ports = replicaPorts(options).join(', ');
  const what =
    options.replicas === 1
      ? `nexus starting on ${HOST}:${ports}`
      : `${options.replicas} nexus replicas starting on ${HOST}:${ports}`;
  note(
    ctx.hadData
      ? `${what} with the existing data in ${where}`
      : `${what} (first boot: new root key, split across the Keepers; data in ${where})`,
  );
  return children;
}

/** Waits until every replica after the first holds the root key too (the first is waited for). */
export async function waitForOtherReplicas(
  ctx: NexusLaunch,
  children: readonly Child[],
): Promise<void> {
  const urls = replicaUrls(ctx.options);
  for (let i = 1; i < children.length; i++) {
    const child = children[i]!;
    const client = await createClient({
      socket: ctx.issuer.addressFor('pilot'),
      apiUrl: urls[i]!,
      retry: false,
      timeoutMs: 5000,
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    });
    const started = Date.now();
    try {
      while (!(await client.ready().catch(() => false))) {
        ctx.supervisor.failIfExited();
        if (Date.now() - started > REPLICA_READY_TIMEOUT_MS) {
          throw new Error(`${child.name} did not become ready:\n${tail(child.log)}`);
        }
        await sleep(200);
      }
    } finally {
      await client.close().catch(() => undefined);
    }
    note(`${child.name} is ready on ${urls[i]} (recovered the root key from the Keepers)`);
  }
}
