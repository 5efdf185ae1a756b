/**
 * Nexus configuration from environment variables (spec/spike-api.md §10, §12).
 *
 * `parseNexusConfig(env)` turns the upstream variable names into one typed object; only the entry
 * point reads `process.env` and passes it in (STYLE.md rule 3). A value that cannot be used fails
 * with `SpikeError('config_invalid')` and a single line naming the variable and what it expects
 * (the value itself is not repeated). Where the spec prescribes a fallback instead, the fallback is
 * taken and a warning is returned for the caller to log:
 * - durations that are invalid or ≤ 0 fall back to their default (§10);
 * - an unknown `SPIKE_NEXUS_BACKEND_STORE` means `sqlite` (§10, as upstream);
 * - plain `SPIKE_TRUST_ROOT` is only reported.
 *
 * The data directory follows ./data-dir.ts (upstream rules: `<SPIKE_NEXUS_DATA_DIR>/data`, else
 * `$HOME/.spike/data`, else `.spike-$USER/data` under `$TMPDIR`), which also creates it with mode
 * 0700; so parsing a sqlite configuration touches the filesystem, and a refused
 * `SPIKE_NEXUS_DATA_DIR` becomes a warning, as upstream falls back rather than stopping.
 */
import { parseGoDuration } from '../core/duration.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { DEFAULT_LOG_LEVEL, type LogLevel, parseLogLevel } from '../core/log.ts';
import type { TrustRoots } from '../core/policy/engine.ts';
import { parseTrustRoots } from '../core/spike/roles.ts';
import type { NexusBackend } from './app.ts';
import { resolveDataDir } from './data-dir.ts';

/** A listen address: `:8553`, `8553` or `host:8553`. */
export interface ListenAddress {
  /** `undefined` = all interfaces. */
  readonly host?: string;
  readonly port: number;
}

/** The typed Nexus configuration (§10). Durations are in milliseconds. */
export interface NexusConfig {
  /** `SPIKE_NEXUS_TLS_PORT`, default `:8553`. */
  readonly tls: ListenAddress;
  /** `SPIKE_NEXUS_HEALTH_PORT`: plain-HTTP `/health` and `/ready` (§12); unset = off. */
  readonly health?: ListenAddress;
  /** `SPIKE_NEXUS_BACKEND_STORE`: `sqlite` (default), `memory` or `lite`. */
  readonly backend: NexusBackend;
  /** The data directory, created (./data-dir.ts); only for the sqlite backend. */
  readonly dataDir?: string;
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`, default 10. */
  readonly maxSecretVersions: number;
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
  /** `SPIFFE_ENDPOINT_SOCKET` as given (parsed by the Workload API client); unset = its default. */
  readonly spiffeEndpointSocket?: string;
  /** Fallbacks taken and ignored variables, one line each, for the caller to log. */
  readonly warnings: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

function invalid(variable: string, expected: string): SpikeError {
  return new SpikeError('config_invalid', `${variable}: ${expected}`);
}

/** The value, trimmed; `undefined` when unset or blank. */
function read(env: Env, variable: string): string | undefined {
  const value = env[variable]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, variable: string, fallback: number, min: number, max: number): number {
  const value = read(env, variable);
  if (value === undefined) return fallback;
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(variable, `expected an integer from ${min} to ${max}`);
  }
  return n;
}

function duration(env: Env, variable: string, fallback: string, warnings: string[]): number {
  const defaultMs = parseGoDuration(fallback);
  const value = read(env, variable);
  if (value === undefined) return defaultMs;
  let ms: number;
  try {
    ms = parseGoDuration(value);
  } catch {
    ms = Number.NaN;
  }
  if (!(ms > 0)) {
    warnings.push(`${variable}: not a positive Go duration (e.g. 30s); using ${fallback}`);
    return defaultMs;
  }
  return ms;
}

/** Parses `:8553`, `8553`, `host:8553` or `[::1]:8553`. */
export function parseListenAddress(value: string, variable: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?([0-9]{1,5})$/.exec(value.trim());
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || port > 65535) {
    throw invalid(variable, 'expected a port such as :8553 or 8553 (optionally host:port)');
  }
  const host = m[1];
  return host === undefined || host === '' ? { port } : { host, port };
}

function trustRoot(env: Env, variable: string): string[] {
  try {
    return parseTrustRoots(env[variable]);
  } catch (error) {
    if (isSpikeError(error)) {
      throw invalid(variable, 'expected comma-separated trust domain names such as spike.ist');
    }
    throw error;
  }
}

/** Parses `SPIKE_NEXUS_KEEPER_PEERS` into origins (§10): https only, no duplicates, none empty. */
export function parseKeeperPeers(value: string | undefined): string[] {
  const variable = 'SPIKE_NEXUS_KEEPER_PEERS';
  if (value === undefined || value.trim() === '') {
    throw invalid(variable, 'required: comma-separated https://host:port URLs of the Keepers');
  }
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') throw invalid(variable, 'contains an empty entry');
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw invalid(variable, 'every entry must be an https://host:port URL');
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
      throw invalid(variable, 'every entry must be an https://host:port URL');
    }
    if (out.includes(url.origin)) throw invalid(variable, 'lists the same Keeper twice');
    out.push(url.origin);
  }
  return out;
}

function backendOf(env: Env, warnings: string[]): NexusBackend {
  const value = read(env, 'SPIKE_NEXUS_BACKEND_STORE')?.toLowerCase();
  if (value === undefined || value === 'sqlite') return 'sqlite';
  if (value === 'memory' || value === 'lite') return value;
  warnings.push('SPIKE_NEXUS_BACKEND_STORE: unknown backend; using sqlite');
  return 'sqlite';
}

/**
 * Parses the Nexus environment (spike-api.md §10).
 *
 * @param env usually `process.env`, passed in by the entry point (`HOME`, `TMPDIR` and `USER` are
 *   read from it for the data-directory fallbacks).
 * @throws SpikeError `config_invalid` with one line naming the variable.
 */
export function parseNexusConfig(env: Env): NexusConfig {
  const warnings: string[] = [];
  const backend = backendOf(env, warnings);

  const tlsValue = read(env, 'SPIKE_NEXUS_TLS_PORT');
  const tls = parseListenAddress(tlsValue ?? ':8553', 'SPIKE_NEXUS_TLS_PORT');
  const healthValue = read(env, 'SPIKE_NEXUS_HEALTH_PORT');
  const health =
    healthValue === undefined
      ? undefined
      : parseListenAddress(healthValue, 'SPIKE_NEXUS_HEALTH_PORT');

  const logValue = read(env, 'SPIKE_SYSTEM_LOG_LEVEL');
  const logLevel = logValue === undefined ? DEFAULT_LOG_LEVEL : parseLogLevel(logValue);
  if (logLevel === undefined) {
    throw invalid('SPIKE_SYSTEM_LOG_LEVEL', 'expected DEBUG, INFO, WARN or ERROR');
  }

  const pilot = trustRoot(env, 'SPIKE_TRUST_ROOT_PILOT');
  const trustRoots: TrustRoots = {
    nexus: trustRoot(env, 'SPIKE_TRUST_ROOT_NEXUS'),
    keeper: trustRoot(env, 'SPIKE_TRUST_ROOT_KEEPER'),
    bootstrap: trustRoot(env, 'SPIKE_TRUST_ROOT_BOOTSTRAP'),
    superuser: pilot,
    recover: pilot,
    restore: pilot,
    'lite-workload': trustRoot(env, 'SPIKE_TRUST_ROOT_LITE_WORKLOAD'),
  };
  if (read(env, 'SPIKE_TRUST_ROOT') !== undefined) {
    warnings.push(
      'SPIKE_TRUST_ROOT is not used; set the role-specific SPIKE_TRUST_ROOT_* variables',
    );
  }

  const shamirShares = integer(env, 'SPIKE_NEXUS_SHAMIR_SHARES', 3, 2, 255);
  const shamirThreshold = integer(env, 'SPIKE_NEXUS_SHAMIR_THRESHOLD', 2, 2, 255);
  if (shamirThreshold > shamirShares) {
    throw invalid(
      'SPIKE_NEXUS_SHAMIR_THRESHOLD',
      'must not exceed SPIKE_NEXUS_SHAMIR_SHARES (2 <= threshold <= shares <= 255)',
    );
  }

  let keeperPeers: string[] = [];
  if (backend !== 'memory') {
    keeperPeers = parseKeeperPeers(env.SPIKE_NEXUS_KEEPER_PEERS);
    if (keeperPeers.length !== shamirShares) {
      throw invalid(
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
  const auditFile = read(env, 'SPIKE_NEXUS_AUDIT_FILE');
  const spiffeEndpointSocket = read(env, 'SPIFFE_ENDPOINT_SOCKET');

  return {
    tls,
    ...(health === undefined ? {} : { health }),
    backend,
    ...(dataDir === undefined ? {} : { dataDir }),
    maxSecretVersions: integer(env, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS', 10, 1, 1_000_000),
    trustRoots,
    logLevel,
    maxBodyBytes: integer(env, 'SPIKE_HTTP_SERVER_MAX_BODY_BYTES', 1_048_576, 1, 2 ** 31 - 1),
    maxCipherBytes: integer(env, 'SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE', 65_536, 1, 2 ** 31 - 1),
    ...(auditFile === undefined ? {} : { auditFile }),
    keeperPeers,
    shamirShares,
    shamirThreshold,
    keeperUpdateIntervalMs: duration(env, 'SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL', '5m', warnings),
    spiffeSourceTimeoutMs: duration(env, 'SPIKE_SPIFFE_SOURCE_TIMEOUT', '30s', warnings),
    readHeaderTimeoutMs: duration(env, 'SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT', '10s', warnings),
    requestTimeoutMs: duration(env, 'SPIKE_HTTP_SERVER_REQUEST_TIMEOUT', '30s', warnings),
    idleTimeoutMs: duration(env, 'SPIKE_HTTP_SERVER_IDLE_TIMEOUT', '60s', warnings),
    ...(spiffeEndpointSocket === undefined ? {} : { spiffeEndpointSocket }),
    warnings,
  };
}
