/**
 * `bun run nexus`: the Nexus process (spec/spike-api.md §2, §9, §10, §12; ARCHITECTURE.md "The
 * flows that matter").
 *
 * Start-up: read the configuration (src/nexus/config.ts), get the X.509-SVID from the Workload
 * API, check that it has the nexus role, open the store, build the app, serve it over mTLS to any
 * peer whose chain verifies (Nexus accepts federation; routes authorise), and acquire the root
 * key: with SQLite, through the Keeper lifecycle (src/nexus/lifecycle.ts: first boot or recovery
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
 * key-check value is stored (spike-api.md §9).
 */
import { chmodSync, closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import http from 'node:http';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { authorizeAny } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole } from '../core/spike/roles.ts';
import { createMtlsServer, type MtlsServer } from '../runtime/tls/server.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { createNexusApp } from './app.ts';
import { type NexusConfig, parseNexusConfig } from './config.ts';
import { createKeeperClient } from './keeper-client.ts';
import { createKeyLifecycle, type KeyLifecycle } from './lifecycle.ts';
import { createStaticRootKeyProvider, MutableRootKeyProvider } from './root-key.ts';
import { type NexusStore, openStore, readStoreEnv } from './store/index.ts';

const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-store, no-cache, must-revalidate, private',
  Pragma: 'no-cache',
  Expires: '0',
} as const;

/** A start-up failure: its message is the one line printed. */
class FatalError extends Error {}

/** Error description for logs: codes and names only, no free text that could carry data. */
function describe(error: unknown): string {
  if (isSpikeError(error)) return error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  return error instanceof Error ? error.name : 'unknown error';
}

/** The audit sink (spike-api.md §12): stderr, or lines appended to a file (mode 0600). */
function openAudit(file: string | undefined): { write: (line: string) => void; close: () => void } {
  if (file === undefined) {
    return { write: (line) => process.stderr.write(`${line}\n`), close: () => {} };
  }
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch (error) {
    throw new FatalError(`cannot open SPIKE_NEXUS_AUDIT_FILE (${describe(error)})`);
  }
  return {
    write: (line) => {
      writeSync(fd, `${line}\n`);
    },
    close: () => closeSync(fd),
  };
}

/** Plain-HTTP `/health` and `/ready` (spike-api.md §12), answered by the Nexus app itself. */
function createHealthServer(handle: (request: Request) => Promise<Response>): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    req.resume();
    if (req.method !== 'GET' || (path !== '/health' && path !== '/ready')) {
      res.writeHead(400, JSON_HEADERS).end('{"err":"api_bad_request"}');
      return;
    }
    handle(new Request(`http://localhost${path}`))
      .then(async (response) => {
        res
          .writeHead(response.status, Object.fromEntries(response.headers))
          .end(await response.text());
      })
      .catch(() => {
        res.writeHead(500, JSON_HEADERS).end('{"err":"api_internal_error"}');
      });
  });
}

function listenHealth(
  server: http.Server,
  address: NonNullable<NexusConfig['health']>,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? bound.port : address.port);
    });
  });
}

function fatal(message: string): never {
  process.stderr.write(`spike nexus: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: NexusConfig;
  try {
    config = parseNexusConfig(process.env);
  } catch (error) {
    if (isSpikeError(error)) fatal(`invalid configuration: ${error.message}`);
    fatal(`invalid configuration (${describe(error)})`);
  }
  const log: Logger = createLogger({
    level: config.logLevel,
    component: 'nexus',
    sink: (line) => process.stdout.write(`${line}\n`),
  });
  for (const warning of config.warnings) log.warn(warning);
  if (config.backend === 'memory') {
    log.warn('SPIKE_NEXUS_BACKEND_STORE=memory: development only; secrets vanish on exit');
  }

  let source: X509Source | undefined;
  let store: NexusStore | undefined;
  let server: MtlsServer | undefined;
  let healthServer: http.Server | undefined;
  let lifecycle: KeyLifecycle | undefined;
  let audit: ReturnType<typeof openAudit> | undefined;

  const closeAll = async () => {
    await lifecycle?.stop().catch(() => undefined);
    if (healthServer !== undefined) {
      const h = healthServer;
      h.closeAllConnections();
      await new Promise<void>((resolve) => h.close(() => resolve()));
    }
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
    audit = openAudit(config.auditFile);
    source = createX509Source({
      ...(config.spiffeEndpointSocket === undefined
        ? {}
        : { address: config.spiffeEndpointSocket }),
      timeoutMs: config.spiffeSourceTimeoutMs,
      logger: {
        debug: (m) => log.debug(m, { source: 'workload-api' }),
        info: (m) => log.info(m, { source: 'workload-api' }),
        warn: (m) => log.warn(m, { source: 'workload-api' }),
        error: (m) => log.error(m, { source: 'workload-api' }),
      },
    });
    let ownId: string;
    try {
      ownId = (await source.ready()).svids[0]!.id;
    } catch (error) {
      throw new FatalError(`no X.509-SVID from the Workload API (${describe(error)})`);
    }
    if (!hasRole(ownId, 'nexus', config.trustRoots.nexus)) {
      throw new FatalError(
        `own SPIFFE ID ${ownId} does not have the nexus role (SPIKE_TRUST_ROOT_NEXUS)`,
      );
    }

    // The store. `lite` has no database and is served by the memory backend's (unused) tables.
    if (config.backend === 'sqlite') {
      const dir = config.dataDir!;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        chmodSync(dir, 0o700);
      } catch (error) {
        throw new FatalError(`cannot create the data directory ${dir} (${describe(error)})`);
      }
      try {
        const db = readStoreEnv(process.env);
        store = await openStore({
          backend: 'sqlite',
          dataDir: dir,
          maxVersions: config.maxSecretVersions,
          journalMode: db.journalMode,
          busyTimeoutMs: db.busyTimeoutMs,
          skipSchemaCreation: db.skipSchemaCreation,
        });
      } catch (error) {
        throw new FatalError(`cannot open the database in ${dir} (${describe(error)})`);
      }
      log.info('database opened', { file: store.file ?? null });
    } else {
      store = await openStore({ backend: 'memory', maxVersions: config.maxSecretVersions });
    }

    // The root key: a random one for memory; the Keeper lifecycle otherwise.
    let keys: MutableRootKeyProvider | Awaited<ReturnType<typeof createStaticRootKeyProvider>>;
    if (config.backend === 'memory') {
      keys = await createStaticRootKeyProvider();
    } else {
      const mutable = new MutableRootKeyProvider();
      keys = mutable;
      const s = source;
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
      lifecycle = createKeyLifecycle({
        store: kcvStore,
        keys: mutable,
        keepers: config.keeperPeers.map((url, i) =>
          createKeeperClient({
            source: s,
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
      // Start acquiring the key while the listener comes up: it only needs the SVID.
      lifecycle.start();
    }

    const auditSink = audit;
    let peerOf: (request: Request) => string | undefined = () => undefined;
    const app = createNexusApp({
      secrets: store.secrets(keys),
      policies: store.policies(keys),
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
    const mtls = createMtlsServer({
      source,
      // Any peer whose chain verifies against its trust domain's bundle (federation); the routes
      // authorise by role and policy (spike-api.md §2).
      authorizer: authorizeAny(),
      handler: (request) => app.handle(request),
      timeouts: {
        headerMs: config.readHeaderTimeoutMs,
        requestMs: config.requestTimeoutMs,
        idleMs: config.idleTimeoutMs,
      },
      onError: (error) => log.warn('transport error', { error: describe(error) }),
    });
    server = mtls;
    peerOf = (request) => mtls.peerOf(request);

    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      // Never hang on a peer that will not let go.
      const deadline = setTimeout(() => process.exit(0), 5000);
      deadline.unref();
      void closeAll().then(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    const bound = await mtls.listen(config.tls.port, config.tls.host).catch((error: unknown) => {
      throw new FatalError(`cannot listen on SPIKE_NEXUS_TLS_PORT (${describe(error)})`);
    });
    let healthPort: number | null = null;
    if (config.health !== undefined) {
      const h = createHealthServer((request) => app.handle(request));
      healthPort = await listenHealth(h, config.health).catch((error: unknown) => {
        throw new FatalError(`cannot listen on SPIKE_NEXUS_HEALTH_PORT (${describe(error)})`);
      });
      healthServer = h;
    }
    log.info('nexus listening', {
      id: ownId,
      backend: config.backend,
      port: bound.port,
      healthPort,
    });
  } catch (error) {
    const message =
      error instanceof FatalError
        ? error.message
        : error instanceof SpikeError
          ? `start-up failed (${error.code}: ${error.message})`
          : `start-up failed (${describe(error)})`;
    await closeAll().catch(() => undefined);
    fatal(message);
  }
}

await main();
