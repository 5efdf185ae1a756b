/**
 * A raw Server-Sent Events client for `POST /v1/store/watch` (docs/spike-api.md "Watch"), not the
 * SDK: `node:http2` (or `node:https` for HTTP/1.1) with a real X509-SVID from the Workload API,
 * the server checked against the trust bundle. It parses the stream by hand, so the tests check
 * the wire format itself.
 */
import http2 from 'node:http2';
import https from 'node:https';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

export interface WatchEvent {
  readonly id: string;
  readonly event: string;
  readonly data: { seq: number; path: string; version: number; kind: string; time: string };
}

export interface WatchStream {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body of a non-200 answer. */
  readonly text: string;
  readonly events: WatchEvent[];
  /** Comment lines seen (`heartbeat`, `watching`). */
  readonly comments: string[];
  /** Resolves once `n` events arrived in all (rejects after `timeoutMs`). */
  waitForEvents(n: number, timeoutMs?: number): Promise<WatchEvent[]>;
  waitForComment(text: string, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ended the stream (or the connection dropped). */
  readonly ended: Promise<void>;
  close(): void;
}

/** Reads SSE frames out of text chunks. */
function createParser(onEvent: (e: WatchEvent) => void, onComment: (c: string) => void) {
  let buffer = '';
  return (chunk: string) => {
    buffer += chunk;
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end === -1) return;
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = '';
      let event = 'message';
      let data = '';
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) onComment(line.slice(1).trim());
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data !== '') onEvent({ id, event, data: JSON.parse(data) });
    }
  };
}

function until(check: () => boolean, timeoutMs: number, what: string, ended: () => boolean) {
  return new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out: ${what}`));
      if (ended()) return reject(new Error(`stream ended before ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** An SVID source for one role of the development issuer. */
export async function sourceFor(address: string): Promise<X509Source> {
  const source = createX509Source({
    address,
    timeoutMs: 10_000,
    logger: { info() {}, warn() {}, error() {} },
  });
  await source.ready();
  return source;
}

export interface OpenWatchOptions {
  readonly lastEventId?: string;
  /** `h1` uses HTTP/1.1 (`node:https`); default HTTP/2. */
  readonly protocol?: 'h2' | 'h1';
  /** An HTTP/2 session to reuse (many streams on one connection). */
  readonly session?: http2.ClientHttp2Session;
}

/** Opens a TLS HTTP/2 session presenting `source`'s SVID. */
export function connectH2(url: string, source: X509Source): http2.ClientHttp2Session {
  const material = tlsMaterialOf(source.current()!);
  const session = http2.connect(url, {
    ...material,
    // The chain is verified against the bundle; SVIDs carry a SPIFFE URI instead of a host name.
    checkServerIdentity: () => undefined,
  });
  session.on('error', () => undefined);
  return session;
}

/** Opens `POST /v1/store/watch` with `body` and parses what streams back. */
export function openWatch(
  url: string,
  source: X509Source,
  body: unknown,
  options: OpenWatchOptions = {},
): Promise<WatchStream> {
  const events: WatchEvent[] = [];
  const comments: string[] = [];
  let isEnded = false;
  let markEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    markEnded = () => {
      isEnded = true;
      resolve();
    };
  });
  const parse = createParser(
    (e) => events.push(e),
    (c) => comments.push(c),
  );
  const payload = JSON.stringify(body);
  const extra: Record<string, string> =
    options.lastEventId === undefined ? {} : { 'last-event-id': options.lastEventId };

  return new Promise<WatchStream>((resolve, reject) => {
    let text = '';
    const make = (
      status: number,
      headers: WatchStream['headers'],
      close: () => void,
    ): WatchStream => ({
      status,
      headers,
      get text() {
        return text;
      },
      events,
      comments,
      async waitForEvents(n, timeoutMs = 10_000) {
        await until(
          () => events.length >= n,
          timeoutMs,
          `${n} events`,
          () => isEnded,
        );
        return events.slice(0, n);
      },
      waitForComment: (c, timeoutMs = 10_000) =>
        until(
          () => comments.includes(c),
          timeoutMs,
          `comment ${c}`,
          () => isEnded,
        ),
      ended,
      close,
    });
    const onData = (status: number) => (chunk: Buffer) => {
      if (status === 200) parse(chunk.toString('utf8'));
      else text += chunk.toString('utf8');
    };

    if (options.protocol === 'h1') {
      const material = tlsMaterialOf(source.current()!);
      const req = https.request(
        `${url}/v1/store/watch`,
        {
          method: 'POST',
          ...material,
          checkServerIdentity: () => undefined,
          agent: false,
          headers: { 'content-type': 'application/json', ...extra },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.on('data', onData(status));
          res.on('end', markEnded);
          res.on('close', markEnded);
          res.on('error', markEnded);
          resolve(make(status, res.headers, () => req.destroy()));
        },
      );
      req.on('error', (error) => {
        markEnded();
        reject(error);
      });
      req.end(payload);
      return;
    }
    const own = options.session === undefined;
    const session = options.session ?? connectH2(url, source);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/v1/store/watch',
      'content-type': 'application/json',
      ...extra,
    });
    stream.on('response', (headers) => {
      const status = Number(headers[':status']);
      stream.on('data', onData(status));
      resolve(
        make(status, headers as WatchStream['headers'], () => {
          stream.close();
          if (own) session.close();
        }),
      );
    });
    stream.on('end', markEnded);
    stream.on('close', markEnded);
    stream.on('error', (error) => {
      markEnded();
      reject(error);
    });
    stream.end(payload);
  });
}
