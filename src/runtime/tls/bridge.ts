/**
 * The Node-to-Web bridge of the mTLS server (server.ts): the body of an exchange (exchange.ts:
 * an HTTP/2 stream or an HTTP/1.1 request) goes to the handler's `Request` (request.ts), and the
 * handler's `Response` is written back. This is the hot path of every SPIKE server (issue 12: it
 * once halved throughput), so it does the least per request:
 *
 * - A body with a declared `Content-Length` of at most `SMALL_BODY_BYTES` is collected into one
 *   byte array and handed over as such (no `ReadableStream`, no per-chunk pump). That is no more
 *   than a streamed body buffers anyway (its high-water mark is the same 64 KiB). Any other body
 *   (larger, or of unknown length) is streamed with backpressure, so callers can cap it.
 * - A response body is read as bytes and written with its Content-Length in one go: on HTTP/2
 *   one HEADERS and one DATA frame with END_STREAM, straight on the stream. Pumping it through a
 *   `ReadableStream` reader instead cost ~40 µs of CPU per request (tests/bench/ab.ts).
 * - Except a streamed response: one that says so with `Content-Type: text/event-stream`
 *   (Server-Sent Events) or `Transfer-Encoding: chunked` (what Elysia sets on the stream and
 *   generator responses it builds). Its head goes out at once, then every chunk the body yields
 *   is written and flushed as it comes (HTTP/2 DATA frames, HTTP/1.1 chunked encoding), with
 *   backpressure, until the body ends or the client goes away (the body is then cancelled). Any
 *   other body, streamed or not, is collected before it is sent.
 */
import type { HttpError } from '../../api/v1/errors.ts';
import { concatBytes } from '../../core/bytes.ts';
import type { Exchange, NodeHeaders } from './exchange.ts';

/** Largest declared body collected before the handler runs (the streamed high-water mark). */
const SMALL_BODY_BYTES = 64 * 1024;

/** What a request body is handed over as: nothing, collected bytes, or a stream. */
export type WebBody = Uint8Array | ReadableStream<Uint8Array> | null;

// Connection-specific headers are forbidden in HTTP/2 responses and meaningless to forward.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

const EMPTY = new Uint8Array(0);

/** HTTP/2's header list size (RFC 9113 §6.5.2) as an estimate: name + value + 32 a field. */
export function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length + 16;
  return size;
}

/** The `Content-Length` value in a flat header list, if any. */
export function contentLengthOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1];
  }
  return undefined;
}

/**
 * The declared body length when it is small enough to collect (0 … `SMALL_BODY_BYTES`), else
 * `undefined` (the body is streamed).
 */
export function smallBodyLength(declared: string | undefined): number | undefined {
  if (declared === undefined || declared.length === 0 || declared.length > 6) return;
  for (let i = 0; i < declared.length; i++) {
    const c = declared.charCodeAt(i);
    if (c < 48 || c > 57) return;
  }
  const n = Number(declared);
  return n <= SMALL_BODY_BYTES ? n : undefined;
}

/**
 * Collects a body of `length` declared bytes, then calls `done` with it. More bytes than declared
 * call `overflow` instead. A request that aborts calls neither (its response closes).
 */
export function collectBody(
  x: Exchange,
  length: number,
  done: (body: Uint8Array) => void,
  overflow: () => void,
): void {
  if (length === 0 || x.complete) {
    done(EMPTY);
    return;
  }
  const source = x.body;
  let first: Uint8Array | undefined;
  let chunks: Uint8Array[] | undefined;
  let size = 0;
  let over = false;
  source.on('data', (chunk: Uint8Array) => {
    if (over) return;
    size += chunk.byteLength;
    if (size > length) {
      over = true;
      overflow();
      return;
    }
    if (first === undefined) {
      first = chunk;
      return;
    }
    if (chunks === undefined) chunks = [first];
    chunks.push(chunk);
  });
  source.once('end', () => {
    x.complete = true;
    if (over) return;
    if (chunks === undefined) done(first === undefined ? EMPTY : bytesOf(first));
    else done(concatBytes(...chunks));
  });
}

function bytesOf(chunk: Uint8Array): Uint8Array {
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** The request body as a byte stream with backpressure: nothing is buffered beyond ~64 KiB. */
export function streamBody(x: Exchange): ReadableStream<Uint8Array> {
  const source = x.body;
  let done = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        source.on('data', (chunk: Uint8Array) => {
          if (done) return;
          controller.enqueue(bytesOf(chunk));
          if ((controller.desiredSize ?? 0) <= 0) source.pause();
        });
        source.once('end', () => {
          x.complete = true;
          if (done) return;
          done = true;
          controller.close();
        });
        const fail = () => {
          if (done) return;
          done = true;
          controller.error(new Error('request body aborted'));
        };
        source.once('error', fail);
        source.once('aborted', fail);
        source.once('close', () => {
          if (!x.complete) fail();
        });
      },
      pull() {
        source.resume();
      },
      cancel() {
        done = true;
        source.pause();
      },
    },
    { highWaterMark: SMALL_BODY_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
  );
}

/**
 * Copies the response headers into `into`, without connection-specific ones; true when the
 * response asks to be streamed (see the module comment).
 */
function copyHeaders(response: Response, into: NodeHeaders): boolean {
  let cookies = false;
  let streamed = false;
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') cookies = true;
    else if (!HOP_BY_HOP.has(name)) {
      into[name] = value;
      if (name === 'content-type' && value.startsWith('text/event-stream')) streamed = true;
    } else if (name === 'transfer-encoding') streamed = true;
  }
  if (cookies) into['set-cookie'] = response.headers.getSetCookie();
  return streamed;
}

/** Web `Response` → the exchange (see the module comment). */
export async function writeResponse(x: Exchange, response: Response): Promise<void> {
  const status = response.status;
  const headers = x.headers(status);
  const streamed = copyHeaders(response, headers);
  if (x.gone() || x.method === 'HEAD') {
    if (!x.gone()) x.whole(status, headers, undefined);
    await response.body?.cancel();
    return;
  }
  if (streamed && response.body !== null) {
    await writeStreamed(x, status, headers, response.body);
    return;
  }
  // The runtime answers `bytes()` at once for a string, byte or JSON body: no await then.
  const pending = response.bytes();
  const ready = Bun.peek(pending);
  const bytes = ready instanceof Uint8Array ? ready : await pending;
  if (x.gone()) return;
  if (bodyAllowed(status)) headers['content-length'] = bytes.byteLength;
  x.whole(status, headers, bytes);
}

/** A streamed response: head now, then each chunk as it comes; no request timeout from here. */
async function writeStreamed(
  x: Exchange,
  status: number,
  headers: NodeHeaders,
  body: ReadableStream<Uint8Array>,
): Promise<void> {
  const reader = body.getReader();
  x.head(status, headers);
  x.deadline = Infinity;
  // A client that leaves while the body waits for its next chunk stops the producer at once.
  x.stopBody = () => {
    reader.cancel().catch(() => undefined);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (x.gone()) break;
      if (done) {
        x.end();
        return;
      }
      if (value.byteLength > 0 && !x.write(value)) await x.drained();
    }
  } catch (error) {
    x.kill();
    throw error;
  } finally {
    x.stopBody = undefined;
    // The client went away or the body failed: stop the producer.
    if (x.gone()) await reader.cancel().catch(() => undefined);
  }
}

/** Statuses that may carry a body and a `Content-Length` (not 1xx, 204, 304). */
function bodyAllowed(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

/**
 * A refusal by the transport itself, as every SPIKE error: a JSON body with the code
 * (`{"err":"<code>"}`, docs/spike-api.md §3). HTTP/1.1 clients are told the connection closes.
 */
export function writeRefusal(
  x: Exchange,
  answer: HttpError,
  extra: Record<string, string> = {},
): void {
  if (x.headersSent() || x.gone()) return;
  const { status } = answer;
  const body = `{"err":"${answer.err}"}`;
  const headers = x.headers(status);
  headers['content-type'] = 'application/json';
  headers['cache-control'] = 'no-store, no-cache, must-revalidate, private';
  headers['content-length'] = body.length;
  // Connection-specific headers exist only in HTTP/1.1 (HTTP/2 has GOAWAY).
  if (x.h1) headers.connection = 'close';
  Object.assign(headers, extra);
  x.whole(status, headers, body);
}
