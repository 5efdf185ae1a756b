/**
 * `bun run nexus`: the Nexus process (docs/spike-api.md §2, §9, §10, §12; docs/architecture.md "The
 * flows that matter").
 *
 * Start-up: read the configuration (src/nexus/config.ts), get the X.509-SVID from the Workload
 * API (while the serving modules load, see `loadServing`), check that it has the nexus role,
 * open the store, build the app, serve it over mTLS to any peer whose chain verifies (Nexus
 * accepts federation; routes authorise), and acquire the root key: with SQLite, through the
 * Keeper lifecycle (src/nexus/root-key/: first boot or recovery from Keepers; until then every
 * route answers `503 state_not_ready`); with `memory`, a random key per process (development
 * only, no Keepers).
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
import type { PolicyEngine } from '../core/policy/engine.ts';
import type { RootKeyProvider } from '../core/ports.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { describeError } from '../runtime/describe-error.ts';
import {
  createStdoutLogger,
  fatalMessage,
  serveUntilStopped,
  startOwnIdentity,
  workloadApiLogger,
} from '../runtime/startup.ts';
import type { MtlsServer } from '../runtime/tls/server.ts';
import { type AuditSink, openAuditSink } from './audit-sink.ts';
import { type NexusConfig, parseNexusConfig } from './config.ts';
import type { JwtAuth } from './jwt-auth.ts';
import type { KeyLifecycle } from './root-key/lifecycle.ts';
import { routeRequests } from './route-requests.ts';
import type { NexusBackup } from './routes/backup.ts';
import type { NexusStore } from './store/index.ts';
import type { VaultApp } from './vault/app.ts';
import { readVaultEnv } from './vault/config.ts';

/**
 * What serving needs, imported while the Workload API fetch is in flight (issue 12: loading the
 * modules is half of start → ready). Statically imported above is only what reads the
 * configuration and starts that fetch; the Keeper lifecycle, the Vault app and the health server
 * are imported only by the configurations that use them.
 */
function loadServing() {
  return Promise.all([
    import('./app.ts'),
    import('./store/index.ts'),
    import('./root-key/providers.ts'),
    import('../core/policy/engine.ts'),
    import('../core/spiffe/authorizer.ts'),
    import('../runtime/tls/server.ts'),
    import('./watch/stream.ts'),
  ]).then(([app, store, providers, engine, authorizer, tls, watch]) => ({
    ...watch,
    ...app,
    ...store,
    ...providers,
    ...engine,
    ...authorizer,
    ...tls,
  }));
}
type Serving = Awaited<ReturnType<typeof loadServing>>;

function fatal(message: string): never {
  process.stderr.write(`spike nexus: ${message}\n`);
  process.exit(1);
}

/** The store. `lite` has no database and is served by the memory backend's (unused) tables. */
async function openNexusStore(
  { openStore }: Serving,
  config: NexusConfig,
  log: Logger,
): Promise<NexusStore> {
  if (config.backend === 'postgres') {
    try {
      const store = await openStore({
        backend: 'postgres',
        databaseUrl: config.databaseUrl!,
        maxVersions: config.maxSecretVersions,
        watchRetentionMs: config.watchRetentionMs,
        skipSchemaCreation: config.dbSkipSchemaCreation,
      });
      log.info('database opened', { backend: 'postgres' });
      return store;
    } catch (error) {
      // Never the URL: it may carry a password.
      throw new SpikeError(
        'api_internal_error',
        `cannot open the PostgreSQL database (${describeError(error)})`,
      );
    }
  }
  if (config.backend !== 'sqlite') {
    return openStore({
      backend: 'memory',
      maxVersions: config.maxSecretVersions,
      watchRetentionMs: config.watchRetentionMs,
    });
  }
  const dir = config.dataDir!;
  const { makePrivateDir } = await import('../runtime/private-dir.ts');
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
      watchRetentionMs: config.watchRetentionMs,
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
  { createStaticRootKeyProvider, MutableRootKeyProvider }: Serving,
  config: NexusConfig,
  store: NexusStore,
  source: X509Source,
  log: Logger,
): Promise<{ keys: RootKeyProvider; lifecycle?: KeyLifecycle }> {
  if (config.backend === 'memory') return { keys: await createStaticRootKeyProvider() };
  const keys = new MutableRootKeyProvider();
  const [{ createKeyLifecycle }, { createKeeperClient }] = await Promise.all([
    import('./root-key/lifecycle.ts'),
    import('./keeper-client.ts'),
  ]);
  // `lite` keeps no key-check record, so it boots afresh on every start (see the report).
  let liteKcv: string | undefined;
  const kcvStore: Pick<NexusStore, 'getKcv' | 'setKcv'> =
    config.backend === 'sqlite' || config.backend === 'postgres'
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
    bootstrapLock: (fn) => store.withBootstrapLock(fn),
    ...(store.shardPusherLease === undefined ? {} : { shardPusherLease: store.shardPusherLease }),
    shares: config.shamirShares,
    threshold: config.shamirThreshold,
    updateIntervalMs: config.keeperUpdateIntervalMs,
    log,
  });
  lifecycle.start();
  return { keys, lifecycle };
}

/**
 * The Vault KV v2 API (docs/vault-kv2.md), when SPIKE_NEXUS_VAULT_API is on: same store, same
 * policies, its own audit lines.
 */
async function vaultAppOf(
  config: NexusConfig,
  store: NexusStore,
  keys: RootKeyProvider,
  policyEngine: PolicyEngine,
  auditSink: { write(line: string): void },
  log: Logger,
): Promise<VaultApp | undefined> {
  const vaultEnv = readVaultEnv(process.env);
  if (!vaultEnv.enabled) return undefined;
  const { createVaultApp } = await import('./vault/app.ts');
  return createVaultApp({
    kv: store.vault(keys),
    keys,
    initialized: () => store.getKcv() !== undefined,
    policyEngine,
    mount: vaultEnv.mount,
    maxBodyBytes: config.maxBodyBytes,
    audit: (line) => auditSink.write(line),
    logger: log,
  });
}

/**
 * JWT-SVID authentication (src/nexus/jwt-auth.ts, docs/spike-api.md §2.1) when
 * SPIKE_NEXUS_JWT_AUDIENCE is set: the JWT bundles streamed from the Workload API, ready before
 * Nexus serves. Its modules load only then.
 */
async function startJwtAuth(
  config: NexusConfig,
  log: Logger,
): Promise<{ auth: JwtAuth; close(): Promise<void> } | undefined> {
  if (config.jwtAudience === undefined) return undefined;
  const [{ createJwtBundleSource }, { createJwtAuth }] = await Promise.all([
    import('../runtime/workload/jwt-bundles.ts'),
    import('./jwt-auth.ts'),
  ]);
  const bundles = createJwtBundleSource({
    ...(config.spiffeEndpointSocket === undefined ? {} : { address: config.spiffeEndpointSocket }),
    timeoutMs: config.spiffeSourceTimeoutMs,
    logger: workloadApiLogger(log),
  });
  await bundles.ready();
  const auth = createJwtAuth({
    audience: config.jwtAudience,
    maxTtlMs: config.jwtMaxTtlMs,
    bundles: () => bundles.current(),
    onRefused: (code) => log.info('JWT-SVID refused', { code }),
  });
  log.warn(
    'SPIKE_NEXUS_JWT_AUDIENCE is set: JWT-SVID bearer tokens are accepted without a client certificate',
  );
  return { auth, close: () => bundles.close() };
}

/** Export, import and snapshot of the store (docs/backup.md). */
function backupOf(store: NexusStore, keys: RootKeyProvider): NexusBackup {
  return { ...store.backup(keys), snapshot: () => store.snapshot() };
}

/** Watch streams (docs/spike-api.md "Watch"); none for `lite`. */
function startWatch(
  { WatchService }: Serving,
  config: NexusConfig,
  store: NexusStore,
  policyEngine: PolicyEngine,
) {
  // A policy event in the change log (any replica) drops the cache before watchers filter it.
  store.changes.subscribe((events) => {
    if (events.some((e) => e.kind === 'policy')) policyEngine.invalidate();
  });
  if (config.backend === 'lite') return undefined;
  return new WatchService({
    feed: store.changes,
    heartbeatMs: config.watchHeartbeatMs,
    maxStreams: config.watchMaxStreams,
  });
}

/** The configuration, or exit with one line naming the bad variable; warnings are logged. */
function loadConfig(): { config: NexusConfig; log: Logger } {
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
  return { config, log };
}

/** The transport's timeouts, limits and error log, from the configuration. */
function transportSettings(config: NexusConfig, log: Logger) {
  return {
    timeouts: {
      headerMs: config.readHeaderTimeoutMs,
      requestMs: config.requestTimeoutMs,
      idleMs: config.idleTimeoutMs,
    },
    limits: config.serverLimits,
    onError: (error: unknown) => log.warn('transport error', { error: describeError(error) }),
  };
}

async function main(): Promise<void> {
  const { config, log } = loadConfig();

  let source: X509Source | undefined;
  let store: NexusStore | undefined;
  let server: MtlsServer | undefined;
  let lifecycle: KeyLifecycle | undefined;
  let audit: AuditSink | undefined;
  let jwtBundles: { close(): Promise<void> } | undefined;
  let watchService: { close(): void } | undefined;

  const closeAll = async () => {
    await lifecycle?.stop().catch(() => undefined);
    watchService?.close();
    await server?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
    await jwtBundles?.close().catch(() => undefined);
    try {
      audit?.close();
    } catch {
      // nothing left to report it to
    }
  };

  try {
    audit = openAuditSink(config.auditFile);
    const identity = startOwnIdentity(
      'nexus',
      config.trustRoots.nexus,
      { address: config.spiffeEndpointSocket, timeoutMs: config.spiffeSourceTimeoutMs },
      log,
    );
    source = identity.source;
    // The SVID is fetched while the modules that serve are loaded.
    const [ownId, serving] = await Promise.all([identity.ownId, loadServing()]);
    const { createNexusApp, createPolicyEngine, authorizeAny, createMtlsServer } = serving;

    store = await openNexusStore(serving, config, log);
    // The root key: a random one for memory; the Keeper lifecycle otherwise.
    const custody = await startKeyCustody(serving, config, store, source, log);
    const { keys } = custody;
    lifecycle = custody.lifecycle;
    const auditSink = audit;
    // The transport's view of each request (assigned once it exists, before any request).
    let mtlsPeerOf: (request: Request) => string | undefined = () => undefined;
    let rawPathOf: (request: Request) => string | undefined = () => undefined;
    let methodOf: (request: Request) => string | undefined = () => undefined;
    const jwt = await startJwtAuth(config, log);
    jwtBundles = jwt;
    const jwtAuth = jwt?.auth;
    // A client certificate wins; a bearer token is only looked at without one.
    const peerOf = (request: Request) => mtlsPeerOf(request) ?? jwtAuth?.peerOf(request);
    const policies = store.policies(keys);
    // One policy engine (one compiled cache, invalidated on write) for both APIs.
    const policyEngine = createPolicyEngine({ store: policies, trustRoots: config.trustRoots });
    // Replicas over one PostgreSQL database: a policy written at another replica drops this
    // replica's cache within one poll (src/nexus/store/postgres.ts).
    store.watchPolicies(() => policyEngine.invalidate());
    const watch = startWatch(serving, config, store, policyEngine);
    watchService = watch;
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
      rawPathOf: (request) => rawPathOf(request),
      ...(lifecycle === undefined ? {} : { operator: lifecycle.operator }),
      ...(config.backend === 'lite' ? {} : { backup: backupOf(store, keys) }),
      ...(watch === undefined ? {} : { watch }),
      logger: log,
    });
    const vault = await vaultAppOf(config, store, keys, policyEngine, auditSink, log);
    const mtls = createMtlsServer({
      source,
      // Any peer whose chain verifies against its trust domain's bundle (federation); the routes
      // authorise by role and policy (docs/spike-api.md §2).
      authorizer: authorizeAny(),
      ...(jwtAuth === undefined ? {} : { clientCertificate: 'optional' as const }),
      handler: routeRequests({
        app,
        vault,
        peerOf,
        methodOf: (r) => methodOf(r),
        jwtAuth,
        mtlsPeerOf: (r) => mtlsPeerOf(r),
      }),
      ...transportSettings(config, log),
    });
    server = mtls;
    mtlsPeerOf = (request) => mtls.peerOf(request);
    rawPathOf = (request) => mtls.rawPathOf(request);
    methodOf = (request) => mtls.methodOf(request);

    const ports = await serveUntilStopped({
      component: 'nexus',
      server: mtls,
      handler: (request) => app.handle(request),
      tls: config.tls,
      health: config.health,
      stop: (signal) => {
        log.info('stopping', { signal });
        return closeAll();
      },
    });
    log.info('nexus listening', { id: ownId, backend: config.backend, ...ports });
  } catch (error) {
    await closeAll().catch(() => undefined);
    fatal(fatalMessage(error));
  }
}

await main();
