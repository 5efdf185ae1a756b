/**
 * `client.watch(prefix)`: the change events of the secrets under a path prefix as an async
 * iterator, read from the Server-Sent Events stream of `POST /v1/store/watch`
 * (docs/spike-api.md; the wire contract is the watch stream of issue 14).
 *
 * ```ts
 * const controller = new AbortController();
 * for await (const event of spike.watch('tenants/acme/', { signal: controller.signal })) {
 *   if (event.kind === 'reset') reloadEverything();      // events were lost: read again
 *   else if (event.kind === 'put') reload(event.path);
 * }
 * ```
 *
 * Resumption: every event carries its sequence number as the SSE `id`. When the stream ends or
 * the connection drops (a Nexus restart, a load balancer, a server limit), the iterator
 * reconnects by itself with jittered exponential backoff (src/core/backoff.ts) and sends the last
 * sequence it delivered as `Last-Event-ID`, so nothing is lost and nothing is delivered twice
 * (events at or below the cursor are skipped). When Nexus no longer holds events that old
 * (`410 watch_cursor_expired`), the iterator yields one `{ kind: 'reset' }` event and goes on
 * from the current head: the caller must re-read what it watches.
 *
 * Failures that a retry cannot fix end the iteration with their `SpikeApiError`: `400`, `401`
 * (no read permission anywhere), `404` (a Nexus without watch). `503` (not ready, busy), other
 * 5xx and connection failures are retried for as long as the iteration runs.
 *
 * Cancellation: aborting `signal` (or `break` out of `for await`) cancels the HTTP/2 stream and
 * ends the iteration cleanly (it returns; it does not throw). A stream silent for longer than
 * `idleTimeoutMs` (the server sends a heartbeat comment every 15 s by default) is treated as a
 * dead connection and replaced.
 */
import { CONTENT_TYPES, REASON_HEADER } from '../api/v1/http.ts';
import { NEXUS_PATHS } from '../api/v1/routes.ts';
import { backoffDelay } from '../core/backoff.ts';
import { createSseParser } from '../core/sse.ts';
import { errorForResponse, malformedResponse } from './errors.ts';

/** The path of the watch route (the wire contract of issue 14). */
const WATCH_PATH = NEXUS_PATHS.watch;
const EVENT_STREAM = 'text/event-stream';

/** What changed. `reset`: events were lost (cursor expired); re-read everything watched. */
export type WatchEventKind =
  | 'put'
  | 'delete'
  | 'undelete'
  | 'destroy'
  | 'purge'
  | 'policy'
  | 'reset';

/** One change event; never a value. */
export interface WatchEvent {
  /** Position in the change log, strictly increasing; 0 for `reset`. */
  readonly seq: number;
  /** The secret path (the policy name for `policy`; the watched prefix for `reset`). */
  readonly path: string;
  /** The version written, 0 when not applicable. */
  readonly version: number;
  readonly kind: WatchEventKind;
  readonly time: Date;
}

/** Options of `watch`. */
export interface WatchOptions {
  /** Ends the iteration (cleanly) and closes the stream. */
  readonly signal?: AbortSignal;
  /** Start after this sequence number (resume); absent = only events from now on. */
  readonly after?: number;
  /** Reconnect when nothing, not even a heartbeat, arrives for this long (default 45 s). */
  readonly idleTimeoutMs?: number;
  /** Reconnection backoff: first delay and cap in milliseconds (default 250 ms → 10 s). */
  readonly reconnect?: { readonly initialMs: number; readonly maxMs: number };
  /** Told each time a stream is established (200), before its first event: nothing is missed after it. */
  readonly onOpen?: () => void;
  /** Told about each reconnection: the attempt number and what ended the previous stream. */
  readonly onReconnect?: (attempt: number, cause: unknown) => void;
}

/** A streamed answer (src/runtime/tls/stream.ts over mTLS; {@link fromFetchResponse} for `fetch`). */
export interface WatchStreamResponse {
  readonly status: number;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: AsyncIterable<Uint8Array>;
  close(): void;
}

/** A `fetch` answer as a {@link WatchStreamResponse} (the edge client, src/sdk/edge.ts). */
export function fromFetchResponse(response: Response): WatchStreamResponse {
  const reader = response.body?.getReader();
  const headers: Record<string, string> = {};
  for (const name of ['content-type', REASON_HEADER]) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const cancel = () => {
    reader?.cancel().catch(() => {});
  };
  return {
    status: response.status,
    headers,
    body: {
      async *[Symbol.asyncIterator]() {
        if (reader === undefined) return;
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return;
            yield value;
          }
        } finally {
          cancel();
        }
      },
    },
    close: cancel,
  };
}

/** How `watch` opens one stream (src/sdk/client.ts provides it over the mTLS session). */
export type OpenWatchStream = (
  path: string,
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal,
) => Promise<WatchStreamResponse>;

const KINDS = new Set<string>(['put', 'delete', 'undelete', 'destroy', 'purge', 'policy']);
const DEFAULT_IDLE_MS = 45_000;
const DEFAULT_RECONNECT = { initialMs: 250, maxMs: 10_000 } as const;
/** Statuses a retry cannot fix: the iteration ends with their error. */
const FATAL_STATUSES = new Set([400, 401, 403, 404, 405, 413, 415]);
/** `410 watch_cursor_expired`: the cursor is older than the server's retention window. */
const EXPIRED_STATUS = 410;

/** Reads one event's `data` (JSON); a malformed one is a protocol error. */
function parseEvent(data: string): WatchEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    throw malformedResponse('watch event');
  }
  const e = raw as Record<string, unknown> | null;
  if (
    typeof e !== 'object' ||
    e === null ||
    !Number.isSafeInteger(e.seq) ||
    typeof e.path !== 'string' ||
    !Number.isSafeInteger(e.version) ||
    typeof e.kind !== 'string' ||
    !KINDS.has(e.kind) ||
    typeof e.time !== 'string' ||
    Number.isNaN(Date.parse(e.time))
  ) {
    throw malformedResponse('watch event');
  }
  return {
    seq: e.seq as number,
    path: e.path,
    version: e.version as number,
    kind: e.kind as WatchEventKind,
    time: new Date(e.time),
  };
}

/** Reads a whole (error) body, at most 64 KiB. */
async function readAll(response: WatchStreamResponse): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > 65_536) break;
    }
  } catch {
    // a truncated error body still has a status
  } finally {
    response.close();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Waits `ms` or until `signal` aborts (never rejects). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function checkOptions(prefix: string, options: WatchOptions): void {
  if (typeof prefix !== 'string') throw new TypeError('prefix must be a string');
  const { after, idleTimeoutMs } = options;
  if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
    throw new RangeError('after must be an integer >= 0');
  }
  if (idleTimeoutMs !== undefined && !(idleTimeoutMs > 0)) {
    throw new RangeError('idleTimeoutMs must be positive');
  }
}

/**
 * The events under `prefix` (see the module header). Iteration ends when `options.signal`
 * aborts or the consumer stops; it throws only for a failure a retry cannot fix.
 */
export async function* watchChanges(
  open: OpenWatchStream,
  prefix: string,
  options: WatchOptions = {},
): AsyncGenerator<WatchEvent, void, undefined> {
  checkOptions(prefix, options);
  // One controller per iteration: the caller's signal, the consumer's `break`, and the idle timer
  // all end up aborting it.
  const stop = new AbortController();
  const outer = options.signal;
  const onOuterAbort = () => stop.abort(outer?.reason);
  if (outer?.aborted) return;
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  const backoff = { ...(options.reconnect ?? DEFAULT_RECONNECT), jitter: 0.5 };
  let cursor = options.after;
  let failures = 0;

  try {
    while (!stop.signal.aborted) {
      let cause: unknown;
      const streamStop = new AbortController();
      const onStop = () => streamStop.abort();
      stop.signal.addEventListener('abort', onStop, { once: true });
      let response: WatchStreamResponse | undefined;
      try {
        const headers: Record<string, string> = {
          'content-type': CONTENT_TYPES.json,
          accept: `${EVENT_STREAM}, ${CONTENT_TYPES.json}`,
        };
        if (cursor !== undefined) headers['last-event-id'] = String(cursor);
        const body = JSON.stringify(cursor === undefined ? { prefix } : { prefix, after: cursor });
        response = await open(WATCH_PATH, body, headers, streamStop.signal);
        // Not every transport stops a body read on abort (fetch in some runtimes): close it.
        const opened = response;
        streamStop.signal.addEventListener('abort', () => opened.close(), { once: true });
        if (response.status === EXPIRED_STATUS) {
          await readAll(response);
          cursor = undefined;
          failures = 0;
          yield { seq: 0, path: prefix, version: 0, kind: 'reset', time: new Date() };
          continue;
        }
        if (response.status !== 200) {
          const h = response.headers;
          const error = errorForResponse(
            response.status,
            await readAll(response),
            h['content-type'],
            h[REASON_HEADER],
          );
          if (FATAL_STATUSES.has(response.status)) throw error;
          cause = error;
        } else {
          failures = 0;
          options.onOpen?.();
          // Events parsed from the last chunk, handed out between reads.
          const ready: WatchEvent[] = [];
          const parser = createSseParser({
            onEvent(event) {
              if (event.type !== 'change') return;
              ready.push(parseEvent(event.data));
            },
          });
          let idle = setTimeout(() => streamStop.abort(), idleMs);
          try {
            for await (const chunk of response.body) {
              clearTimeout(idle);
              idle = setTimeout(() => streamStop.abort(), idleMs);
              parser.push(chunk);
              while (ready.length > 0) {
                const event = ready.shift() as WatchEvent;
                // A resumed stream may repeat what was delivered: skip it.
                if (cursor !== undefined && event.seq <= cursor) continue;
                cursor = event.seq;
                yield event;
              }
            }
          } finally {
            clearTimeout(idle);
          }
          cause = streamStop.signal.aborted
            ? new Error('watch stream idle')
            : new Error('watch stream ended');
        }
      } catch (error) {
        if (stop.signal.aborted) return;
        if (isFatal(error)) throw error;
        cause = error;
      } finally {
        stop.signal.removeEventListener('abort', onStop);
        response?.close();
      }
      if (stop.signal.aborted) return;
      options.onReconnect?.(failures + 1, cause);
      await pause(backoffDelay(failures, backoff), stop.signal);
      failures++;
    }
  } finally {
    outer?.removeEventListener('abort', onOuterAbort);
    stop.abort();
  }
}

/** Errors a reconnection cannot fix: a fatal status, or a stream Nexus wrote wrongly. */
function isFatal(error: unknown): boolean {
  const e = error as { code?: unknown; status?: unknown } | undefined;
  if (typeof e?.status === 'number' && FATAL_STATUSES.has(e.status)) return true;
  return e?.code === 'api_internal_error';
}
