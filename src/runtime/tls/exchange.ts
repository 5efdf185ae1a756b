/**
 * One request and its response on the mTLS server (server.ts), over HTTP/2 (a server stream,
 * written directly: no compatibility request/response objects) or HTTP/1.1 (the runtime's
 * request/response pair). The bridge (bridge.ts) and the server see only this interface.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { Pending } from './connections.ts';
import { Abort } from './request.ts';

/** HTTP/1.1 request and response as `node:http2` hands them over with `allowHTTP1`. */
export type H1Request = IncomingMessage;
export type H1Response = ServerResponse;

/** Response header fields as the runtime takes them (HTTP/2 adds `:status`). */
export type NodeHeaders = Record<string, string | string[] | number>;

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

export abstract class Exchange implements Pending {
  /** Request timeout (the sweep in connections.ts); `Infinity` once a streamed body flows. */
  deadline = Infinity;
  /** The handler's outcome is settled (answered, or failed). */
  done = false;
  /** The request body has been received completely. */
  complete = false;
  readonly abort = new Abort();
  /** Called once, when the exchange closes (either way). */
  onClose: (() => void) | undefined;
  /** Stops a streamed response body when the exchange closes first (bridge.ts). */
  stopBody: (() => void) | undefined;

  readonly method: string;
  readonly rawPath: string;
  /** Flat `[name, value, …]` header list as received (pseudo-headers included on HTTP/2). */
  readonly rawHeaders: string[];

  constructor(method: string, rawPath: string, rawHeaders: string[]) {
    this.method = method;
    this.rawPath = rawPath;
    this.rawHeaders = rawHeaders;
  }

  /** Where the request body comes from. */
  abstract get body(): Readable;
  /** The response side is closed or destroyed: nothing can be written any more. */
  abstract gone(): boolean;
  abstract headersSent(): boolean;
  /** A fresh response header object for `status`. */
  abstract headers(status: number): NodeHeaders;
  /** Writes the whole response: head and (optionally) body, and ends it. */
  abstract whole(status: number, headers: NodeHeaders, body: Uint8Array | string | undefined): void;
  /** Starts a streamed response (no length): the head goes out now. */
  abstract head(status: number, headers: NodeHeaders): void;
  /** Writes one chunk of a streamed body, flushed at once; false when the peer is not reading. */
  abstract write(chunk: Uint8Array): boolean;
  /** Waits until a `write` that returned false can go on (or the exchange closed). */
  abstract drained(): Promise<void>;
  /** Ends a streamed response. */
  abstract end(): void;
  /** Cuts the exchange (timeout, failure after the head was sent). */
  abstract kill(): void;
  /** No answer at all: the whole HTTP/2 session or HTTP/1.1 connection goes. */
  abstract drop(): void;
  /** After the answer: a request body the handler did not read is not drained. */
  abstract discardBody(): void;
  /** Whether refusals must say the connection closes (HTTP/1.1). */
  abstract readonly h1: boolean;

  /** The request timeout fired (connections.ts). */
  expire(): void {
    this.abort.abort(new Error('request timeout'));
    this.kill();
  }

  protected closed(): void {
    if (!this.done) this.abort.abort(new Error('client went away'));
    const { onClose, stopBody } = this;
    this.onClose = undefined;
    this.stopBody = undefined;
    onClose?.();
    stopBody?.();
  }
}

/** An HTTP/2 stream, served from the session's `stream` event. */
export class H2Exchange extends Exchange {
  readonly h1 = false;

  readonly stream: http2.ServerHttp2Stream;

  constructor(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    endStream: boolean,
    rawHeaders: string[],
  ) {
    super(String(headers[':method']), String(headers[':path']), rawHeaders);
    this.stream = stream;
    this.complete = endStream;
    stream.once('close', () => this.closed());
  }

  get body(): Readable {
    return this.stream;
  }

  gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  headersSent(): boolean {
    return this.stream.headersSent;
  }

  headers(status: number): NodeHeaders {
    return { ':status': status };
  }

  whole(_status: number, headers: NodeHeaders, body: Uint8Array | string | undefined): void {
    const stream = this.stream;
    if (body === undefined || body.length === 0) {
      stream.respond(headers, { endStream: true });
      return;
    }
    stream.respond(headers);
    stream.end(body);
  }

  head(_status: number, headers: NodeHeaders): void {
    this.stream.respond(headers);
  }

  write(chunk: Uint8Array): boolean {
    return this.stream.write(chunk);
  }

  drained(): Promise<void> {
    return waitDrain(this.stream);
  }

  end(): void {
    this.stream.end();
  }

  kill(): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  }

  drop(): void {
    this.stream.session?.destroy();
  }

  discardBody(): void {
    // RST_STREAM NO_ERROR after a complete answer: "stop sending" (RFC 9113 §8.1).
    if (!this.complete && !this.stream.destroyed) this.stream.close(NGHTTP2_NO_ERROR);
  }
}

/** An HTTP/1.1 request/response pair. */
export class H1Exchange extends Exchange {
  readonly h1 = true;

  readonly req: H1Request;
  readonly res: H1Response;

  constructor(req: H1Request, res: H1Response) {
    super(req.method ?? 'GET', req.url ?? '', req.rawHeaders);
    this.req = req;
    this.res = res;
    res.once('close', () => this.closed());
  }

  get body(): Readable {
    return this.req;
  }

  gone(): boolean {
    return this.res.destroyed;
  }

  headersSent(): boolean {
    return this.res.headersSent;
  }

  headers(): NodeHeaders {
    return {};
  }

  whole(status: number, headers: NodeHeaders, body: Uint8Array | string | undefined): void {
    this.res.writeHead(status, headers);
    if (body === undefined) this.res.end();
    else this.res.end(body);
  }

  head(status: number, headers: NodeHeaders): void {
    this.res.writeHead(status, headers);
    // The head goes out now, not with the first chunk.
    this.res.flushHeaders();
  }

  write(chunk: Uint8Array): boolean {
    return this.res.write(chunk);
  }

  drained(): Promise<void> {
    return waitDrain(this.res);
  }

  end(): void {
    this.res.end();
  }

  kill(): void {
    this.res.destroy();
  }

  drop(): void {
    this.req.socket.destroy();
  }

  discardBody(): void {
    if (!this.req.complete) this.req.destroy();
  }
}

function waitDrain(target: NodeJS.EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      target.off('drain', done);
      target.off('close', done);
      resolve();
    };
    target.on('drain', done);
    target.on('close', done);
  });
}
