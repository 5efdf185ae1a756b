/**
 * JSON-lines logging and the audit line (docs/spike-api.md §12 "Logs", "Audit").
 *
 * The logger writes one JSON object per line to an injected sink (stdout in production, an array
 * in tests) and drops lines below the level of `SPIKE_SYSTEM_LOG_LEVEL` (DEBUG < INFO < WARN <
 * ERROR, default WARN). The audit builder formats the single line Nexus writes per request.
 *
 * Invariant: nothing here inspects what it is given, so callers must never pass a secret value,
 * key, shard or request body; the audit record has no field that could hold one.
 * Portable: no runtime APIs.
 */
import type { Clock } from './ports.ts';

/** Log levels, lowest first (docs/spike-api.md §10 `SPIKE_SYSTEM_LOG_LEVEL`). */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/** Every level, lowest first. */
const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['DEBUG', 'INFO', 'WARN', 'ERROR']);

/** The level used when `SPIKE_SYSTEM_LOG_LEVEL` is unset. */
export const DEFAULT_LOG_LEVEL: LogLevel = 'WARN';

/** Receives one complete line, without the trailing newline. */
export type LineSink = (line: string) => void;

/** Extra structured fields of a log line; values must be JSON-serialisable and never secret. */
type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** True when a line at `level` would be written (to skip building expensive fields). */
  enabled(level: LogLevel): boolean;
}

/**
 * Parses a level name, case-insensitively (`warn` = `WARN`); `undefined` for anything else, so
 * the caller decides between a default and an error.
 */
export function parseLogLevel(value: string): LogLevel | undefined {
  const upper = value.trim().toUpperCase();
  return (LOG_LEVELS as readonly string[]).includes(upper) ? (upper as LogLevel) : undefined;
}

/** The last {@link formatGoTime} answer (audit lines come many per millisecond). */
let lastFormatted = { epochMs: Number.NaN, text: '' };

/**
 * RFC 3339 in UTC the way Go's `time.Time` marshals it: fraction only when non-zero, without
 * trailing zeros (`2026-07-25T20:37:48.12Z`, `2026-07-25T20:37:48Z`); the zero time prints as
 * `0001-01-01T00:00:00Z` (docs/spike-api.md §3 "Times").
 */
export function formatGoTime(time: Date): string {
  const epochMs = time.getTime();
  // An invalid date (NaN) never matches, so it still throws below.
  if (epochMs === lastFormatted.epochMs) return lastFormatted.text;
  const iso = time.toISOString();
  // toISOString always ends in `.mmmZ` (three fraction digits); drop the zeros Go would not print.
  const ms = time.getUTCMilliseconds();
  let text = iso;
  if (ms === 0) text = `${iso.slice(0, -5)}Z`;
  else if (ms % 100 === 0) text = `${iso.slice(0, -3)}Z`;
  else if (ms % 10 === 0) text = `${iso.slice(0, -2)}Z`;
  lastFormatted = { epochMs, text };
  return text;
}

/** Go's zero `time.Time`, `0001-01-01T00:00:00Z`. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * Creates a JSON-lines logger (docs/spike-api.md §12 "Logs").
 *
 * Line shape: `{"time","level","component","msg",...fields}`; fields named like the fixed keys
 * are ignored, `undefined` fields are left out.
 */
export function createLogger(options: {
  readonly level: LogLevel;
  readonly sink: LineSink;
  readonly component: string;
  readonly clock?: Clock;
}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level);
  const clock = options.clock ?? (() => new Date());
  const enabled = (level: LogLevel) => LOG_LEVELS.indexOf(level) >= threshold;
  const write = (level: LogLevel, message: string, fields?: LogFields) => {
    if (!enabled(level)) return;
    const line: Record<string, unknown> = {
      time: formatGoTime(clock()),
      level,
      component: options.component,
      msg: message,
    };
    if (fields !== undefined) {
      for (const [key, value] of Object.entries(fields)) {
        if (value !== undefined && !(key in line)) line[key] = value;
      }
    }
    options.sink(JSON.stringify(line));
  };
  return {
    debug: (m, f) => write('DEBUG', m, f),
    info: (m, f) => write('INFO', m, f),
    warn: (m, f) => write('WARN', m, f),
    error: (m, f) => write('ERROR', m, f),
    enabled,
  };
}

/** How a request ended, for the audit trail (docs/spike-api.md §12). */
export type AuditOutcome = 'allowed' | 'denied' | 'error';

/** One audited request (docs/spike-api.md §12 "Audit"). Carries identifiers only, never values. */
export interface AuditRecord {
  readonly time: Date;
  readonly component: string;
  /** Random id of this request. */
  readonly trail: string;
  /** The peer SPIFFE ID from the verified certificate, `''` when there was none. */
  readonly caller: string;
  /** `<path>?action=<a>` (the `?action=` part only when the query had one). */
  readonly route: string;
  /** create, read, list, delete, undelete, destroy, purge, encrypt, decrypt, recover, … */
  readonly action: string;
  /** Secret path or policy name, once validated; absent otherwise. */
  readonly resource?: string;
  readonly outcome: AuditOutcome;
  readonly status: number;
  /** The wire error code of a failed request. */
  readonly err?: string;
  readonly durationMs: number;
}

/**
 * Formats the audit line of docs/spike-api.md §12: `{"time","component","trail","caller","route",
 * "action","resource"?,"outcome","status","err"?,"duration_ms"}`.
 */
export function formatAuditLine(record: AuditRecord): string {
  const line: Record<string, unknown> = {
    time: formatGoTime(record.time),
    component: record.component,
    trail: record.trail,
    caller: record.caller,
    route: record.route,
    action: record.action,
  };
  if (record.resource !== undefined) line.resource = record.resource;
  line.outcome = record.outcome;
  line.status = record.status;
  if (record.err !== undefined) line.err = record.err;
  line.duration_ms = Math.round(record.durationMs * 1000) / 1000;
  return JSON.stringify(line);
}
