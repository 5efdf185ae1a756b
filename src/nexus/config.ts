/**
 * Nexus configuration from environment variables (docs/spike-api.md §10, §12): the one parser of
 * every variable Nexus reads, the store's `SPIKE_NEXUS_DB_*` included.
 *
 * `parseNexusConfig(env)` turns the upstream variable names into one typed object; only the entry
 * point reads `process.env` and passes it in (docs/style.md rule 3). A value that cannot be used fails
 * with `SpikeError('config_invalid')` and a single line naming the variable and what it expects
 * (the value itself is not repeated; the rules are those of src/core/config.ts). Where the spec
 * prescribes a fallback instead, the fallback is taken and a warning is returned for the caller to
 * log:
 * - durations that are invalid or ≤ 0 fall back to their default (§10);
 * - an unknown `SPIKE_NEXUS_BACKEND_STORE` means `sqlite` (§10, as upstream);
 * - plain `SPIKE_TRUST_ROOT` is only reported.
 *
 * The data directory follows ./data-dir.ts (upstream rules: `<SPIKE_NEXUS_DATA_DIR>/data`, else
 * `$HOME/.spike/data`, else `.spike-$USER/data` under `$TMPDIR`), which also creates it with mode
 * 0700; so parsing a sqlite configuration touches the filesystem, and a refused
 * `SPIKE_NEXUS_DATA_DIR` becomes a warning, as upstream falls back rather than stopping.
 */
import {
  booleanVar,
  choiceVar,
  configInvalid,
  durationVar,
  type Env,
  integerVar,
  type ListenAddress,
  listenVar,
  logLevelVar,
  readVar,
  type ServerLimits,
  serverLimitsVar,
  trustRootVar,
} from '../core/config.ts';
import type { LogLevel } from '../core/log.ts';
import type { TrustRoots } from '../core/policy/engine.ts';
import type { NexusBackend } from './app.ts';
import { resolveDataDir } from './data-dir.ts';
import type { JournalMode } from './store/sqlite.ts';

/** Upper bound of `SPIKE_NEXUS_JWT_MAX_TTL` (docs/spike-api.md §2.1). */
const MAX_JWT_TTL_MS = 60 * 60 * 1000;

/** Journal modes that keep the database durable (`SPIKE_NEXUS_DB_JOURNAL_MODE`). */
const JOURNAL_MODES: readonly JournalMode[] = ['WAL', 'DELETE', 'TRUNCATE', 'PERSIST'];

/** The typed Nexus configuration (§10). Durations are in milliseconds. */
export interface NexusConfig {
  /** `SPIKE_NEXUS_TLS_PORT`, default `:8553`. */
  readonly tls: ListenAddress;
  /** `SPIKE_NEXUS_HEALTH_PORT`: plain-HTTP `/health` and `/ready` (§12); unset = off. */
  readonly health?: ListenAddress;
  /** `SPIKE_NEXUS_BACKEND_STORE`: `sqlite` (default), `memory`, `lite` or `postgres`. */
  readonly backend: NexusBackend;
  /** `SPIKE_NEXUS_DATABASE_URL` (libpq URL, TLS options passed through); only for postgres. */
  readonly databaseUrl?: string;
  /** The data directory, created (./data-dir.ts); only for the sqlite backend. */
  readonly dataDir?: string;
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`, default 10. */
  readonly maxSecretVersions: number;
  /** `SPIKE_NEXUS_DB_JOURNAL_MODE`: `WAL` (default), `DELETE`, `TRUNCATE` or `PERSIST`. */
  readonly dbJournalMode: JournalMode;
  /** `SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS`, default 5000. */
  readonly dbBusyTimeoutMs: number;
  /** `SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION`: check the schema instead of migrating; default false. */
  readonly dbSkipSchemaCreation: boolean;
  /** `SPIKE_TRUST_ROOT_{NEXUS,KEEPER,PILOT,BOOTSTRAP,LITE_WORKLOAD}`, default `spike.ist`. */
  readonly trustRoots: TrustRoots;
  /** `SPIKE_SYSTEM_LOG_LEVEL`, default WARN. */
  readonly logLevel: LogLevel;
  /** `SPIKE_HTTP_SERVER_MAX_BODY_BYTES`, default 1048576. */
  readonly maxBodyBytes: number;
  /** `SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE`, default 65536. */
  readonly maxCipherBytes: number;
  /** `SPIKE_NEXUS_AUDIT_FILE`; unset = audit lines on stderr. */
  readonly auditFile?: string;
  /** `SPIKE_NEXUS_KEEPER_PEERS` as origins (`https://host:port`), in index order; empty for memory. */
  readonly keeperPeers: readonly string[];
  /** `SPIKE_NEXUS_SHAMIR_SHARES`, default 3. */
  readonly shamirShares: number;
  /** `SPIKE_NEXUS_SHAMIR_THRESHOLD`, default 2. */
  readonly shamirThreshold: number;
  /** `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`, default 5m. */
  readonly keeperUpdateIntervalMs: number;
  /** `SPIKE_SPIFFE_SOURCE_TIMEOUT`, default 30s. */
  readonly spiffeSourceTimeoutMs: number;
  /** `SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT`, default 10s. */
  readonly readHeaderTimeoutMs: number;
  /** `SPIKE_HTTP_SERVER_REQUEST_TIMEOUT`, default 30s. */
  readonly requestTimeoutMs: number;
  /** `SPIKE_HTTP_SERVER_IDLE_TIMEOUT`, default 60s. */
  readonly idleTimeoutMs: number;
  /** `SPIKE_HTTP_SERVER_MAX_CONNECTIONS` and `_MAX_CONCURRENT_STREAMS`. */
  readonly serverLimits: ServerLimits;
  /** `SPIFFE_ENDPOINT_SOCKET` as given (parsed by the Workload API client); unset = its default. */
  readonly spiffeEndpointSocket?: string;
  /**
   * `SPIKE_NEXUS_JWT_AUDIENCE`: when set, JWT-SVID bearer tokens for this audience are accepted
   * from callers without a client certificate (src/nexus/jwt-auth.ts); unset = mTLS only.
   */
  readonly jwtAudience?: string;
  /** `SPIKE_NEXUS_JWT_MAX_TTL`: longest accepted JWT-SVID lifetime, default 5m, at most 1h. */
  readonly jwtMaxTtlMs: number;
  /** `SPIKE_NEXUS_WATCH_RETENTION`: how long change-log events are kept, default 24h. */
  readonly watchRetentionMs: number;
  /** `SPIKE_NEXUS_WATCH_HEARTBEAT`: comment line on every watch stream, default 15s. */
  readonly watchHeartbeatMs: number;
  /** `SPIKE_NEXUS_WATCH_MAX_STREAMS`: watch streams open at once, default 4096. */
  readonly watchMaxStreams: number;
  /** Fallbacks taken and ignored variables, one line each, for the caller to log. */
  readonly warnings: readonly string[];
}

/** Parses `SPIKE_NEXUS_KEEPER_PEERS` into origins (§10): https only, no duplicates, none empty. */
export function parseKeeperPeers(value: string | undefined): string[] {
  const variable = 'SPIKE_NEXUS_KEEPER_PEERS';
  if (value === undefined || value.trim() === '') {
    throw configInvalid(
      variable,
      'required: comma-separated https://host:port URLs of the Keepers',
    );
  }
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') throw configInvalid(variable, 'contains an empty entry');
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw configInvalid(variable, 'every entry must be an https://host:port URL');
    }
    if (
      url.protocol !== 'https:' ||
      url.hostname === '' ||
      url.username !== '' ||
      url.password !== '' ||
      (url.pathname !== '/' && url.pathname !== '') ||
      url.search !== '' ||
      url.hash !== ''
    ) {
      throw configInvalid(variable, 'every entry must be an https://host:port URL');
    }
    if (out.includes(url.origin)) throw configInvalid(variable, 'lists the same Keeper twice');
    out.push(url.origin);
  }
  return out;
}

function backendOf(env: Env, warnings: string[]): NexusBackend {
  const value = readVar(env, 'SPIKE_NEXUS_BACKEND_STORE')?.toLowerCase();
  if (value === undefined || value === 'sqlite') return 'sqlite';
  if (value === 'memory' || value === 'lite' || value === 'postgres') return value;
  warnings.push('SPIKE_NEXUS_BACKEND_STORE: unknown backend; using sqlite');
  return 'sqlite';
}

/**
 * Parses the Nexus environment (docs/spike-api.md §10).
 *
 * @param env usually `process.env`, passed in by the entry point (`HOME`, `TMPDIR` and `USER` are
 *   read from it for the data-directory fallbacks).
 * @throws SpikeError `config_invalid` with one line naming the variable.
 */
export function parseNexusConfig(env: Env): NexusConfig {
  const warnings: string[] = [];
  const backend = backendOf(env, warnings);

  const tls = listenVar(env, 'SPIKE_NEXUS_TLS_PORT', ':8553');
  const health = listenVar(env, 'SPIKE_NEXUS_HEALTH_PORT');
  const logLevel = logLevelVar(env);

  const pilot = trustRootVar(env, 'SPIKE_TRUST_ROOT_PILOT');
  const trustRoots: TrustRoots = {
    nexus: trustRootVar(env, 'SPIKE_TRUST_ROOT_NEXUS'),
    keeper: trustRootVar(env, 'SPIKE_TRUST_ROOT_KEEPER'),
    bootstrap: trustRootVar(env, 'SPIKE_TRUST_ROOT_BOOTSTRAP'),
    superuser: pilot,
    recover: pilot,
    restore: pilot,
    'lite-workload': trustRootVar(env, 'SPIKE_TRUST_ROOT_LITE_WORKLOAD'),
  };
  if (readVar(env, 'SPIKE_TRUST_ROOT') !== undefined) {
    warnings.push(
      'SPIKE_TRUST_ROOT is not used; set the role-specific SPIKE_TRUST_ROOT_* variables',
    );
  }

  const shamirShares = integerVar(env, 'SPIKE_NEXUS_SHAMIR_SHARES', 3, 2, 255);
  const shamirThreshold = integerVar(env, 'SPIKE_NEXUS_SHAMIR_THRESHOLD', 2, 2, 255);
  if (shamirThreshold > shamirShares) {
    throw configInvalid(
      'SPIKE_NEXUS_SHAMIR_THRESHOLD',
      'must not exceed SPIKE_NEXUS_SHAMIR_SHARES (2 <= threshold <= shares <= 255)',
    );
  }

  let keeperPeers: string[] = [];
  if (backend !== 'memory') {
    keeperPeers = parseKeeperPeers(env.SPIKE_NEXUS_KEEPER_PEERS);
    if (keeperPeers.length !== shamirShares) {
      throw configInvalid(
        'SPIKE_NEXUS_KEEPER_PEERS',
        `lists ${keeperPeers.length} Keepers but SPIKE_NEXUS_SHAMIR_SHARES is ${shamirShares}; they must be equal`,
      );
    }
  }

  let dataDir: string | undefined;
  if (backend === 'sqlite') {
    const resolved = resolveDataDir(env);
    dataDir = resolved.dir;
    if (resolved.rejected !== undefined) {
      warnings.push(
        `SPIKE_NEXUS_DATA_DIR: not usable (${resolved.rejected}); using ${resolved.dir}`,
      );
    }
  }
  let databaseUrl: string | undefined;
  if (backend === 'postgres') {
    databaseUrl = readVar(env, 'SPIKE_NEXUS_DATABASE_URL');
    let ok = false;
    try {
      const url = new URL(databaseUrl ?? '');
      ok = (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) {
      throw configInvalid(
        'SPIKE_NEXUS_DATABASE_URL',
        'required with SPIKE_NEXUS_BACKEND_STORE=postgres: a postgres://user:password@host:port/db URL',
      );
    }
  }
  const auditFile = readVar(env, 'SPIKE_NEXUS_AUDIT_FILE');
  const spiffeEndpointSocket = readVar(env, 'SPIFFE_ENDPOINT_SOCKET');
  const jwtAudience = readVar(env, 'SPIKE_NEXUS_JWT_AUDIENCE');
  const jwtMaxTtlMs = durationVar(env, 'SPIKE_NEXUS_JWT_MAX_TTL', '5m', warnings);
  if (jwtMaxTtlMs > MAX_JWT_TTL_MS) {
    throw configInvalid(
      'SPIKE_NEXUS_JWT_MAX_TTL',
      'must be at most 1h (bearer tokens are replayable)',
    );
  }

  return {
    tls,
    ...(health === undefined ? {} : { health }),
    backend,
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    maxSecretVersions: integerVar(env, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS', 10, 1, 1_000_000),
    dbJournalMode: choiceVar(env, 'SPIKE_NEXUS_DB_JOURNAL_MODE', JOURNAL_MODES, 'WAL'),
    dbBusyTimeoutMs: integerVar(env, 'SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS', 5000, 1, 2 ** 31 - 1),
    dbSkipSchemaCreation: booleanVar(env, 'SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION', false),
    trustRoots,
    logLevel,
    maxBodyBytes: integerVar(env, 'SPIKE_HTTP_SERVER_MAX_BODY_BYTES', 1_048_576, 1, 2 ** 31 - 1),
    maxCipherBytes: integerVar(
      env,
      'SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE',
      65_536,
      1,
      2 ** 31 - 1,
    ),
    ...(auditFile === undefined ? {} : { auditFile }),
    keeperPeers,
    shamirShares,
    shamirThreshold,
    keeperUpdateIntervalMs: durationVar(env, 'SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL', '5m', warnings),
    spiffeSourceTimeoutMs: durationVar(env, 'SPIKE_SPIFFE_SOURCE_TIMEOUT', '30s', warnings),
    readHeaderTimeoutMs: durationVar(env, 'SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT', '10s', warnings),
    requestTimeoutMs: durationVar(env, 'SPIKE_HTTP_SERVER_REQUEST_TIMEOUT', '30s', warnings),
    idleTimeoutMs: durationVar(env, 'SPIKE_HTTP_SERVER_IDLE_TIMEOUT', '60s', warnings),
    serverLimits: serverLimitsVar(env),
    ...(spiffeEndpointSocket === undefined ? {} : { spiffeEndpointSocket }),
    ...(jwtAudience === undefined ? {} : { jwtAudience }),
    jwtMaxTtlMs,
    watchRetentionMs: Math.max(
      1000,
      durationVar(env, 'SPIKE_NEXUS_WATCH_RETENTION', '24h', warnings),
    ),
    watchHeartbeatMs: Math.max(
      100,
      durationVar(env, 'SPIKE_NEXUS_WATCH_HEARTBEAT', '15s', warnings),
    ),
    watchMaxStreams: integerVar(env, 'SPIKE_NEXUS_WATCH_MAX_STREAMS', 4096, 1, 1_000_000),
    warnings,
  };
}
