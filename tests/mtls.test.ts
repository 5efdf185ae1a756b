/**
 * mTLS transport (src/runtime/tls/server.ts, client.ts) over real loopback sockets with real
 * certificates: docs/spiffe.md §5, §8 rows 1–12 for peers; docs/spike-api.md §2, §12.
 *
 * Every server's handler records each call, so "rejected before any handler runs" is checked by
 * the record staying empty, not by the status a client happens to see. Bad peers are built with
 * tests/support/cert-factory.ts and connect with raw `node:http2` / `node:https` clients, so the
 * server is judged on what any client could send.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import {
  authorizeId,
  authorizeMatching,
  authorizeMemberOf,
  authorizeOneOf,
} from '../src/core/spiffe/authorizer.ts';
import { createMtlsClient } from '../src/runtime/tls/client.ts';
import { toPem } from '../src/runtime/tls/material.ts';
import { createMtlsServer, type MtlsServer } from '../src/runtime/tls/server.ts';
import { createTestPki, type TestPki } from './support/cert-factory.ts';
import { createStaticSource, mintSvid, type StaticSource } from './support/static-source.ts';

const TD = 'spike.ist';
const NEXUS = `spiffe://${TD}/spike/nexus`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;
const DENIED = `spiffe://${TD}/denied/workload`;

interface Peer {
  readonly chain: readonly Uint8Array[];
  readonly privateKey: Uint8Array;
}

interface Outcome {
  status?: number;
  body?: string;
  error?: string;
}

interface Call {
  peer: string | undefined;
  url: string;
  headers: Record<string, string>;
}

const pem = (chain: readonly Uint8Array[]) => chain.map((c) => toPem('CERTIFICATE', c)).join('');

/** One HTTP/2 request with an arbitrary client certificate (or none); never throws. */
function h2Request(
  port: number,
  ca: readonly Uint8Array[],
  peer: Peer | undefined,
  headers: Record<string, string> = {},
  body = 'ping',
): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Outcome) => {
      clearTimeout(timer);
      session.destroy();
      resolve(o);
    };
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca: ca.map((c) => toPem('CERTIFICATE', c)),
      ...(peer && { cert: pem(peer.chain), key: toPem('PRIVATE KEY', peer.privateKey) }),
      checkServerIdentity: () => undefined,
    });
    const timer = setTimeout(() => done({ error: 'timeout' }), 5000);
    session.on('error', (e) => done({ error: String((e as Error).message) }));
    const stream = session.request({ ':method': 'POST', ':path': '/echo', ...headers });
    let status = 0;
    let text = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (d: string) => {
      text += d;
    });
    stream.on('end', () => done(status === 0 ? { error: 'no response' } : { status, body: text }));
    stream.on('error', (e) => done({ error: String((e as Error).message) }));
    stream.on('close', () => {
      if (status === 0) done({ error: 'closed without response' });
    });
    stream.end(body);
  });
}

/** One HTTP/1.1 request (`node:https`, as the Go SDK speaks it) with a client certificate. */
function h1Request(
  port: number,
  ca: readonly Uint8Array[],
  peer: Peer | undefined,
  headers: Record<string, string> = {},
  body = 'ping',
): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Outcome) => {
      clearTimeout(timer);
      resolve(o);
    };
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/echo',
        headers,
        ca: ca.map((c) => toPem('CERTIFICATE', c)),
        ...(peer && { cert: pem(peer.chain), key: toPem('PRIVATE KEY', peer.privateKey) }),
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (e) => done({ error: e.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ error: 'timeout' });
    }, 5000);
    req.on('error', (e) => done({ error: e.message }));
    req.end(body);
  });
}

const PROTOCOLS = [
  ['HTTP/2', h2Request],
  ['HTTP/1.1', h1Request],
] as const;

describe('mTLS server: who gets in', () => {
  let pki: TestPki;
  let other: TestPki;
  let foreign: TestPki;
  let source: StaticSource;
  let server: MtlsServer;
  let port: number;
  const calls: Call[] = [];
  const errors: unknown[] = [];

  beforeAll(async () => {
    [pki, other, foreign] = await Promise.all([
      createTestPki({ trustDomain: TD }),
      createTestPki({ trustDomain: 'other.org' }),
      createTestPki({ trustDomain: 'foreign.org' }),
    ]);
    // Federated with other.org: the TLS stack gets the union of both roots as `ca`.
    source = await createStaticSource(NEXUS, {
      authority: pki.root,
      extraBundles: new Map([['other.org', [other.rootDer]]]),
    });
    server = createMtlsServer({
      source,
      authorizer: authorizeMatching((id) => !id.path.startsWith('/denied'), 'not /denied'),
      handler: async (request) => {
        const headers: Record<string, string> = {};
        request.headers.forEach((v, k) => {
          headers[k] = v;
        });
        const peer = server.peerOf(request);
        calls.push({ peer, url: request.url, headers });
        const body = await request.text();
        return new Response(`${peer ?? 'none'}|${body}`, {
          headers: { 'content-type': 'text/plain' },
        });
      },
      onError: (e) => errors.push(e),
    });
    ({ port } = await server.listen(0));
  });

  afterAll(async () => {
    await server.close();
  });

  const roots = () => [pki.rootDer];

  for (const [name, send] of PROTOCOLS) {
    it(`${name}: an allowed peer's SPIFFE ID reaches the handler; identity headers are ignored`, async () => {
      const svid = await pki.issue(PILOT);
      calls.length = 0;
      const out = await send(port, roots(), svid, {
        'x-spiffe-id': 'spiffe://spike.ist/spike/nexus',
        'x-forwarded-client-cert': 'URI=spiffe://spike.ist/spike/nexus',
        'x-spike-peer': 'spiffe://spike.ist/spike/nexus',
      });
      expect(out).toEqual({ status: 200, body: `${PILOT}|ping` });
      expect(calls).toHaveLength(1);
      expect(calls[0]!.peer).toBe(PILOT);
      // The forged header arrives as a plain header and changes nothing.
      expect(calls[0]!.headers['x-spiffe-id']).toBe('spiffe://spike.ist/spike/nexus');
      // The origin is fixed: the client's Host / :authority never shapes the URL the app routes on.
      expect(calls[0]!.url).toBe('https://localhost/echo');
    });

    it(`${name}: a peer chained through an intermediate is accepted`, async () => {
      const svid = await pki.issue(PILOT, { via: 'intermediate' });
      expect(svid.chain).toHaveLength(2);
      calls.length = 0;
      const out = await send(port, roots(), svid);
      expect(out.status).toBe(200);
      expect(calls.map((c) => c.peer)).toEqual([PILOT]);
    });

    it(`${name}: a federated peer (other.org, its own bundle) is accepted`, async () => {
      const svid = await other.issue('spiffe://other.org/app');
      calls.length = 0;
      const out = await send(port, roots(), svid);
      expect(out.status).toBe(200);
      expect(calls.map((c) => c.peer)).toEqual(['spiffe://other.org/app']);
    });

    const bad: [string, () => Promise<Peer | undefined>][] = [
      ['no client certificate', async () => undefined],
      ['a foreign trust domain', () => foreign.issue('spiffe://foreign.org/app')],
      ['an expired certificate', () => pki.bad.expiredLeaf()],
      ['a not-yet-valid certificate', () => pki.bad.notYetValidLeaf()],
      ['a CA leaf (cA = true)', () => pki.bad.caLeaf()],
      ['two URI SANs', () => pki.bad.twoUriSans()],
      ['no URI SAN (DNS only)', () => pki.bad.dnsOnlySan()],
      ['a root-path ID', () => pki.bad.rootPathId()],
      ['a leaf with keyCertSign', () => pki.bad.leafWithKeyCertSign()],
      // (A leaf without digitalSignature cannot be tested here: the client's own TLS stack
      // refuses to sign with it, KEY_USAGE_BIT_INCORRECT; verifyPeerX509Svid's tests cover it.)
      ['a non-CA intermediate', () => pki.bad.intermediateNotCa()],
      ['a self-signed leaf with a correct ID', () => pki.bad.selfSignedLeaf()],
      // Row 10: the union `ca` lets TLS accept other.org's root for a spike.ist ID.
      ['a spike.ist ID signed by the other.org root', () => other.issue(`spiffe://${TD}/spoof`)],
      ['an ID the authorizer refuses', () => pki.issue(DENIED)],
    ];
    for (const [what, make] of bad) {
      it(`${name}: rejects ${what} before any handler runs`, async () => {
        const peer = await make();
        calls.length = 0;
        const out = await send(port, roots(), peer);
        expect(out.status).toBeUndefined();
        expect(out.error).toBeDefined();
        expect(calls).toEqual([]);
      });
    }
  }

  it('never reports a rejected peer as a handler error', () => {
    expect(errors).toEqual([]);
  });

  it('keeps refusing a rejected connection: a second request on it gets no response', async () => {
    const peer = await pki.bad.twoUriSans();
    calls.length = 0;
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca: toPem('CERTIFICATE', pki.rootDer),
      cert: pem(peer.chain),
      key: toPem('PRIVATE KEY', peer.privateKey),
      checkServerIdentity: () => undefined,
    });
    session.on('error', () => undefined);
    const statuses: (number | string)[] = [];
    await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<void>((resolve) => {
            let s: http2.ClientHttp2Stream;
            try {
              s = session.request({ ':method': 'POST', ':path': '/echo' });
            } catch {
              statuses.push('not sent');
              resolve();
              return;
            }
            s.on('response', (h) => statuses.push(Number(h[':status'])));
            s.on('error', () => undefined);
            s.on('close', () => resolve());
            s.end('x');
            s.resume();
          }),
      ),
    );
    session.destroy();
    expect(statuses.filter((s) => typeof s === 'number')).toEqual([]);
    expect(calls).toEqual([]);
  });
});

describe('mTLS server: requests and responses', () => {
  let pki: TestPki;
  let source: StaticSource;
  let server: MtlsServer;
  let port: number;
  let pilot: Peer;
  const aborted: string[] = [];
  const errors: unknown[] = [];

  beforeAll(async () => {
    pki = await createTestPki({ trustDomain: TD });
    pilot = await pki.issue(PILOT);
    source = await createStaticSource(NEXUS, { authority: pki.root });
    server = createMtlsServer({
      source,
      authorizer: authorizeMemberOf(TD),
      timeouts: { requestMs: 500 },
      maxHeaderSize: 4096,
      onError: (e) => errors.push(e),
      handler: async (request) => {
        const url = new URL(request.url);
        request.signal.addEventListener('abort', () => aborted.push(url.pathname));
        switch (url.pathname) {
          case '/first-chunk': {
            // Answer after the first chunk, while the client is still sending: proves the body
            // is streamed to the handler, not buffered until its end.
            const reader = request.body!.getReader();
            const { value } = await reader.read();
            await reader.cancel();
            return new Response(`got ${value?.byteLength ?? 0}`, { status: 400 });
          }
          case '/count': {
            let n = 0;
            for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
              n += chunk.byteLength;
            }
            return Response.json({ n, method: request.method, query: url.search });
          }
          case '/stream': {
            const enc = new TextEncoder();
            let i = 0;
            const body = new ReadableStream<Uint8Array>({
              pull(controller) {
                if (i === 3) controller.close();
                else controller.enqueue(enc.encode(`part${i++};`));
              },
            });
            return new Response(body, {
              status: 201,
              headers: { 'x-custom': 'yes', connection: 'keep-alive' },
            });
          }
          case '/throws':
            throw new Error('handler bug with secret-looking text');
          case '/hang':
            return new Promise<Response>(() => undefined);
          case '/quick':
            return new Response('quick');
          default:
            return new Response('not found', { status: 404 });
        }
      },
    });
    ({ port } = await server.listen(0));
  });

  afterAll(async () => {
    await server.close();
  });

  const connect = () =>
    http2.connect(`https://127.0.0.1:${port}`, {
      ca: toPem('CERTIFICATE', pki.rootDer),
      cert: pem(pilot.chain),
      key: toPem('PRIVATE KEY', pilot.privateKey),
      checkServerIdentity: () => undefined,
    });

  it('streams the request body to the handler (answer before the upload ends)', async () => {
    const session = connect();
    const stream = session.request({ ':method': 'POST', ':path': '/first-chunk' });
    stream.write(new Uint8Array(1000));
    const [status, body] = await new Promise<[number, string]>((resolve) => {
      let s = 0;
      let text = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => {
        s = Number(h[':status']);
      });
      stream.on('data', (d: string) => {
        text += d;
      });
      stream.on('end', () => resolve([s, text]));
      stream.on('error', () => resolve([s, text]));
    });
    // The client never ended its upload, yet the handler answered.
    expect(status).toBe(400);
    expect(body).toBe('got 1000');
    session.destroy();
  });

  it('delivers a large body completely, with method and query', async () => {
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    const big = new Uint8Array(3 * 1024 * 1024).fill(7);
    const res = await client.request('/count?action=list', { method: 'POST', body: big });
    expect(res.status).toBe(200);
    expect(JSON.parse(new TextDecoder().decode(res.body))).toEqual({
      n: big.byteLength,
      method: 'POST',
      query: '?action=list',
    });
    await client.close();
  });

  it('streams the response body and drops connection-specific headers (HTTP/2 and 1.1)', async () => {
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    const res = await client.request('/stream', { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers['x-custom']).toBe('yes');
    expect(res.headers.connection).toBeUndefined();
    expect(new TextDecoder().decode(res.body)).toBe('part0;part1;part2;');
    await client.close();

    const h1 = await new Promise<Outcome>((resolve) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/stream',
          ca: toPem('CERTIFICATE', pki.rootDer),
          cert: pem(pilot.chain),
          key: toPem('PRIVATE KEY', pilot.privateKey),
          checkServerIdentity: () => undefined,
          agent: false,
        },
        (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => {
            text += d;
          });
          r.on('end', () => resolve({ status: r.statusCode, body: text }));
        },
      );
      req.on('error', (e) => resolve({ error: e.message }));
      req.end();
    });
    expect(h1).toEqual({ status: 201, body: 'part0;part1;part2;' });
  });

  it('refuses a header block over maxHeaderSize before the handler (HTTP/2 and 1.1)', async () => {
    const big = { 'x-big': 'a'.repeat(8000) };
    const h2 = await h2Request(port, [pki.rootDer], pilot, { ':path': '/count', ...big });
    expect(h2.status).toBeUndefined();
    const h1 = await h1Request(port, [pki.rootDer], pilot, big);
    expect(h1.status).toBe(431);
    // Just under the limit is fine on both.
    const small = { 'x-big': 'a'.repeat(3000) };
    expect(
      (await h2Request(port, [pki.rootDer], pilot, { ':path': '/count', ...small })).status,
    ).toBe(200);
    const ok = await h1Request(port, [pki.rootDer], pilot, small);
    expect(ok.status).toBe(404); // h1Request posts to /echo, which this handler does not route
  });

  it('answers a throwing handler with a bare 500 and reports the error', async () => {
    errors.length = 0;
    const out = await h2Request(port, [pki.rootDer], pilot, { ':path': '/throws' });
    expect(out).toEqual({ status: 500, body: '' });
    expect(errors).toHaveLength(1);
  });

  it('does not abort the signal of a request that completed normally', async () => {
    aborted.length = 0;
    const out = await h2Request(port, [pki.rootDer], pilot, { ':path': '/quick' });
    expect(out).toEqual({ status: 200, body: 'quick' });
    await Bun.sleep(50);
    expect(aborted).toEqual([]);
  });

  it('cuts a request that exceeds the request timeout and aborts its signal', async () => {
    aborted.length = 0;
    const started = Date.now();
    const out = await h2Request(port, [pki.rootDer], pilot, { ':path': '/hang' });
    expect(out.status).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(aborted).toContain('/hang');
  });
});

describe('mTLS server: connection timeouts', () => {
  it('drops a connection that sends no request within the header timeout, and idle ones', async () => {
    const pki = await createTestPki({ trustDomain: TD });
    const pilot = await pki.issue(PILOT);
    const source = await createStaticSource(NEXUS, { authority: pki.root });
    let calls = 0;
    const server = createMtlsServer({
      source,
      authorizer: authorizeMemberOf(TD),
      timeouts: { headerMs: 300, idleMs: 400 },
      handler: () => {
        calls++;
        return new Response('ok');
      },
    });
    const { port } = await server.listen(0);
    try {
      // A verified TLS connection that never sends a request.
      const started = Date.now();
      const closedAfter = await new Promise<number>((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca: toPem('CERTIFICATE', pki.rootDer),
          cert: pem(pilot.chain),
          key: toPem('PRIVATE KEY', pilot.privateKey),
          ALPNProtocols: ['http/1.1'],
          checkServerIdentity: () => undefined,
        });
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(Date.now() - started));
        setTimeout(() => reject(new Error('not closed')), 5000);
      });
      expect(closedAfter).toBeGreaterThanOrEqual(250);
      expect(closedAfter).toBeLessThan(3000);

      // An HTTP/2 session that goes idle after one request is closed by the server; the mTLS
      // client reconnects transparently on the next request.
      const client = createMtlsClient({
        source: await createStaticSource(PILOT, { authority: pki.root }),
        authorizer: authorizeId(NEXUS),
        baseUrl: `https://127.0.0.1:${port}`,
      });
      expect((await client.request('/', { method: 'POST' })).status).toBe(200);
      await Bun.sleep(900);
      expect((await client.request('/', { method: 'POST' })).status).toBe(200);
      expect(client.connectionCount()).toBe(2);
      expect(calls).toBe(2);
      await client.close();
    } finally {
      await server.close();
    }
  });
});

describe('mTLS rotation and withdrawal (static source)', () => {
  let pki: TestPki;
  let other: TestPki;
  let serverSource: StaticSource;
  let clientSource: StaticSource;
  let server: MtlsServer;
  let port: number;
  let calls: (string | undefined)[];

  beforeAll(async () => {
    [pki, other] = await Promise.all([
      createTestPki({ trustDomain: TD }),
      createTestPki({ trustDomain: 'other.org' }),
    ]);
    serverSource = await createStaticSource(NEXUS, {
      authority: pki.root,
      extraBundles: new Map([['other.org', [other.rootDer]]]),
    });
    clientSource = await createStaticSource(PILOT, { authority: pki.root });
    calls = [];
    server = createMtlsServer({
      source: serverSource,
      authorizer: authorizeMatching(() => true, 'any'),
      handler: async (request) => {
        calls.push(server.peerOf(request));
        const wait = new URL(request.url).searchParams.get('wait');
        if (wait !== null) await Bun.sleep(Number(wait));
        return new Response('ok');
      },
    });
    ({ port } = await server.listen(0));
  });

  afterAll(async () => {
    await server.close();
  });

  it('new connections see the rotated server certificate; open ones keep working', async () => {
    const client = createMtlsClient({
      source: clientSource,
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    const firstSerial = serverSource.current()!.svids[0]!.serial;
    expect((await client.request('/', { method: 'POST' })).status).toBe(200);
    expect(client.peerCertificateSerial()).toBe(firstSerial);

    const rotated = await serverSource.rotate();
    const newSerial = rotated.svids[0]!.serial;
    expect(newSerial).not.toBe(firstSerial);
    // The pooled session predates the rotation: still served, still the old certificate.
    expect((await client.request('/', { method: 'POST' })).status).toBe(200);
    expect(client.peerCertificateSerial()).toBe(firstSerial);
    expect(client.connectionCount()).toBe(1);

    const fresh = createMtlsClient({
      source: clientSource,
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    expect((await fresh.request('/', { method: 'POST' })).status).toBe(200);
    expect(fresh.peerCertificateSerial()).toBe(newSerial);
    await fresh.close();
    await client.close();
  });

  it('after a rotation, clients without a certificate are still refused and HTTP/1.1 still works', async () => {
    await serverSource.rotate();
    calls.length = 0;
    expect((await h2Request(port, [pki.rootDer], undefined)).error).toBeDefined();
    expect((await h1Request(port, [pki.rootDer], undefined)).error).toBeDefined();
    const svid = await pki.issue(PILOT);
    expect((await h1Request(port, [pki.rootDer], svid)).status).toBe(200);
    expect((await h2Request(port, [pki.rootDer], svid)).status).toBe(200);
    expect(calls).toEqual([PILOT, PILOT]);
  });

  it('a client rotation opens a new session; the in-flight request still completes', async () => {
    const client = createMtlsClient({
      source: clientSource,
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    expect((await client.request('/', { method: 'POST' })).status).toBe(200);
    const slow = client.request('/?wait=300', { method: 'POST' });
    await Bun.sleep(50);
    await clientSource.rotate();
    const after = await client.request('/', { method: 'POST' });
    expect(after.status).toBe(200);
    expect((await slow).status).toBe(200);
    expect(client.connectionCount()).toBe(2);
    await client.close();
  });

  it('a rotation while the connection is still being set up fails no request', async () => {
    for (const delayMs of [0, 1, 5]) {
      const client = createMtlsClient({
        source: clientSource,
        authorizer: authorizeId(NEXUS),
        baseUrl: `https://127.0.0.1:${port}`,
      });
      const next = {
        svids: [await mintSvid(pki.root, PILOT)],
        bundles: clientSource.current()!.bundles,
      };
      const pending = Array.from({ length: 5 }, () => client.request('/', { method: 'POST' }));
      await Bun.sleep(delayMs);
      clientSource.set(next);
      const results = await Promise.all(pending);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect((await client.request('/', { method: 'POST' })).status).toBe(200);
      await client.close();
    }
  });

  it('an identical re-send keeps the pooled session', async () => {
    const client = createMtlsClient({
      source: clientSource,
      authorizer: authorizeId(NEXUS),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    await client.request('/', { method: 'POST' });
    clientSource.set(clientSource.current()!);
    await client.request('/', { method: 'POST' });
    expect(client.connectionCount()).toBe(1);
    await client.close();
  });

  it('a dropped federated bundle refuses its peers on new connections', async () => {
    const app = await other.issue('spiffe://other.org/app');
    expect((await h2Request(port, [pki.rootDer], app)).status).toBe(200);
    const current = serverSource.current()!;
    serverSource.set({ svids: current.svids, bundles: new Map([[TD, [pki.rootDer]]]) });
    calls.length = 0;
    expect((await h2Request(port, [pki.rootDer], app)).error).toBeDefined();
    expect(calls).toEqual([]);
    serverSource.set(current);
    expect((await h2Request(port, [pki.rootDer], app)).status).toBe(200);
  });

  it('fails closed while the SVIDs are withdrawn, and serves again after a new one', async () => {
    const svid = await pki.issue(PILOT);
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca: toPem('CERTIFICATE', pki.rootDer),
      cert: pem(svid.chain),
      key: toPem('PRIVATE KEY', svid.privateKey),
      checkServerIdentity: () => undefined,
    });
    session.on('error', () => undefined);
    const ask = () =>
      new Promise<number | string>((resolve) => {
        try {
          const s = session.request({ ':method': 'POST', ':path': '/' });
          s.on('response', (h) => resolve(Number(h[':status'])));
          s.on('error', () => resolve('error'));
          s.on('close', () => resolve('closed'));
          s.end();
          s.resume();
        } catch {
          resolve('not sent');
        }
      });
    expect(await ask()).toBe(200);
    serverSource.withdraw();
    calls.length = 0;
    // An open connection gets no answer, and a new one is refused.
    expect(typeof (await ask())).toBe('string');
    expect((await h2Request(port, [pki.rootDer], svid)).error).toBeDefined();
    expect((await h1Request(port, [pki.rootDer], svid)).error).toBeDefined();
    expect(calls).toEqual([]);
    session.destroy();

    await serverSource.rotate();
    expect((await h2Request(port, [pki.rootDer], svid)).status).toBe(200);
    expect(calls).toEqual([PILOT]);
  });
});

describe('mTLS client: server checks', () => {
  let pki: TestPki;
  let source: StaticSource;
  let server: MtlsServer;
  let port: number;
  let calls = 0;

  beforeAll(async () => {
    pki = await createTestPki({ trustDomain: TD });
    source = await createStaticSource(NEXUS, { authority: pki.root });
    server = createMtlsServer({
      source,
      authorizer: authorizeMemberOf(TD),
      handler: () => {
        calls++;
        return new Response('ok');
      },
    });
    ({ port } = await server.listen(0));
  });

  afterAll(async () => {
    await server.close();
  });

  it('reuses one connection for many requests and reports the server ID', async () => {
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeOneOf(NEXUS, `spiffe://${TD}/spike/keeper`),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    const results = await Promise.all(
      Array.from({ length: 10 }, () => client.request('/', { method: 'POST' })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(client.connectionCount()).toBe(1);
    expect(client.peerId()).toBe(NEXUS);
    await client.close();
  });

  it('refuses a server whose ID the authorizer does not allow, before sending the request', async () => {
    calls = 0;
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeId(`spiffe://${TD}/spike/keeper`),
      baseUrl: `https://127.0.0.1:${port}`,
    });
    const error = await client.request('/', { method: 'POST' }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('svid_unauthorized');
    expect(calls).toBe(0);
    await client.close();
  });

  it('refuses a server of a trust domain it has no bundle for', async () => {
    const foreign = await createTestPki({ trustDomain: 'foreign.org' });
    const foreignSource = await createStaticSource(PILOT, { authority: foreign.root });
    const client = createMtlsClient({
      source: foreignSource,
      authorizer: authorizeMemberOf(TD),
      baseUrl: `https://127.0.0.1:${port}`,
      timeoutMs: 5000,
    });
    const error = await client.request('/', { method: 'POST' }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBeDefined();
    await client.close();
  });

  it('refuses a server presenting a leaf with two URI SANs', async () => {
    const bad = await pki.bad.twoUriSans();
    const badSource = await createStaticSource(NEXUS, { authority: pki.root });
    badSource.set({
      svids: [
        {
          id: NEXUS,
          trustDomain: TD,
          chain: bad.chain,
          privateKey: bad.privateKey,
          hint: '',
          notAfter: bad.notAfter,
          serial: bad.serial,
        },
      ],
      bundles: new Map([[TD, [pki.rootDer]]]),
    });
    let badCalls = 0;
    const badServer = createMtlsServer({
      source: badSource,
      authorizer: authorizeMemberOf(TD),
      handler: () => {
        badCalls++;
        return new Response('ok');
      },
    });
    const { port: badPort } = await badServer.listen(0);
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeMemberOf(TD),
      baseUrl: `https://127.0.0.1:${badPort}`,
    });
    const error = await client.request('/', { method: 'POST' }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('svid_invalid');
    expect(badCalls).toBe(0);
    await client.close();
    await badServer.close();
  });

  it('reports an unreachable server as net_peer_connection', async () => {
    const client = createMtlsClient({
      source: await createStaticSource(PILOT, { authority: pki.root }),
      authorizer: authorizeMemberOf(TD),
      baseUrl: 'https://127.0.0.1:1',
    });
    const error = await client.request('/', { method: 'POST' }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('net_peer_connection');
    await client.close();
  });

  it('keeps the peer ID a WeakMap fact: a Request built elsewhere has none', () => {
    expect(
      server.peerOf(new Request('https://localhost/', { headers: { 'x-spiffe-id': NEXUS } })),
    ).toBeUndefined();
  });
});
