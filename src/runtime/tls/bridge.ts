/**
 * The Node-to-Web bridge of the mTLS server (server.ts): a `node:http2` compatibility request
 * (HTTP/2 stream or HTTP/1.1 request) becomes a Web `Request`, and the handler's `Response` is
 * written back. This is the hot path of every SPIKE server (issue 12: it once halved
 * throughput), so it does the least per request:
 *
 * - A body with a declared `Content-Length` of at most `SMALL_BODY_BYTES` is collected into one
 *   byte array and handed over as such (no `ReadableStream`, no per-chunk pump). That is no more
 *   than a streamed body buffers anyway (its high-water mark is the same 64 KiB). Any other body
 *   (larger, or of unknown length) is streamed with backpressure, so callers can cap it.
 * - Request headers go to the `Request` constructor as one list of pairs (pseudo-headers
 *   dropped); nothing else is copied.
 * - A response body is read as bytes and written with one `end(bytes)` and its Content-Length:
 *   one DATA frame with END_STREAM, one flush. Pumping it through a `ReadableStream` reader
 *   instead cost ~40 µs of CPU per request (tests/bench/ab.ts), most of the bridge's overhead.
 */
import type http2 from 'node:http2';
import type { HttpError } from '../../api/v1/errors.ts';

/** Largest declared body collected before the handler runs (the streamed high-water mark). */
const SMALL_BODY_BYTES = 64 * 1024;

/** The compatibility request of `node:http2` (HTTP/2 or, with `allowHTTP1`, HTTP/1.1). */
export type NodeRequest = http2.Http2ServerRequest;
/** The compatibility response of `node:http2`. */
export type NodeResponse = http2.Http2ServerResponse;

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

/** A request's header fields, read in one pass over `rawHeaders`. */
export interface RequestHead {
  /** Every field but the pseudo-headers, as the `Request` constructor takes them. */
  readonly pairs: [string, string][];
  /** HTTP/2's header list size (RFC 9113 §6.5.2) as an estimate: name + value + 16 a field. */
  readonly size: number;
  /** The `Content-Length` value, if any. */
  readonly contentLength: string | undefined;
}

/** Reads the header fields of a request once (see `RequestHead`). */
export function readHead(req: NodeRequest): RequestHead {
  const raw = req.rawHeaders;
  const pairs: [string, string][] = [];
  let size = 0;
  let contentLength: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    size += name.length + value.length + 32;
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = value;
    pairs.push([name, value]);
  }
  return { pairs, size, contentLength };
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
  req: NodeRequest,
  length: number,
  done: (body: Uint8Array) => void,
  overflow: () => void,
): void {
  if (length === 0) {
    done(EMPTY);
    return;
  }
  let first: Uint8Array | undefined;
  let chunks: Uint8Array[] | undefined;
  let size = 0;
  let over = false;
  req.on('data', (chunk: Uint8Array) => {
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
  req.once('end', () => {
    if (over) return;
    if (chunks === undefined) {
      done(first === undefined ? EMPTY : bytesOf(first));
      return;
    }
    const body = new Uint8Array(size);
    let offset = 0;
    for (const c of chunks) {
      body.set(c, offset);
      offset += c.byteLength;
    }
    done(body);
  });
}

function bytesOf(chunk: Uint8Array): Uint8Array {
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * Node request → Web `Request`; `undefined` when it cannot be represented (a path that is not
 * origin-form, a header the Fetch standard refuses).
 */
export function toWebRequest(
  req: NodeRequest,
  headers: [string, string][],
  signal: AbortSignal,
  body: WebBody,
): Request | undefined {
  const path = req.url;
  if (typeof path !== 'string' || path.charCodeAt(0) !== 47 /* / */) return;
  try {
    // A fixed origin: the client's Host / :authority is not ours to trust, and routers that find
    // the path by character position (Elysia) would be misled by a short host. String
    // concatenation, not `new URL(path, base)`: a path like `//evil/x` stays a path.
    const init: RequestInit & { duplex?: 'half' } = {
      method: req.method,
      headers,
      signal,
      body: body as BodyInit | null,
    };
    // Required by the Fetch standard for stream bodies.
    if (body instanceof ReadableStream) init.duplex = 'half';
    return new Request(`https://localhost${path}`, init);
  } catch {
    return;
  }
}

/** The request body as a byte stream with backpressure: nothing is buffered beyond ~64 KiB. */
export function streamBody(req: NodeRequest): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        req.on('data', (chunk: Uint8Array) => {
          if (done) return;
          controller.enqueue(bytesOf(chunk));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        req.once('end', () => {
          if (done) return;
          done = true;
          controller.close();
        });
        const fail = () => {
          if (done) return;
          done = true;
          controller.error(new Error('request body aborted'));
        };
        req.once('error', fail);
        req.once('aborted', fail);
        req.once('close', () => {
          if (!req.complete) fail();
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        done = true;
        req.pause();
      },
    },
    { highWaterMark: SMALL_BODY_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
  );
}

/** The response headers as `node:http2` takes them, without connection-specific ones. */
function nodeHeadersOf(response: Response): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  let cookies = false;
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie') cookies = true;
    else if (!HOP_BY_HOP.has(name)) headers[name] = value;
  });
  if (cookies) headers['set-cookie'] = response.headers.getSetCookie();
  return headers;
}

/**
 * Web `Response` → node response: the body is read as bytes (`arrayBuffer()`, which the runtime
 * answers at once for a string, byte or JSON body) and written with one `end()`, with its
 * `Content-Length`: one DATA frame with END_STREAM on HTTP/2, no chunked encoding on HTTP/1.1.
 * Streamed response bodies are therefore collected before they are sent, except Server-Sent
 * Events (`text/event-stream`, the watch route): those are written chunk by chunk as they come
 * (`streamResponse`), after `onStream` took them off the request timeout.
 */
export async function writeResponse(
  req: NodeRequest,
  res: NodeResponse,
  response: Response,
  onStream?: () => void,
): Promise<void> {
  const headers = nodeHeadersOf(response);
  const status = response.status;
  if (res.destroyed || req.method === 'HEAD') {
    if (!res.destroyed) {
      res.writeHead(status, headers);
      res.end();
    }
    await response.body?.cancel();
    return;
  }
  if (response.body !== null && isEventStream(response)) {
    onStream?.();
    await streamResponse(res, status, headers, response.body);
    return;
  }
  const bytes = await response.bytes();
  if (res.destroyed) return;
  if (bodyAllowed(status)) headers['content-length'] = String(bytes.byteLength);
  res.writeHead(status, headers);
  res.end(bytes);
}

function isEventStream(response: Response): boolean {
  return response.headers.get('content-type')?.startsWith('text/event-stream') === true;
}

/**
 * A long-lived body: each chunk is written as it arrives (one DATA frame on HTTP/2, one chunk of
 * the chunked encoding on HTTP/1.1), waiting for `drain` when the client reads slowly; the
 * body is cancelled when the client goes away.
 */
async function streamResponse(
  res: NodeResponse,
  status: number,
  headers: Record<string, string | string[]>,
  body: ReadableStream<Uint8Array>,
): Promise<void> {
  const reader = body.getReader();
  const stop = () => {
    reader.cancel().catch(() => undefined);
  };
  res.once('close', stop);
  try {
    res.writeHead(status, headers);
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.once('drain', go);
          res.once('close', go);
        });
      }
    }
    if (!res.destroyed) res.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', stop);
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
  res: NodeResponse,
  answer: HttpError,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const { status } = answer;
  const body = `{"err":"${answer.err}"}`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store, no-cache, must-revalidate, private',
    'content-length': String(body.length),
    // Connection-specific headers exist only in HTTP/1.1 (HTTP/2 has GOAWAY).
    ...((res as { stream?: unknown }).stream === undefined && { connection: 'close' }),
    ...extra,
  });
  res.end(body);
}
