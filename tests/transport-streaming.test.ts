/**
 * Streamed responses through the mTLS transport (src/runtime/tls/bridge.ts `writeResponse`), over
 * real loopback sockets with real certificates, HTTP/2 and HTTP/1.1: a Server-Sent Events body
 * (`Content-Type: text/event-stream`) and an Elysia-style one (`Transfer-Encoding: chunked`)
 * reach the client chunk by chunk, each before the body ends; a stream outlives the request
 * timeout; a client that goes away stops the producer.
 *
 * No timing assertions: every later chunk is produced only after the test has seen the one
 * before it (a gate the test opens), so a chunk can only have arrived early, never by luck.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import http2 from 'node:http2';
import https from 'node:https';
import { authorizeMemberOf } from '../src/core/spiffe/authorizer.ts';
import { toPem } from '../src/runtime/tls/material.ts';
import { createMtlsServer, type MtlsServer } from '../src/runtime/tls/server.ts';
import { createTestPki, type TestPki } from './support/cert-factory.ts';
import { createStaticSource } from './support/static-source.ts';

const TD = 'spike.ist';
const NEXUS = `spiffe://${TD}/spike/nexus`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;
const REQUEST_MS = 300;

/** One gate per stream: the producer waits on it before each chunk after the first. */
class Gate {
  #open: (() => void) | undefined;
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#open = resolve;
    });
  }
  open(): void {
    const open = this.#open;
    this.#open = undefined;
    open?.();
  }
}

const gates = new Map<string, Gate>();
const cancelled: string[] = [];

/** Three events, the 2nd and 3rd each waiting for the gate of `id`; then the body ends. */
function events(id: string, headers: Record<string, string>): Response {
  const gate = new Gate();
  gates.set(id, gate);
  const enc = new TextEncoder();
  let n = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (n > 0) await gate.wait();
      if (n === 3) {
        controller.close();
        return;
      }
      controller.enqueue(enc.encode(`data: ${n++}\n\n`));
    },
    cancel() {
      cancelled.push(id);
    },
  });
  return new Response(body, { headers });
}

let pki: TestPki;
let server: MtlsServer;
let port: number;
let tlsOptions: { ca: string; cert: string; key: string };

beforeAll(async () => {
  pki = await createTestPki({ trustDomain: TD });
  const pilot = await pki.issue(PILOT);
  const source = await createStaticSource(NEXUS, { authority: pki.root });
  server = createMtlsServer({
    source,
    authorizer: authorizeMemberOf(TD),
    timeouts: { requestMs: REQUEST_MS },
    handler: (request) => {
      const url = new URL(request.url);
      const id = url.searchParams.get('id') ?? '';
      if (url.pathname === '/sse') {
        return events(id, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      }
      if (url.pathname === '/chunked') {
        return events(id, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
      }
      return new Response('not found', { status: 404 });
    },
  });
  ({ port } = await server.listen(0));
  tlsOptions = {
    ca: toPem('CERTIFICATE', pki.rootDer),
    cert: pilot.chain.map((c) => toPem('CERTIFICATE', c)).join(''),
    key: toPem('PRIVATE KEY', pilot.privateKey),
  };
});

afterAll(async () => {
  await server.close();
});

/** What a client saw of one streamed response. */
interface Seen {
  status: number;
  contentType: string | undefined;
  /** Each chunk as received, tagged with whether the response had ended at that moment. */
  chunks: { text: string; ended: boolean }[];
  ended: boolean;
}

/**
 * Reads a streamed response; `delayMs` after each chunk it opens the stream's gate (the server
 * produces the next chunk only then). After `stopAfter` chunks the client goes away instead.
 */
function readStream(
  proto: 'h2' | 'h1',
  path: string,
  id: string,
  { stopAfter = Infinity, delayMs = 10 } = {},
) {
  return new Promise<Seen>((resolve, reject) => {
    const seen: Seen = { status: 0, contentType: undefined, chunks: [], ended: false };
    let stop = () => {};
    const onChunk = (chunk: Buffer) => {
      seen.chunks.push({ text: chunk.toString('utf8'), ended: seen.ended });
      if (seen.chunks.length >= stopAfter) {
        stop();
        resolve(seen);
        return;
      }
      // Later chunks are produced only once this one was seen; wait a little so that a
      // transport that held chunks back would have merged them.
      setTimeout(() => gates.get(id)?.open(), delayMs);
    };
    const onEnd = () => {
      seen.ended = true;
      resolve(seen);
    };
    if (proto === 'h2') {
      const session = http2.connect(`https://127.0.0.1:${port}`, {
        ...tlsOptions,
        checkServerIdentity: () => undefined,
      });
      session.on('error', reject);
      const stream = session.request({ ':method': 'GET', ':path': `${path}?id=${id}` });
      stop = () => session.destroy();
      stream.on('response', (h) => {
        seen.status = Number(h[':status']);
        seen.contentType = h['content-type'] as string | undefined;
      });
      stream.on('data', onChunk);
      stream.on('end', () => {
        onEnd();
        session.close();
      });
      stream.on('error', reject);
      return;
    }
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: 'GET',
        path: `${path}?id=${id}`,
        ...tlsOptions,
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        seen.status = res.statusCode ?? 0;
        seen.contentType = res.headers['content-type'];
        res.on('data', onChunk);
        res.on('end', onEnd);
      },
    );
    stop = () => req.destroy();
    req.on('error', (e) => {
      if (seen.chunks.length < stopAfter) reject(e);
    });
    req.end();
  });
}

describe('streamed responses flush each chunk before the body ends', () => {
  for (const proto of ['h2', 'h1'] as const) {
    for (const path of ['/sse', '/chunked']) {
      it(`${proto} ${path}: every event arrives on its own, while the response is open`, async () => {
        const id = `${proto}${path}`;
        const seen = await readStream(proto, path, id);
        expect(seen.status).toBe(200);
        expect(seen.ended).toBe(true);
        expect(seen.chunks.map((c) => c.text)).toEqual([
          'data: 0\n\n',
          'data: 1\n\n',
          'data: 2\n\n',
        ]);
        // Each chunk was seen before the response ended (the next one waited for it).
        expect(seen.chunks.every((c) => !c.ended)).toBe(true);
        if (path === '/sse') expect(seen.contentType).toBe('text/event-stream');
      });
    }

    it(`${proto}: a stream outlives the request timeout`, async () => {
      // Each event comes twice the request timeout after the one before.
      const seen = await readStream(proto, '/sse', `${proto}-long`, { delayMs: 2 * REQUEST_MS });
      expect(seen.ended).toBe(true);
      expect(seen.chunks.map((c) => c.text).join('')).toBe('data: 0\n\ndata: 1\n\ndata: 2\n\n');
    });

    it(`${proto}: a client that goes away cancels the body`, async () => {
      const id = `${proto}-gone`;
      const seen = await readStream(proto, '/sse', id, { stopAfter: 1 });
      expect(seen.chunks.map((c) => c.text)).toEqual(['data: 0\n\n']);
      for (let i = 0; i < 100 && !cancelled.includes(id); i++) await Bun.sleep(20);
      expect(cancelled).toContain(id);
    });
  }
});
