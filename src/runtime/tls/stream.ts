/**
 * A streamed answer on the mTLS client's HTTP/2 session (src/runtime/tls/client.ts): the status
 * and headers as soon as they arrive, then the body chunk by chunk for as long as the server
 * sends it. Used for long-lived answers such as the watch stream (`text/event-stream`), which
 * the buffered `request()` would hold in memory until its timeout.
 *
 * Only the wait for the response headers has a deadline; the body has none (the reader decides
 * how long silence may last). Aborting the signal, or `close()`, cancels the HTTP/2 stream
 * (RST_STREAM CANCEL): a pending `next()` then ends the iteration (abort, close) instead of
 * throwing.
 */
import http2 from 'node:http2';
import { isSpikeError, SpikeError } from '../../core/errors.ts';

/** The request of {@link openStreamOn}. */
export interface StreamRequestInit {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  /** Cancels the request; before the headers the call rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** A streamed answer. */
export interface MtlsStreamResponse {
  readonly status: number;
  /** Lower-case names; repeated headers joined with `, `. */
  readonly headers: Record<string, string>;
  /**
   * The body chunks. Ends when the server ends the stream, on abort and on `close()`; throws
   * `net_peer_connection` when the stream is reset or the connection drops.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /** Cancels the stream (idempotent). */
  close(): void;
}

function failure(message: string, cause?: unknown): SpikeError {
  if (isSpikeError(cause)) return cause;
  return new SpikeError('net_peer_connection', message, cause === undefined ? {} : { cause });
}

/**
 * Sends one request on `h2` and resolves with its answer once the response headers arrived
 * (before `deadline`, a `Date.now()` value).
 *
 * @throws SpikeError `net_peer_connection` when the stream fails or no headers arrive in time.
 */
export function openStreamOn(
  h2: http2.ClientHttp2Session,
  path: string,
  init: StreamRequestInit,
  deadline: number,
): Promise<MtlsStreamResponse> {
  return new Promise<MtlsStreamResponse>((resolve, reject) => {
    const signal = init.signal;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const headers: http2.OutgoingHttpHeaders = {
      ...Object.fromEntries(
        Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
      ),
      ':method': init.method ?? 'GET',
      ':path': path,
    };
    if (init.body !== undefined && headers['content-length'] === undefined) {
      headers['content-length'] =
        typeof init.body === 'string' ? Buffer.byteLength(init.body) : init.body.byteLength;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = h2.request(headers, { endStream: init.body === undefined });
    } catch (error) {
      reject(failure('request not sent', error));
      return;
    }

    // Chunks not yet read, and the reader waiting for one.
    const queue: Uint8Array[] = [];
    let waiter: { resolve: () => void } | undefined;
    let ended = false;
    let error: SpikeError | undefined;
    let answered = false;
    let cancelled = false;
    const wake = () => {
      const w = waiter;
      waiter = undefined;
      w?.resolve();
    };
    const cancel = () => {
      if (cancelled) return;
      cancelled = true;
      ended = true;
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      wake();
    };
    const timer = setTimeout(
      () => {
        if (answered) return;
        reject(new SpikeError('net_peer_connection', 'request timed out'));
        cancel();
      },
      Math.max(1, deadline - Date.now()),
    );
    const onAbort = () => {
      if (!answered) reject(signal?.reason);
      cancel();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    stream.on('response', (h) => {
      answered = true;
      clearTimeout(timer);
      const responseHeaders: Record<string, string> = {};
      for (const [name, value] of Object.entries(h)) {
        if (name.startsWith(':') || value === undefined) continue;
        responseHeaders[name] = Array.isArray(value) ? value.join(', ') : String(value);
      }
      resolve({
        status: Number(h[':status']),
        headers: responseHeaders,
        body: { [Symbol.asyncIterator]: iterate },
        close: cancel,
      });
    });
    stream.on('data', (chunk: Uint8Array) => {
      if (cancelled) return;
      queue.push(new Uint8Array(chunk));
      wake();
    });
    stream.on('end', () => {
      ended = true;
      wake();
    });
    stream.on('error', (cause: unknown) => {
      if (!cancelled) error ??= failure('stream failed', cause);
      if (!answered) reject(error ?? failure('stream failed', cause));
      ended = true;
      wake();
    });
    stream.on('close', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (!answered) {
        answered = true;
        reject(
          cancelled ? (signal?.reason ?? failure('stream cancelled')) : failure('stream closed'),
        );
      } else if (!ended && !cancelled) {
        error ??= failure('stream closed before its end');
      }
      ended = true;
      wake();
    });
    if (init.body !== undefined) stream.end(init.body);

    async function* iterate(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          const chunk = queue.shift();
          if (chunk !== undefined) {
            yield chunk;
            continue;
          }
          if (cancelled) return;
          if (error !== undefined) throw error;
          if (ended) return;
          await new Promise<void>((r) => {
            waiter = { resolve: r };
          });
        }
      } finally {
        cancel();
      }
    }
  });
}
