/**
 * Small pieces of the mTLS client (./client.ts): telling a request that never left from one that
 * may have reached the server, connection errors, deadlines, and waiting for our first SVID.
 */
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import type { X509Context, X509Source } from '../../core/spiffe/types.ts';

/** Errors of requests that never left this process (see {@link neverSentError}). */
const unsent = new WeakSet<object>();

/**
 * True when `error` came from a `request` that provably never reached the server: the
 * connection or its verification failed before the request was written, or every stream was
 * refused. Such a request is safe to send again, to this server or another.
 */
export function neverSentError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && unsent.has(error);
}

export function markUnsent(error: unknown): unknown {
  if (typeof error === 'object' && error !== null) unsent.add(error);
  return error;
}

export function connectionError(message: string, cause?: unknown): SpikeError {
  // Identity failures keep their own code so callers can tell "wrong server" from "no server".
  if (isSpikeError(cause)) return cause;
  return new SpikeError('net_peer_connection', message, { cause });
}

/** Our current SVID, waiting for the first one. */
export async function currentContext(source: X509Source): Promise<X509Context> {
  const now = source.current();
  if (now !== undefined) return now;
  await source.ready();
  const after = source.current();
  if (after === undefined) throw new SpikeError('svid_invalid', 'no X.509-SVID available');
  return after;
}

/** `promise`, or a `net_peer_connection` timeout at `deadline` (epoch ms). */
export function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new SpikeError('net_peer_connection', 'connection timed out')),
      Math.max(1, deadline - Date.now()),
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
