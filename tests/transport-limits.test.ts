/**
 * Connection limits of the mTLS transport (src/runtime/tls/server.ts; issue 11 finding 3) over
 * real loopback sockets with real certificates: slow headers on a connection's later requests
 * (HTTP/1.1 and HTTP/2), idle connections, the connection cap and the stream cap, and the JSON
 * bodies of the transport's own refusals. Every attack loop is bounded; bounds are generous for
 * a loaded machine.
 */
import { describe, expect, it } from 'bun:test';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { authorizeId, authorizeMemberOf } from '../src/core/spiffe/authorizer.ts';
import { createMtlsClient } from '../src/runtime/tls/client.ts';
import { toPem } from '../src/runtime/tls/material.ts';
import {
  createMtlsServer,
  type MtlsServer,
  type MtlsServerLimits,
  type MtlsServerTimeouts,
} from '../src/runtime/tls/server.ts';
import { createTestPki, type TestPki } from './support/cert-factory.ts';
import { createStaticSource } from './support/static-source.ts';

const TD = 'spike.ist';
const NEXUS = `spiffe://${TD}/spike/nexus`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;

interface Peer {
  readonly chain: readonly Uint8Array[];
  readonly privateKey: Uint8Array;
}

interface Fixture {
  pki: TestPki;
  pilot: Peer;
  server: MtlsServer;
  port: number;
  calls: string[];
  release: () => void;
}

/** A server whose `/hold` requests wait until `release()`; everything else answers `ok`. */
async function start(
  timeouts: MtlsServerTimeouts,
  limits?: MtlsServerLimits,
  maxHeaderSize?: number,
): Promise<Fixture> {
  const pki = await createTestPki({ trustDomain: TD });
  const pilot = await pki.issue(PILOT);
  const source = await createStaticSource(NEXUS, { authority: pki.root });
  const calls: string[] = [];
  let waiting: (() => void)[] = [];
  const server = createMtlsServer({
    source,
    authorizer: authorizeMemberOf(TD),
    timeouts,
    ...(limits && { limits }),
    ...(maxHeaderSize !== undefined && { maxHeaderSize }),
    handler: async (request) => {
      const path = new URL(request.url).pathname;
      calls.push(path);
      if (path === '/hold') await new Promise<void>((resolve) => waiting.push(resolve));
      return new Response('ok');
    },
  });
  const { port } = await server.listen(0);
  const release = () => {
    for (const w of waiting) w();
    waiting = [];
  };
  return { pki, pilot, server, port, calls, release };
}

const tlsOptions = (f: Fixture, alpn: string) => ({
  host: '127.0.0.1',
  port: f.port,
  ca: toPem('CERTIFICATE', f.pki.rootDer),
  cert: f.pilot.chain.map((c) => toPem('CERTIFICATE', c)).join(''),
  key: toPem('PRIVATE KEY', f.pilot.privateKey),
  ALPNProtocols: [alpn],
  checkServerIdentity: () => undefined,
});

/** A raw TLS connection that records what it received and when it closed. */
async function rawTls(f: Fixture, alpn: 'http/1.1' | 'h2') {
  const socket = tls.connect(tlsOptions(f, alpn));
  socket.on('error', () => undefined);
  let received = Buffer.alloc(0);
  let closedAt = 0;
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closedAt = Date.now();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    closed,
    received: () => received.toString('latin1'),
    closedAt: () => closedAt,
  };
}

async function until(check: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Writes `bytes` one at a time, `everyMs` apart, until done or the socket closes. */
async function trickle(socket: tls.TLSSocket, bytes: Uint8Array | string, everyMs: number) {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  for (let i = 0; i < data.length && !socket.destroyed; i++) {
    socket.write(data.subarray(i, i + 1));
    await Bun.sleep(everyMs);
  }
}

/** One HTTP/2 frame (RFC 9113 §4.1). */
function frame(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, Buffer.from(payload)]);
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
// HPACK: :method GET (2), :scheme https (7), :path / (4) from the static table, and
// :authority (1) = "localhost" as a literal.
const GET_ROOT = Uint8Array.of(0x82, 0x87, 0x84, 0x41, 0x09, ...Buffer.from('localhost'));
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

describe('mTLS transport limits: slow headers and idle connections', () => {
  it('HTTP/1.1: a later request trickling its headers is cut after the header timeout', async () => {
    const f = await start({ headerMs: 400, idleMs: 20_000, requestMs: 20_000 });
    try {
      const c = await rawTls(f, 'http/1.1');
      c.socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => c.received().includes('\r\nok'), 5000, 'the first answer');
      expect(c.received().startsWith('HTTP/1.1 200')).toBe(true);

      // Quiet for twice the header timeout: an idle keep-alive connection is not cut by it.
      await Bun.sleep(900);
      expect(c.socket.destroyed).toBe(false);
      c.socket.write('GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => f.calls.length === 2, 5000, 'the second request');

      // Third request: headers one byte every 100 ms, never finished (at most 6 s of bytes).
      const started = Date.now();
      void trickle(c.socket, `GET /third HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(60)}`, 100);
      await Promise.race([c.closed, Bun.sleep(8000)]);
      expect(c.closedAt()).toBeGreaterThan(0);
      const after = c.closedAt() - started;
      expect(after).toBeGreaterThanOrEqual(300);
      expect(after).toBeLessThan(4000);
      expect(f.calls).toEqual(['/first', '/second']);
    } finally {
      await f.server.close();
    }
  }, 20_000);

  it('HTTP/2: a header block trickled after a finished request is cut by the idle timeout', async () => {
    const f = await start({ headerMs: 10_000, idleMs: 800, requestMs: 20_000 });
    try {
      const c = await rawTls(f, 'h2');
      c.socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, new Uint8Array(0))]));
      await until(() => c.received().length > 0, 5000, 'the server SETTINGS');
      c.socket.write(frame(0x4, 0x1, 0, new Uint8Array(0))); // SETTINGS ACK
      c.socket.write(frame(0x1, END_STREAM | END_HEADERS, 1, GET_ROOT));
      await until(() => f.calls.length === 1, 5000, 'the first request');

      // Stream 3: HEADERS without END_HEADERS, then one-byte CONTINUATION frames every 100 ms
      // (a literal header whose value never ends; at most 60 frames).
      const started = Date.now();
      c.socket.write(frame(0x1, END_STREAM, 3, GET_ROOT));
      const literal = [0x00, 0x01, 0x78, 0x7f, 0xe1, 0x07, ...new Array(54).fill(0x61)];
      for (const byte of literal) {
        if (c.socket.destroyed) break;
        c.socket.write(frame(0x9, 0, 3, Uint8Array.of(byte)));
        await Bun.sleep(100);
      }
      await Promise.race([c.closed, Bun.sleep(3000)]);
      expect(c.closedAt()).toBeGreaterThan(0);
      const after = c.closedAt() - started;
      expect(after).toBeGreaterThanOrEqual(400);
      expect(after).toBeLessThan(4500);
      expect(f.calls).toEqual(['/']);
    } finally {
      await f.server.close();
    }
  }, 20_000);

  it('closes a connection with nothing in flight after the idle timeout, not one that is busy', async () => {
    const f = await start({ headerMs: 10_000, idleMs: 500, requestMs: 20_000 });
    try {
      const session = http2.connect(`https://127.0.0.1:${f.port}`, tlsOptions(f, 'h2'));
      session.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      // A request held for 3× the idle timeout keeps the connection.
      const held = session.request({ ':method': 'GET', ':path': '/hold' });
      held.resume();
      const answered = new Promise<number>((resolve) =>
        held.on('response', (h) => resolve(Number(h[':status']))),
      );
      await Bun.sleep(1500);
      expect(session.closed || session.destroyed).toBe(false);
      f.release();
      expect(await answered).toBe(200);
      const idleFrom = Date.now();
      await Promise.race([closed, Bun.sleep(5000)]);
      expect(session.closed || session.destroyed).toBe(true);
      expect(Date.now() - idleFrom).toBeLessThan(4000);
    } finally {
      f.release();
      await f.server.close();
    }
  }, 20_000);
});

describe('mTLS transport limits: connection and stream caps', () => {
  it('refuses connections over the cap with 503 server_busy (HTTP/2 and 1.1), bounded', async () => {
    const f = await start({ headerMs: 3000, idleMs: 20_000 }, { maxConnections: 4 });
    const sessions: http2.ClientHttp2Session[] = [];
    const sockets: net.Socket[] = [];
    try {
      const get = (session: http2.ClientHttp2Session, path: string) =>
        new Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }>(
          (resolve, reject) => {
            const stream = session.request({ ':method': 'GET', ':path': path });
            let body = '';
            let headers: http2.IncomingHttpHeaders = {};
            stream.setEncoding('utf8');
            stream.on('response', (h) => {
              headers = h;
            });
            stream.on('data', (d: string) => {
              body += d;
            });
            stream.on('end', () => resolve({ status: Number(headers[':status']), body, headers }));
            stream.on('error', reject);
          },
        );
      for (let i = 0; i < 4; i++) {
        const s = http2.connect(`https://127.0.0.1:${f.port}`, tlsOptions(f, 'h2'));
        s.on('error', () => undefined);
        sessions.push(s);
        expect((await get(s, '/')).status).toBe(200);
      }
      expect(f.server.connectionCount()).toBe(4);

      // The fifth connection is told so, over HTTP/2 and over HTTP/1.1, with a JSON code.
      const fifth = http2.connect(`https://127.0.0.1:${f.port}`, tlsOptions(f, 'h2'));
      fifth.on('error', () => undefined);
      const busy = await get(fifth, '/');
      expect(busy.status).toBe(503);
      expect(JSON.parse(busy.body)).toEqual({ err: 'server_busy' });
      expect(busy.headers['retry-after']).toBe('1');
      fifth.destroy();

      const h1 = await rawTls(f, 'http/1.1');
      h1.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await Promise.race([h1.closed, Bun.sleep(5000)]);
      const text = h1.received();
      expect(text.startsWith('HTTP/1.1 503')).toBe(true);
      expect(text.toLowerCase()).toContain('content-type: application/json');
      expect(text.endsWith('{"err":"server_busy"}')).toBe(true);
      expect(f.calls).toHaveLength(4);

      // A flood of idle TCP connections (no handshake) is held to the cap plus a few refusal
      // slots; the rest are closed at once.
      for (let i = 0; i < 120; i++) {
        const s = net.connect(f.port, '127.0.0.1');
        s.on('error', () => undefined);
        sockets.push(s);
      }
      await Bun.sleep(500);
      expect(f.server.connectionCount()).toBeLessThanOrEqual(4 + 32);
      const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
      expect(open).toBeLessThanOrEqual(4 + 32);

      // Once connections go, new ones are served again.
      for (const s of sockets) s.destroy();
      sessions.pop()?.destroy();
      await until(() => f.server.connectionCount() <= 3, 5000, 'connections to close');
      const again = http2.connect(`https://127.0.0.1:${f.port}`, tlsOptions(f, 'h2'));
      again.on('error', () => undefined);
      sessions.push(again);
      expect((await get(again, '/')).status).toBe(200);
    } finally {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      await f.server.close();
    }
  }, 20_000);

  it('refuses HTTP/2 streams over the per-connection cap', async () => {
    const f = await start({ idleMs: 20_000 }, { maxConcurrentStreams: 2 });
    try {
      const session = http2.connect(`https://127.0.0.1:${f.port}`, tlsOptions(f, 'h2'));
      session.on('error', () => undefined);
      const outcomes = Array.from(
        { length: 5 },
        () =>
          new Promise<number | string>((resolve) => {
            const stream = session.request({ ':method': 'GET', ':path': '/hold' });
            stream.resume();
            stream.on('response', (h) => resolve(Number(h[':status'])));
            stream.on('close', () => resolve(`rst ${stream.rstCode}`));
          }),
      );
      await until(() => f.calls.length >= 2, 5000, 'two held streams');
      await Bun.sleep(300);
      expect(f.calls.length).toBe(2);
      f.release();
      const results = await Promise.all(outcomes);
      // Two served; three refused (by the server with REFUSED_STREAM, or by a client that
      // honours the advertised limit), none of them run.
      expect(session.remoteSettings.maxConcurrentStreams).toBe(2);
      expect(results.filter((r) => r === 200)).toHaveLength(2);
      expect(results.filter((r) => r !== 200)).toHaveLength(3);
      expect(f.calls).toHaveLength(2);
      session.destroy();

      // Our client retries a refused stream, so its callers see no error.
      const client = createMtlsClient({
        source: await createStaticSource(PILOT, { authority: f.pki.root }),
        authorizer: authorizeId(NEXUS),
        baseUrl: `https://127.0.0.1:${f.port}`,
      });
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => client.request('/', { method: 'GET' })),
      );
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
      await client.close();
    } finally {
      f.release();
      await f.server.close();
    }
  }, 20_000);

  it('answers an HTTP/1.1 header block over the cap with 431 and a JSON code', async () => {
    const f = await start({}, undefined, 4096);
    try {
      const c = await rawTls(f, 'http/1.1');
      c.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
      await until(() => c.received().includes('}'), 5000, 'the refusal');
      expect(c.received().startsWith('HTTP/1.1 431')).toBe(true);
      expect(c.received().endsWith('{"err":"api_bad_request"}')).toBe(true);
      expect(f.calls).toEqual([]);
      c.socket.destroy();
    } finally {
      await f.server.close();
    }
  }, 20_000);
});
