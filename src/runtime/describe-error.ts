/**
 * A log-safe description of an error, for the server processes' log lines (docs/spike-api.md §12
 * "Never a secret value, key, shard or request body"; docs/architecture.md invariant 1).
 *
 * Only identifiers are kept: a `SpikeError` code, a system error code (`EADDRINUSE`, `ENOENT`),
 * or the error's class name. An error message is free text that could quote a value, a path the
 * operator considers private, or a library's dump of its input, so it is never used.
 */
import { isSpikeError } from '../core/errors.ts';

/**
 * The `SpikeError` code, else an upper-case system error code (at most 40 characters of
 * `[A-Z0-9_]`), else the error's `name`, else `unknown error`.
 */
export function describeError(error: unknown): string {
  if (isSpikeError(error)) return error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  return error instanceof Error ? error.name : 'unknown error';
}
