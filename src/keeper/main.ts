/**
 * `bun run keeper`: the Keeper process (docs/spike-api.md §9 "Keeper routes", §10, §12; docs/architecture.md
 * "The flows that matter").
 *
 * It needs no configuration beyond the Workload API: it fetches its X.509-SVID from
 * `SPIFFE_ENDPOINT_SOCKET`, checks that its own ID has the keeper role (fatal otherwise), and
 * serves the Keeper app over mTLS on `SPIKE_KEEPER_TLS_PORT` (`:8443`), accepting connections
 * from nexus and bootstrap IDs only (docs/spike-api.md §2). Optional: `SPIKE_TRUST_ROOT_{NEXUS,
 * BOOTSTRAP,KEEPER}` (default `spike.ist`), `SPIKE_SYSTEM_LOG_LEVEL` (default WARN),
 * `SPIKE_SPIFFE_SOURCE_TIMEOUT` (30s), `SPIKE_KEEPER_HEALTH_PORT` (plain-HTTP `/health` and
 * `/ready`, off when unset), all parsed by ./config.ts.
 *
 * The shard lives in this process's memory only; SIGTERM and SIGINT zero it, close the listeners
 * and exit 0. Fatal start-up problems (an invalid variable included) print one JSON log line and
 * exit 1.
 */
import { DEFAULT_LOG_LEVEL } from '../core/log.ts';
import { authorizeMatching } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole } from '../core/spike/roles.ts';
import { describeError } from '../runtime/describe-error.ts';
import {
  createStdoutLogger,
  fatalMessage,
  serveUntilStopped,
  startOwnIdentity,
} from '../runtime/startup.ts';
import { createMtlsServer } from '../runtime/tls/server.ts';
import { createKeeperApp } from './app.ts';
import { type KeeperConfig, parseKeeperConfig } from './config.ts';

async function main(): Promise<void> {
  let config: KeeperConfig;
  try {
    config = parseKeeperConfig(process.env);
  } catch (error) {
    createStdoutLogger('keeper', DEFAULT_LOG_LEVEL).error(
      `invalid configuration: ${fatalMessage(error)}`,
      { fatal: true },
    );
    process.exit(1);
  }
  const log = createStdoutLogger('keeper', config.logLevel);
  for (const warning of config.warnings) log.warn(warning);

  let source: X509Source | undefined;
  try {
    const { tls, health, trustRoots: roots } = config;
    const identity = startOwnIdentity(
      'keeper',
      roots.keeper,
      { timeoutMs: config.spiffeSourceTimeoutMs },
      log,
    );
    source = identity.source;
    const ownId = await identity.ownId;

    const callerAllowed = (id: string) =>
      hasRole(id, 'nexus', roots.nexus, config.roleMatch) ||
      hasRole(id, 'bootstrap', roots.bootstrap, config.roleMatch);
    let peerOf: (request: Request) => string | undefined = () => undefined;
    const app = createKeeperApp({
      peerOf: (request) => peerOf(request),
      trustRoots: { nexus: roots.nexus, bootstrap: roots.bootstrap },
      roleMatch: config.roleMatch,
      log,
    });
    const server = createMtlsServer({
      source,
      authorizer: authorizeMatching(
        (id) => callerAllowed(id.toString()),
        'a nexus or bootstrap ID',
      ),
      handler: (request) => app.handle(request),
      limits: config.serverLimits,
      onError: (error) => log.warn('transport error', { error: describeError(error) }),
    });
    peerOf = (request) => server.peerOf(request);

    const ports = await serveUntilStopped({
      component: 'keeper',
      server,
      handler: (request) => app.handle(request),
      tls,
      health,
      stop: (signal) => {
        app.wipe();
        log.info('stopping; shards wiped', { signal });
        return Promise.allSettled([server.close(), source?.close()]);
      },
    });
    log.info('keeper ready for shards', {
      id: ownId,
      port: ports.port,
      healthPort: ports.healthPort,
    });
  } catch (error) {
    log.error(fatalMessage(error), { fatal: true });
    await source?.close().catch(() => undefined);
    process.exit(1);
  }
}

await main();
