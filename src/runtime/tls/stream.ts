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

function requestHeaders(path: string, init: StreamRequestInit): http2.OutgoingHttpHeaders {
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
  return headers;
}

function headersOf(h: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith(':') || value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/** The body of one stream as a queue: chunks pushed by the stream's events, read by one reader. */
interface BodyQueue {
  push(chunk: Uint8Array): void;
  /** No more chunks; with an error, the reader throws it after the queued chunks. */
  end(error?: SpikeError): void;
  /** Cancels: the reader ends at once (no throw). */
  cancel(): void;
  readonly cancelled: () => boolean;
  readonly ended: () => boolean;
  iterate(onDone: () => void): AsyncGenerator<Uint8Array>;
}

function createBodyQueue(): BodyQueue {
  const queue: Uint8Array[] = [];
  let waiter: (() => void) | undefined;
  let ended = false;
  let cancelled = false;
  let error: SpikeError | undefined;
  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  return {
    push(chunk) {
      if (cancelled) return;
      queue.push(chunk);
      wake();
    },
    end(failure) {
      if (!ended && !cancelled) error ??= failure;
      ended = true;
      wake();
    },
    cancel() {
      cancelled = true;
      ended = true;
      wake();
    },
    cancelled: () => cancelled,
    ended: () => ended,
    async *iterate(onDone) {
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
            waiter = r;
          });
        }
      } finally {
        onDone();
      }
    },
  };
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
    let stream: http2.ClientHttp2Stream;
    try {
      stream = h2.request(requestHeaders(path, init), { endStream: init.body === undefined });
    } catch (error) {
      reject(failure('request not sent', error));
      return;
    }
    const body = createBodyQueue();
    let answered = false;
    const cancel = () => {
      if (body.cancelled()) return;
      body.cancel();
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
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
      resolve({
        status: Number(h[':status']),
        headers: headersOf(h),
        body: { [Symbol.asyncIterator]: () => body.iterate(cancel) },
        close: cancel,
      });
    });
    stream.on('data', (chunk: Uint8Array) => body.push(new Uint8Array(chunk)));
    stream.on('end', () => body.end());
    stream.on('error', (cause: unknown) => {
      const error = failure('stream failed', cause);
      if (!answered) reject(error);
      body.end(error);
    });
    stream.on('close', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (!answered) {
        answered = true;
        reject(
          body.cancelled()
            ? (signal?.reason ?? failure('stream cancelled'))
            : failure('stream closed'),
        );
      }
      body.end(body.ended() ? undefined : failure('stream closed before its end'));
    });
    if (init.body !== undefined) stream.end(init.body);
  });
}
