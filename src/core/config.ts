/**
 * The pieces every component's configuration parser is made of (docs/spike-api.md §10): reading
 * one environment variable and turning it into a typed value, with one rule for all of them.
 *
 * - A value that cannot be used fails with `SpikeError('config_invalid')` and one line naming the
 *   variable and what it expects; the value itself is not repeated (it could be a secret pasted
 *   into the wrong variable). The entry point prints that line and exits 1.
 * - Durations are the exception the spec prescribes: invalid or ≤ 0 values fall back to their
 *   default, with a warning for the caller to log.
 * - Unset and blank are the same: the default applies.
 *
 * Each component has exactly one parser built from these: src/nexus/config.ts and
 * src/keeper/config.ts. Only entry points read `process.env` and pass it in (docs/style.md rule 3).
 * Portable: no runtime APIs.
 */
import { parseGoDuration } from './duration.ts';
import { isSpikeError, SpikeError } from './errors.ts';
import { DEFAULT_LOG_LEVEL, type LogLevel, parseLogLevel } from './log.ts';
import { parseTrustRoots } from './spike/roles.ts';

/** The environment as a parser sees it (usually `process.env`). */
export type Env = Readonly<Record<string, string | undefined>>;

/** A listen address: `:8553`, `8553` or `host:8553`. */
export interface ListenAddress {
  /** `undefined` = all interfaces. An IPv6 host keeps its brackets (`[::1]`). */
  readonly host?: string;
  readonly port: number;
}

/** The `config_invalid` error for `variable`: `<variable>: <expected>`. */
export function configInvalid(variable: string, expected: string): SpikeError {
  return new SpikeError('config_invalid', `${variable}: ${expected}`);
}

/** The value, trimmed; `undefined` when unset or blank. */
export function readVar(env: Env, variable: string): string | undefined {
  const value = env[variable]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** A decimal integer in [min, max]; `fallback` when unset. */
export function integerVar(
  env: Env,
  variable: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const value = readVar(env, variable);
  if (value === undefined) return fallback;
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw configInvalid(variable, `expected an integer from ${min} to ${max}`);
  }
  return n;
}

/** The transport's connection limits (docs/spike-api.md §10, §12), shared by Nexus and Keeper. */
export interface ServerLimits {
  /** `SPIKE_HTTP_SERVER_MAX_CONNECTIONS`, default 1024: more are refused with 503 `server_busy`. */
  readonly maxConnections: number;
  /** `SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS`, default 128: HTTP/2 streams per connection. */
  readonly maxConcurrentStreams: number;
}

/** Reads `SPIKE_HTTP_SERVER_MAX_CONNECTIONS` and `SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS`. */
export function serverLimitsVar(env: Env): ServerLimits {
  return {
    maxConnections: integerVar(env, 'SPIKE_HTTP_SERVER_MAX_CONNECTIONS', 1024, 1, 1_000_000),
    maxConcurrentStreams: integerVar(
      env,
      'SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS',
      128,
      1,
      2 ** 31 - 1,
    ),
  };
}

/** `true` or `false` (any case); `fallback` when unset. */
export function booleanVar(env: Env, variable: string, fallback: boolean): boolean {
  const value = readVar(env, variable)?.toLowerCase();
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw configInvalid(variable, 'expected true or false');
}

/** One of `choices` (compared in upper case); `fallback` when unset. */
export function choiceVar<T extends string>(
  env: Env,
  variable: string,
  choices: readonly T[],
  fallback: T,
): T {
  const value = readVar(env, variable)?.toUpperCase();
  if (value === undefined) return fallback;
  const found = choices.find((c) => c === value);
  if (found === undefined) throw configInvalid(variable, `expected ${choices.join(', ')}`);
  return found;
}

/**
 * A Go duration in milliseconds; invalid or ≤ 0 values fall back to `fallback` (a Go duration)
 * and push a warning (§10).
 */
export function durationVar(
  env: Env,
  variable: string,
  fallback: string,
  warnings: string[],
): number {
  const defaultMs = parseGoDuration(fallback);
  const value = readVar(env, variable);
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
    throw configInvalid(variable, 'expected a port such as :8553 or 8553 (optionally host:port)');
  }
  const host = m[1];
  return host === undefined || host === '' ? { port } : { host, port };
}

/** A listen address variable; `fallback` (e.g. `:8553`) when unset, `undefined` for none. */
export function listenVar(env: Env, variable: string, fallback: string): ListenAddress;
export function listenVar(env: Env, variable: string): ListenAddress | undefined;
export function listenVar(
  env: Env,
  variable: string,
  fallback?: string,
): ListenAddress | undefined {
  const value = readVar(env, variable) ?? fallback;
  return value === undefined ? undefined : parseListenAddress(value, variable);
}

/** `SPIKE_TRUST_ROOT_*`: comma-separated trust domain names, default `spike.ist`. */
export function trustRootVar(env: Env, variable: string): string[] {
  try {
    return parseTrustRoots(env[variable]);
  } catch (error) {
    if (isSpikeError(error)) {
      throw configInvalid(
        variable,
        'expected comma-separated trust domain names such as spike.ist',
      );
    }
    throw error;
  }
}

/** `SPIKE_SYSTEM_LOG_LEVEL`: DEBUG, INFO, WARN or ERROR (any case), default WARN. */
export function logLevelVar(env: Env): LogLevel {
  const variable = 'SPIKE_SYSTEM_LOG_LEVEL';
  const value = readVar(env, variable);
  if (value === undefined) return DEFAULT_LOG_LEVEL;
  const level = parseLogLevel(value);
  if (level === undefined) throw configInvalid(variable, 'expected DEBUG, INFO, WARN or ERROR');
  return level;
}
