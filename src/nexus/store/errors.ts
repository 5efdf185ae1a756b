/**
 * Storage errors that say nothing about the data (docs/style.md rule 7).
 *
 * Drizzle's query error embeds the SQL and every bound parameter (paths, ciphertexts, names) in
 * its message. Whatever a database driver throws becomes `SpikeError('api_internal_error',
 * 'storage failure')`; the only detail kept as `cause` is the driver's error code name (for
 * example `SQLITE_BUSY`), which carries no values.
 */
import { isSpikeError, SpikeError } from '../../core/errors.ts';

/** The fixed message of every wrapped storage error. */
const STORAGE_FAILURE = 'storage failure';

function driverCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Wraps a driver error; a `SpikeError` passes through unchanged. */
export function storageFailure(error: unknown): SpikeError {
  if (isSpikeError(error)) return error;
  const code = driverCode(error);
  return new SpikeError(
    'api_internal_error',
    STORAGE_FAILURE,
    code === undefined ? undefined : { cause: new Error(code) },
  );
}

/** Runs a synchronous driver call, wrapping anything it throws with {@link storageFailure}. */
export function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw storageFailure(error);
  }
}
