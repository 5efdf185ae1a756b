/**
 * `bun run keeper`: the Keeper process (spike-api.md §9 "Keeper routes", §10, §12; ARCHITECTURE.md
 * "The flows that matter").
 *
 * It needs no configuration beyond the Workload API: it fetches its X.509-SVID from
 * `SPIFFE_ENDPOINT_SOCKET`, checks that its own ID has the keeper role (fatal otherwise), and
 * serves the Keeper app over mTLS on `SPIKE_KEEPER_TLS_PORT` (`:8443`), accepting connections
 * from nexus and bootstrap IDs only (spike-api.md §2). Optional: `SPIKE_TRUST_ROOT_{NEXUS,
 * BOOTSTRAP,KEEPER}` (default `spike.ist`), `SPIKE_SYSTEM_LOG_LEVEL` (default WARN),
 * `SPIKE_SPIFFE_SOURCE_TIMEOUT` (30s), `SPIKE_KEEPER_HEALTH_PORT` (plain-HTTP `/health` and
 * `/ready`, off when unset).
 *
 * The shard lives in this process's memory only; SIGTERM and SIGINT zero it, close the listeners
 * and exit 0. Fatal start-up problems print one JSON log line and exit 1.
 */
import { parseGoDuration } from '../core/duration.ts';
import { DEFAULT_LOG_LEVEL, type Logger, parseLogLevel } from '../core/log.ts';
import { authorizeMatching } from '../core/spiffe/authorizer.ts';
import { hasRole, parseTrustRoots } from '../core/spike/roles.ts';
import { describeError } from '../runtime/describe-error.ts';
import type { HealthServer } from '../runtime/health.ts';
import {
  createStdoutLogger,
  exitOnStopSignal,
  FatalError,
  listenOrFatal,
  logSvidRotations,
  ownIdWithRole,
  workloadApiLogger,
} from '../runtime/startup.ts';
import { createMtlsServer } from '../runtime/tls/server.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { createKeeperApp } from './app.ts';

const DEFAULT_TLS_PORT = ':8443';
const DEFAULT_SOURCE_TIMEOUT_MS = 30_000;

/**
 * A Go-style listen address: `:8443`, `8443`, `127.0.0.1:8443` or `[::1]:8443`. An empty host
 * means every interface.
 */
function parseListenAddress(name: string, value: string): { host?: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?([0-9]{1,5})$/.exec(value.trim());
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || port > 65535) {
    throw new FatalError(`${name} must be a port or host:port (e.g. :8443)`);
  }
  const host = m[1]?.replace(/^\[(.*)\]$/, '$1');
  return host === undefined || host === '' ? { port } : { host, port };
}

/** `SPIKE_SPIFFE_SOURCE_TIMEOUT`: invalid or ≤ 0 falls back to the default (spike-api.md §10). */
function sourceTimeoutMs(value: string | undefined, log: Logger): number {
  if (value === undefined || value === '') return DEFAULT_SOURCE_TIMEOUT_MS;
  try {
    const ms = parseGoDuration(value);
    if (ms > 0) return ms;
  } catch {
    // fall through to the default
  }
  log.warn('SPIKE_SPIFFE_SOURCE_TIMEOUT is invalid; using 30s');
  return DEFAULT_SOURCE_TIMEOUT_MS;
}

function trustRoots(name: string, value: string | undefined): string[] {
  try {
    return parseTrustRoots(value);
  } catch {
    throw new FatalError(`${name} must be a comma-separated list of trust domain names`);
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const rawLevel = env.SPIKE_SYSTEM_LOG_LEVEL;
  const level = rawLevel ? parseLogLevel(rawLevel) : DEFAULT_LOG_LEVEL;
  const log = createStdoutLogger('keeper', level ?? DEFAULT_LOG_LEVEL);
  if (level === undefined) log.warn('SPIKE_SYSTEM_LOG_LEVEL is invalid; using WARN');

  let source: ReturnType<typeof createX509Source> | undefined;
  try {
    const roots = {
      nexus: trustRoots('SPIKE_TRUST_ROOT_NEXUS', env.SPIKE_TRUST_ROOT_NEXUS),
      bootstrap: trustRoots('SPIKE_TRUST_ROOT_BOOTSTRAP', env.SPIKE_TRUST_ROOT_BOOTSTRAP),
      keeper: trustRoots('SPIKE_TRUST_ROOT_KEEPER', env.SPIKE_TRUST_ROOT_KEEPER),
    };
    const tls = parseListenAddress(
      'SPIKE_KEEPER_TLS_PORT',
      env.SPIKE_KEEPER_TLS_PORT || DEFAULT_TLS_PORT,
    );
    const healthValue = env.SPIKE_KEEPER_HEALTH_PORT;
    const health = healthValue
      ? parseListenAddress('SPIKE_KEEPER_HEALTH_PORT', healthValue)
      : undefined;

    source = createX509Source({
      timeoutMs: sourceTimeoutMs(env.SPIKE_SPIFFE_SOURCE_TIMEOUT, log),
      logger: workloadApiLogger(log),
    });
    const ownId = await ownIdWithRole(source, 'keeper', roots.keeper);
    logSvidRotations(source, log);

    const callerAllowed = (id: string) =>
      hasRole(id, 'nexus', roots.nexus) || hasRole(id, 'bootstrap', roots.bootstrap);
    let peerOf: (request: Request) => string | undefined = () => undefined;
    const app = createKeeperApp({
      peerOf: (request) => peerOf(request),
      trustRoots: { nexus: roots.nexus, bootstrap: roots.bootstrap },
      log,
    });
    const server = createMtlsServer({
      source,
      authorizer: authorizeMatching(
        (id) => callerAllowed(id.toString()),
        'a nexus or bootstrap ID',
      ),
      handler: (request) => app.handle(request),
      onError: (error) => log.warn('transport error', { error: describeError(error) }),
    });
    peerOf = (request) => server.peerOf(request);

    let healthServer: HealthServer | undefined;
    exitOnStopSignal((signal) => {
      app.wipe();
      log.info('stopping; shards wiped', { signal });
      return Promise.allSettled([
        server.close(),
        source?.close() ?? Promise.resolve(),
        healthServer?.close() ?? Promise.resolve(),
      ]);
    });

    const bound = await listenOrFatal(server.listen(tls.port, tls.host), 'SPIKE_KEEPER_TLS_PORT');
    if (health !== undefined) {
      // Loaded only when asked for: `node:http` costs the Keeper about 1.3 MB of resident memory.
      const { startHealthServer } = await import('../runtime/health.ts');
      healthServer = await listenOrFatal(
        startHealthServer((request) => app.handle(request), health),
        'SPIKE_KEEPER_HEALTH_PORT',
      );
    }
    log.info('keeper ready for shards', {
      id: ownId,
      port: bound.port,
      healthPort: healthServer?.port ?? null,
    });
  } catch (error) {
    const message =
      error instanceof FatalError ? error.message : `start-up failed (${describeError(error)})`;
    log.error(message, { fatal: true });
    await source?.close().catch(() => undefined);
    process.exit(1);
  }
}

await main();
