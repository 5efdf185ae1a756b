/**
 * `bun run nexus`: the Nexus process (docs/spike-api.md §2, §9, §10, §12; docs/architecture.md "The
 * flows that matter").
 *
 * Start-up: read the configuration (src/nexus/config.ts), get the X.509-SVID from the Workload
 * API, check that it has the nexus role, open the store, build the app, serve it over mTLS to any
 * peer whose chain verifies (Nexus accepts federation; routes authorise), and acquire the root
 * key: with SQLite, through the Keeper lifecycle (src/nexus/root-key/: first boot or recovery
 * from Keepers; until then every route answers `503 state_not_ready`); with `memory`, a random key
 * per process (development only, no Keepers).
 *
 * Output: JSON log lines on stdout (`SPIKE_SYSTEM_LOG_LEVEL`), one audit line per request on
 * stderr or appended to `SPIKE_NEXUS_AUDIT_FILE`. A fatal start-up problem (invalid
 * configuration, no SVID, wrong role, unusable data directory or port) prints one line on stderr,
 * `spike nexus: <reason>`, and exits 1; no stack trace. SIGTERM and SIGINT stop the loops, zero
 * the share set, close listeners and the database, and exit 0.
 *
 * The root key and its shares never reach a log line, the audit trail or the disk: only the
 * key-check value is stored (docs/spike-api.md §9).
 */
import { SpikeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { createPolicyEngine } from '../core/policy/engine.ts';
import type { RootKeyProvider } from '../core/ports.ts';
import { authorizeAny } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { describeError } from '../runtime/describe-error.ts';
import { type HealthServer, startHealthServer } from '../runtime/health.ts';
import { makePrivateDir } from '../runtime/private-dir.ts';
import {
  createStdoutLogger,
  exitOnStopSignal,
  fatalMessage,
  listenOrFatal,
  logSvidRotations,
  ownIdWithRole,
  workloadApiLogger,
} from '../runtime/startup.ts';
import { createMtlsServer, type MtlsServer } from '../runtime/tls/server.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { createNexusApp } from './app.ts';
import { type AuditSink, openAuditSink } from './audit-sink.ts';
import { type NexusConfig, parseNexusConfig } from './config.ts';
import { createKeeperClient } from './keeper-client.ts';
import { createKeyLifecycle, type KeyLifecycle } from './root-key/lifecycle.ts';
import { createStaticRootKeyProvider, MutableRootKeyProvider } from './root-key/providers.ts';
import { type NexusStore, openStore } from './store/index.ts';
import { createVaultApp } from './vault/app.ts';
import { readVaultEnv } from './vault/config.ts';

function fatal(message: string): never {
  process.stderr.write(`spike nexus: ${message}\n`);
  process.exit(1);
}

/** The store. `lite` has no database and is served by the memory backend's (unused) tables. */
async function openNexusStore(config: NexusConfig, log: Logger): Promise<NexusStore> {
  if (config.backend !== 'sqlite') {
    return openStore({ backend: 'memory', maxVersions: config.maxSecretVersions });
  }
  const dir = config.dataDir!;
  try {
    makePrivateDir(dir);
  } catch (error) {
    throw new SpikeError(
      'config_invalid',
      `cannot create the data directory ${dir} (${describeError(error)})`,
    );
  }
  let store: NexusStore;
  try {
    store = await openStore({
      backend: 'sqlite',
      dataDir: dir,
      maxVersions: config.maxSecretVersions,
      journalMode: config.dbJournalMode,
      busyTimeoutMs: config.dbBusyTimeoutMs,
      skipSchemaCreation: config.dbSkipSchemaCreation,
    });
  } catch (error) {
    throw new SpikeError(
      'api_internal_error',
      `cannot open the database in ${dir} (${describeError(error)})`,
    );
  }
  log.info('database opened', { file: store.file ?? null });
  return store;
}

/**
 * The root key: a random one for memory; otherwise the Keeper lifecycle, started at once (it
 * only needs the SVID, so it acquires the key while the listener comes up).
 */
async function startKeyCustody(
  config: NexusConfig,
  store: NexusStore,
  source: X509Source,
  log: Logger,
): Promise<{ keys: RootKeyProvider; lifecycle?: KeyLifecycle }> {
  if (config.backend === 'memory') return { keys: await createStaticRootKeyProvider() };
  const keys = new MutableRootKeyProvider();
  // `lite` keeps no key-check record, so it boots afresh on every start (see the report).
  let liteKcv: string | undefined;
  const kcvStore: Pick<NexusStore, 'getKcv' | 'setKcv'> =
    config.backend === 'sqlite'
      ? store
      : {
          getKcv: () => liteKcv,
          setKcv: (kcv) => {
            liteKcv = kcv;
          },
        };
  const lifecycle = createKeyLifecycle({
    store: kcvStore,
    keys,
    keepers: config.keeperPeers.map((url, i) =>
      createKeeperClient({
        source,
        url,
        index: i + 1,
        keeperTrustRoots: config.trustRoots.keeper,
      }),
    ),
    shares: config.shamirShares,
    threshold: config.shamirThreshold,
    updateIntervalMs: config.keeperUpdateIntervalMs,
    log,
  });
  lifecycle.start();
  return { keys, lifecycle };
}

async function main(): Promise<void> {
  let config: NexusConfig;
  try {
    config = parseNexusConfig(process.env);
  } catch (error) {
    fatal(`invalid configuration: ${fatalMessage(error)}`);
  }
  const log: Logger = createStdoutLogger('nexus', config.logLevel);
  for (const warning of config.warnings) log.warn(warning);
  if (config.backend === 'memory') {
    log.warn('SPIKE_NEXUS_BACKEND_STORE=memory: development only; secrets vanish on exit');
  }

  let source: X509Source | undefined;
  let store: NexusStore | undefined;
  let server: MtlsServer | undefined;
  let healthServer: HealthServer | undefined;
  let lifecycle: KeyLifecycle | undefined;
  let audit: AuditSink | undefined;

  const closeAll = async () => {
    await lifecycle?.stop().catch(() => undefined);
    await healthServer?.close();
    await server?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
    try {
      audit?.close();
    } catch {
      // nothing left to report it to
    }
  };

  try {
    audit = openAuditSink(config.auditFile);
    source = createX509Source({
      ...(config.spiffeEndpointSocket === undefined
        ? {}
        : { address: config.spiffeEndpointSocket }),
      timeoutMs: config.spiffeSourceTimeoutMs,
      logger: workloadApiLogger(log),
    });
    const ownId = await ownIdWithRole(source, 'nexus', config.trustRoots.nexus);
    logSvidRotations(source, log);

    store = await openNexusStore(config, log);
    // The root key: a random one for memory; the Keeper lifecycle otherwise.
    const custody = await startKeyCustody(config, store, source, log);
    const { keys } = custody;
    lifecycle = custody.lifecycle;

    const auditSink = audit;
    let peerOf: (request: Request) => string | undefined = () => undefined;
    const policies = store.policies(keys);
    // One policy engine (one compiled cache, invalidated on write) for both APIs.
    const policyEngine = createPolicyEngine({ store: policies, trustRoots: config.trustRoots });
    const app = createNexusApp({
      secrets: store.secrets(keys),
      policies,
      policyEngine,
      keys,
      backend: config.backend,
      trustRoots: config.trustRoots,
      maxBodyBytes: config.maxBodyBytes,
      maxCipherBytes: config.maxCipherBytes,
      audit: (line) => auditSink.write(line),
      peerOf: (request) => peerOf(request),
      ...(lifecycle === undefined ? {} : { operator: lifecycle.operator }),
      logger: log,
    });
    // The Vault KV v2 API (docs/vault-kv2.md), when SPIKE_NEXUS_VAULT_API is on: same store,
    // same policies, its own audit lines.
    const vaultEnv = readVaultEnv(process.env);
    const openedStore = store;
    const vault = vaultEnv.enabled
      ? createVaultApp({
          kv: store.vault(keys),
          keys,
          initialized: () => openedStore.getKcv() !== undefined,
          policyEngine,
          mount: vaultEnv.mount,
          maxBodyBytes: config.maxBodyBytes,
          audit: (line) => auditSink.write(line),
          logger: log,
        })
      : undefined;
    const mtls = createMtlsServer({
      source,
      // Any peer whose chain verifies against its trust domain's bundle (federation); the routes
      // authorise by role and policy (docs/spike-api.md §2).
      authorizer: authorizeAny(),
      handler: (request) => {
        if (vault?.matches(pathOf(request))) {
          return vault.handle(request, peerOf(request));
        }
        return app.handle(request);
      },
      timeouts: {
        headerMs: config.readHeaderTimeoutMs,
        requestMs: config.requestTimeoutMs,
        idleMs: config.idleTimeoutMs,
      },
      onError: (error) => log.warn('transport error', { error: describeError(error) }),
    });
    server = mtls;
    peerOf = (request) => mtls.peerOf(request);

    exitOnStopSignal((signal) => {
      log.info('stopping', { signal });
      return closeAll();
    });

    const bound = await listenOrFatal(
      mtls.listen(config.tls.port, config.tls.host),
      'SPIKE_NEXUS_TLS_PORT',
    );
    if (config.health !== undefined) {
      healthServer = await listenOrFatal(
        startHealthServer((request) => app.handle(request), config.health),
        'SPIKE_NEXUS_HEALTH_PORT',
      );
    }
    log.info('nexus listening', {
      id: ownId,
      backend: config.backend,
      port: bound.port,
      healthPort: healthServer?.port ?? null,
    });
  } catch (error) {
    await closeAll().catch(() => undefined);
    fatal(fatalMessage(error));
  }
}

await main();

/** The path of a request URL (the transport always builds an absolute one). */
function pathOf(request: Request): string {
  const url = request.url;
  const start = url.indexOf('/', url.indexOf('//') + 2);
  if (start === -1) return '/';
  const end = url.indexOf('?', start);
  return end === -1 ? url.slice(start) : url.slice(start, end);
}
