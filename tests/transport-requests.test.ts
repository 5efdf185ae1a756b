/**
 * What the transport hands the apps besides the Web `Request` (src/runtime/tls/server.ts
 * `rawPathOf`, `methodOf`), proven against a real Nexus process (`bun src/nexus/main.ts`, Vault
 * API on) over real mTLS sockets:
 * - Vault's `LIST` verb over HTTP/2 lists (issue 10 criterion 1), although a `Request` reports
 *   it as `GET`;
 * - a request target with `.` or `..` segments is refused with 400, over HTTP/2 and HTTP/1.1,
 *   and writes nothing (issue 11 finding 5), although a `Request` has normalised its URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import http2 from 'node:http2';
import tls from 'node:tls';
import { parseKeeperConfig } from '../src/keeper/config.ts';
import { parseNexusConfig } from '../src/nexus/config.ts';
import { tlsMaterialOf } from '../src/runtime/tls/material.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { type Cluster, type NexusClient, startCluster } from './support/cluster.ts';

let cluster: Cluster;
let pilot: NexusClient;
type Material = { cert: string; key: string; ca: string[] };
let material: Material;
let nexusMaterial: Material;
let port: number;

beforeAll(async () => {
  cluster = await startCluster({
    keepers: 2,
    threshold: 2,
    nexusEnv: {
      SPIKE_NEXUS_BACKEND_STORE: 'memory',
      SPIKE_NEXUS_VAULT_API: 'true',
      SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS: '7',
    },
    // The memory backend never calls its Keepers: keeper-1 sees only this test's connections.
    keeperEnv: { SPIKE_HTTP_SERVER_MAX_CONNECTIONS: '1' },
  });
  await cluster.waitReady(30_000);
  pilot = await cluster.client('pilot');
  const source = createX509Source({ address: cluster.issuer.addressFor('pilot') });
  material = tlsMaterialOf(await source.ready());
  await source.close();
  const nexusSource = createX509Source({ address: cluster.issuer.addressFor('nexus') });
  nexusMaterial = tlsMaterialOf(await nexusSource.ready());
  await nexusSource.close();
  port = Number(new URL(cluster.nexusUrl).port);
}, 60_000);

afterAll(async () => {
  await pilot?.close();
  await cluster?.close();
});

const tlsOptions = (m: Material = material) => ({
  ca: m.ca,
  cert: m.cert,
  key: m.key,
  // The test pins the issuer's bundle; the SAN check is not what is under test here.
  checkServerIdentity: () => undefined,
});

/** One HTTP/2 request with exactly this `:method` and `:path`. */
function h2(method: string, path: string, body?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, tlsOptions());
    session.on('error', reject);
    const stream = session.request({
      ':method': method,
      ':path': path,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    });
    let status = 0;
    let text = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => {
      text += c;
    });
    stream.on('end', () => {
      session.close();
      resolve({ status, body: text });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

/** One HTTP/1.1 request written byte for byte on a TLS socket (no client-side normalisation). */
function h1(method: string, path: string, body: string, to = port, m: Material = material) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: to,
      ...tlsOptions(m),
      ALPNProtocols: [],
    });
    let text = '';
    socket.on('secureConnect', () => {
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.on('error', reject);
  });
}

describe('the transport keeps what a Request loses', () => {
  it('LIST over HTTP/2 lists the folder (Vault Go client)', async () => {
    for (const name of ['a', 'b']) {
      const w = await h2(
        'POST',
        `/v1/secret/data/app/${name}`,
        JSON.stringify({ data: { k: name } }),
      );
      expect(w.status).toBe(200);
    }
    const listed = await h2('LIST', '/v1/secret/metadata/app');
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body).data.keys).toEqual(['a', 'b']);
    // The same path read with GET is the metadata read, not a list.
    const read = await h2('GET', '/v1/secret/metadata/app');
    expect(read.status).toBe(404);
  });

  it('refuses "." and ".." segments over HTTP/2 and HTTP/1.1 and writes nothing', async () => {
    const body = JSON.stringify({ path: 'dot/x', values: { k: 'v' } });
    const targets = [
      '/v1/store/./secrets',
      '/v1/store/x/../secrets',
      '/v1/store/%2e/secrets',
      '/v1/./store/secrets?action=get',
    ];
    for (const target of targets) {
      for (const send of [h2, h1]) {
        const answer = await send('POST', target, body);
        expect([target, answer.status]).toEqual([target, 400]);
        expect(JSON.parse(answer.body).err).toBe('api_bad_request');
      }
    }
    const listed = await pilot.post('/v1/store/secrets?action=list', {});
    expect(listed.status).toBe(200);
    expect(listed.json.keys ?? []).not.toContain('dot/x');
    // The exact path is served over both protocols.
    expect((await h2('POST', '/v1/store/secrets', body)).status).toBe(200);
    const get = await h1('POST', '/v1/store/secrets?action=get', JSON.stringify({ path: 'dot/x' }));
    expect([get.status, JSON.parse(get.body).data]).toEqual([200, { k: 'v' }]);
  });
});

describe('connection limits from the environment', () => {
  it('a bad value stops Nexus and the Keeper with one line naming the variable', () => {
    for (const [name, value] of [
      ['SPIKE_HTTP_SERVER_MAX_CONNECTIONS', '0'],
      ['SPIKE_HTTP_SERVER_MAX_CONNECTIONS', 'many'],
      ['SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS', '-1'],
    ] as const) {
      const env = { SPIKE_NEXUS_BACKEND_STORE: 'memory', [name]: value };
      for (const parse of [parseNexusConfig, parseKeeperConfig]) {
        expect(() => parse(env)).toThrow(`${name}: expected an integer from 1 to`);
      }
    }
    const ok = parseKeeperConfig({
      SPIKE_HTTP_SERVER_MAX_CONNECTIONS: '5',
      SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS: '9',
    }).serverLimits;
    expect(ok).toEqual({ maxConnections: 5, maxConcurrentStreams: 9 });
    expect(parseNexusConfig({ SPIKE_NEXUS_BACKEND_STORE: 'memory' }).serverLimits).toEqual({
      maxConnections: 1024,
      maxConcurrentStreams: 128,
    });
  });

  it('Nexus announces SPIKE_HTTP_SERVER_MAX_CONCURRENT_STREAMS in its HTTP/2 SETTINGS', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, tlsOptions());
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      expect(settings.maxConcurrentStreams).toBe(7);
    } finally {
      session.close();
    }
  });

  it('a Keeper over SPIKE_HTTP_SERVER_MAX_CONNECTIONS answers 503 server_busy (HTTP/1.1)', async () => {
    const keeperPort = Number(new URL(cluster.keeperUrls[0]!).port);
    const held = tls.connect({
      host: '127.0.0.1',
      port: keeperPort,
      ...tlsOptions(nexusMaterial),
      ALPNProtocols: [],
    });
    await new Promise<void>((resolve, reject) => {
      held.once('secureConnect', () => resolve());
      held.once('error', reject);
    });
    try {
      const busy = await h1('POST', '/v1/store/shard', '{}', keeperPort, nexusMaterial);
      expect(busy.status).toBe(503);
      expect(JSON.parse(busy.body)).toEqual({ err: 'server_busy' });
    } finally {
      held.destroy();
    }
    // Once the held connection is gone, the Keeper serves again (not a 503).
    await cluster.waitUntil(
      async () =>
        (await h1('POST', '/v1/store/shard', '{}', keeperPort, nexusMaterial)).status !== 503,
      20_000,
      'the Keeper to serve again',
    );
  });
});
