/**
 * The Keeper app in process (src/keeper/app.ts) against docs/spike-api.md §3, §9 "Keeper routes" and
 * §12: every route and error case, the 4 KiB streamed body cap, generation demotion, caller
 * roles, exact headers, and that no log line ever carries shard material.
 */
import { beforeEach, describe, expect, it } from 'bun:test';
import { type ShardEnvelope, splitRootKey } from '../src/core/shamir/shards.ts';
import { createKeeperApp, type KeeperApp, type KeeperAppOptions } from '../src/keeper/app.ts';

const NEXUS = 'spiffe://spike.ist/spike/nexus';
const NEXUS_INSTANCE = 'spiffe://spike.ist/spike/nexus/instance-1';
const BOOTSTRAP = 'spiffe://spike.ist/spike/bootstrap';
const FEDERATED_NEXUS = 'spiffe://other.org/spike/nexus';

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store, no-cache, must-revalidate, private',
  pragma: 'no-cache',
  expires: '0',
};

/** Per-request peer IDs, as the transport's WeakMap would hold them. */
const peers = new WeakMap<Request, string>();
let lines: string[] = [];
const logger: NonNullable<KeeperAppOptions['log']> = {
  debug: (m, f) => lines.push(JSON.stringify({ level: 'debug', m, ...f })),
  info: (m, f) => lines.push(JSON.stringify({ level: 'info', m, ...f })),
  warn: (m, f) => lines.push(JSON.stringify({ level: 'warn', m, ...f })),
  error: (m, f) => lines.push(JSON.stringify({ level: 'error', m, ...f })),
};

function newApp(): KeeperApp {
  return createKeeperApp({
    peerOf: (request) => peers.get(request),
    trustRoots: { nexus: ['spike.ist', 'other.org'], bootstrap: ['spike.ist'] },
    log: logger,
  });
}

function request(
  path: string,
  options: { method?: string; body?: BodyInit | null; peer?: string; host?: string } = {},
): Request {
  const init: RequestInit & { duplex?: string } = {
    method: options.method ?? 'POST',
    body: options.body,
  };
  if (options.body instanceof ReadableStream) init.duplex = 'half';
  const req = new Request(`https://${options.host ?? 'localhost:8443'}${path}`, init);
  if (options.peer !== undefined) peers.set(req, options.peer);
  return req;
}

async function call(
  app: KeeperApp,
  path: string,
  options: Parameters<typeof request>[1] = {},
): Promise<{ status: number; body: unknown; headers: Record<string, string> }> {
  const res = await app.handle(request(path, options));
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? undefined : JSON.parse(text),
    headers: Object.fromEntries(res.headers.entries()),
  };
}

const contribute = (app: KeeperApp, envelope: unknown, peer = NEXUS) =>
  call(app, '/v1/store/contribute', { body: JSON.stringify(envelope), peer });
const fetchShards = (app: KeeperApp, peer = NEXUS) =>
  call(app, '/v1/store/shard', { body: '{}', peer });

let app: KeeperApp;
let gen1: ShardEnvelope[];
let gen2: ShardEnvelope[];
let gen3: ShardEnvelope[];

beforeEach(async () => {
  lines = [];
  app = newApp();
  const key = crypto.getRandomValues(new Uint8Array(32));
  gen1 = await splitRootKey(key, 3, 2);
  gen2 = await splitRootKey(key, 3, 2);
  gen3 = await splitRootKey(key, 3, 2);
});

function allShardHex(): string[] {
  return [...gen1, ...gen2, ...gen3].map((e) => e.shard);
}

describe('keeper health and readiness', () => {
  it('GET /health is 200 ok with the JSON headers', async () => {
    const res = await call(app, '/health', { method: 'GET' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers).toEqual(JSON_HEADERS);
  });

  it('GET /ready is 503 until a shard is held, then 200', async () => {
    const before = await call(app, '/ready', { method: 'GET' });
    expect(before.status).toBe(503);
    expect(before.body).toEqual({ status: 'not_ready', err: 'state_not_ready' });
    expect(before.headers).toEqual(JSON_HEADERS);
    expect(app.holding()).toBe(false);
    expect((await contribute(app, gen1[0])).status).toBe(200);
    const after = await call(app, '/ready', { method: 'GET' });
    expect(after.status).toBe(200);
    expect(after.body).toEqual({ status: 'ready' });
    expect(app.holding()).toBe(true);
  });

  it('health needs no role (any verified peer on the mTLS listener, none on the plain one)', async () => {
    expect((await call(app, '/health', { method: 'GET' })).status).toBe(200);
    expect(
      (await call(app, '/health', { method: 'GET', peer: 'spiffe://spike.ist/app' })).status,
    ).toBe(200);
  });
});

describe('keeper routing (docs/spike-api.md §3)', () => {
  const cases: [string, string, string][] = [
    ['GET', '/v1/store/shard', 'GET on a POST route'],
    ['PUT', '/v1/store/contribute', 'PUT'],
    ['DELETE', '/v1/store/shard', 'DELETE'],
    ['HEAD', '/health', 'HEAD on health'],
    ['POST', '/health', 'POST on health'],
    ['POST', '/ready', 'POST on ready'],
    ['GET', '/', 'root'],
    ['POST', '/v1/store/shards', 'unknown path'],
    ['POST', '/v1/store/shard/', 'trailing slash'],
    ['POST', '/V1/store/shard', 'case differs'],
    ['POST', '/v1/store/shard?action=get', 'an action'],
    ['POST', '/v1/store/contribute?action=x', 'an action on contribute'],
    ['POST', '/v1/store/secrets', 'a Nexus route'],
    ['POST', '//v1/store/shard', 'double slash'],
    ['GET', '/health/', 'health with trailing slash'],
  ];
  for (const [method, path, name] of cases) {
    it(`${name} (${method} ${path}) → 400 api_bad_request, even for Nexus`, async () => {
      const res = await call(app, path, {
        method,
        peer: NEXUS,
        body: method === 'GET' || method === 'HEAD' ? null : '{}',
      });
      expect(res.status).toBe(400);
      if (method !== 'HEAD') expect(res.body).toEqual({ err: 'api_bad_request' });
      expect(res.headers).toEqual(JSON_HEADERS);
    });
  }

  it('ignores other query parameters and an empty action', async () => {
    await contribute(app, gen1[0]);
    expect(
      (await call(app, '/v1/store/shard?x=1&action=', { body: '{}', peer: NEXUS })).status,
    ).toBe(200);
  });

  it('routes on the parsed path, whatever the Host header is', async () => {
    await contribute(app, gen1[0]);
    const short = await call(app, '/v1/store/shard', { body: '{}', peer: NEXUS, host: 'a' });
    // Elysia locates the path by position in the URL string; a one-letter host must not make
    // `/v1/v1/store/shard` look like `/v1/store/shard`.
    expect(short.status).toBe(200);
    expect(short.body).toEqual({ shards: [gen1[0]] });
    const nested = await call(app, '/v1/v1/store/shard', { body: '{}', peer: NEXUS, host: 'a' });
    expect(nested.status).toBe(400);
  });
});

describe('POST /v1/store/contribute', () => {
  it('nexus may contribute; bootstrap only fills an empty keeper; IDs match exactly', async () => {
    expect((await contribute(app, gen1[1], BOOTSTRAP)).status).toBe(200);
    const a = await contribute(app, gen1[0], NEXUS);
    expect(a.status).toBe(200);
    expect(a.body).toEqual({});
    expect(a.headers).toEqual(JSON_HEADERS);
    // Once a shard is held, bootstrap cannot push it out (docs/architecture.md "Shard custody").
    const late = await contribute(app, gen2[1], BOOTSTRAP);
    expect(late.status).toBe(409);
    expect(late.body).toEqual({ err: 'state_already_initialized' });
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[0]] });
    // An ID below the nexus path is not Nexus unless SPIKE_KEEPER_ROLE_MATCH=prefix.
    expect((await contribute(app, gen1[2], NEXUS_INSTANCE)).status).toBe(401);
    expect((await fetchShards(app, NEXUS_INSTANCE)).status).toBe(401);
    expect((await contribute(app, gen2[0], FEDERATED_NEXUS)).status).toBe(200);
    const prefixed = createKeeperApp({
      peerOf: (r) => peers.get(r),
      trustRoots: { nexus: ['spike.ist'], bootstrap: ['spike.ist'] },
      roleMatch: 'prefix',
    });
    expect((await contribute(prefixed, gen1[2], NEXUS_INSTANCE)).status).toBe(200);
  });

  const unauthorised: [string, string | undefined][] = [
    ['no peer ID', undefined],
    ['pilot superuser', 'spiffe://spike.ist/spike/pilot/role/superuser'],
    ['pilot restore', 'spiffe://spike.ist/spike/pilot/role/restore'],
    ['workload', 'spiffe://spike.ist/workload/app'],
    ['lite workload', 'spiffe://spike.ist/spike/workload/role/lite'],
    ['a keeper (itself)', 'spiffe://spike.ist/spike/keeper'],
    ['nexus of an untrusted domain', 'spiffe://evil.org/spike/nexus'],
    ['bootstrap of a nexus-only domain', 'spiffe://other.org/spike/bootstrap'],
    ['a near-miss path', 'spiffe://spike.ist/spike/nexu'],
    ['a prefix path', 'spiffe://spike.ist/spike/nexusx'],
    ['an ID failing the wire re-check', 'spiffe://spike.ist/spike/nexus/a b'],
    ['a dot segment', 'spiffe://spike.ist/spike/nexus/..'],
    ['not a SPIFFE ID', 'https://spike.ist/spike/nexus'],
  ];
  for (const [name, peer] of unauthorised) {
    it(`${name} → 401 access_unauthorized, nothing stored`, async () => {
      const res = await call(app, '/v1/store/contribute', {
        body: JSON.stringify(gen1[0]),
        peer,
      });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ err: 'access_unauthorized' });
      expect(res.headers).toEqual(JSON_HEADERS);
      expect(app.holding()).toBe(false);
    });
  }

  it('bad JSON wins over authorisation (400 before 401)', async () => {
    const res = await call(app, '/v1/store/contribute', {
      body: '{',
      peer: 'spiffe://spike.ist/workload/app',
    });
    expect(res.status).toBe(400);
  });

  const badBodies: [string, string | null][] = [
    ['empty body', ''],
    ['no body', null],
    ['invalid JSON', '{"version":1'],
    ['null', 'null'],
    ['an array', '[]'],
    ['a string', '"x"'],
    ['{}', '{}'],
  ];
  for (const [name, body] of badBodies) {
    it(`${name} → 400`, async () => {
      const res = await call(app, '/v1/store/contribute', { body, peer: NEXUS });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ err: 'api_bad_request' });
      expect(app.holding()).toBe(false);
    });
  }

  it('bad envelopes → 400 and nothing stored or replaced', async () => {
    const e = gen1[0]!;
    const bad: unknown[] = [
      { ...e, version: 2 },
      { ...e, index: 0 },
      { ...e, index: 256 },
      { ...e, index: 1.5 },
      { ...e, generation: e.generation.toUpperCase() },
      { ...e, kcv: 'x' },
      { ...e, shard: e.shard.slice(2) },
      { ...e, shard: '00'.repeat(33) },
      { ...e, shard: `${e.shard.slice(0, 64)}00` },
      { shard: Array.from({ length: 32 }, () => 7) },
    ];
    for (const body of bad) {
      const res = await contribute(app, body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ err: 'api_bad_request' });
    }
    expect(app.holding()).toBe(false);
    await contribute(app, gen1[0]);
    await contribute(app, { ...gen2[0]!, shard: '00'.repeat(33) });
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[0]] });
  });

  it('decodes like Go: integer fields refuse fractions and strings', async () => {
    const e = gen1[0]!;
    const raw = JSON.stringify(e);
    for (const body of [
      raw.replace(`"index":${e.index}`, `"index":${e.index}.0`),
      raw.replace(`"index":${e.index}`, `"index":"${e.index}"`),
      raw.replace('"version":1', '"version":1e0'),
      raw.replace(`"shard":"${e.shard}"`, '"shard":7'),
    ]) {
      expect(body).not.toBe(raw);
      const res = await call(app, '/v1/store/contribute', { body, peer: NEXUS });
      expect(res.status).toBe(400);
    }
    expect(app.holding()).toBe(false);
    expect((await call(app, '/v1/store/contribute', { body: raw, peer: NEXUS })).status).toBe(200);
  });

  it('accepts Go-style key case and ignores unknown keys', async () => {
    const e = gen1[1]!;
    const body = {
      Version: e.version,
      Index: e.index,
      GENERATION: e.generation,
      kcv: e.kcv,
      Shard: e.shard,
      note: 'x',
    };
    expect((await contribute(app, body)).status).toBe(200);
    expect((await fetchShards(app)).body).toEqual({ shards: [e] });
  });

  it('same generation replaces; a new generation demotes the current one', async () => {
    await contribute(app, gen1[0]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[0]] });
    // Same generation, another index (e.g. Keeper peers reordered): replaces, no previous.
    await contribute(app, gen1[1]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[1]] });
    // Re-sent unchanged: still one.
    await contribute(app, gen1[1]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[1]] });
    // New generation: current then previous.
    await contribute(app, gen2[0]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen2[0], gen1[1]] });
    await contribute(app, gen2[0]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen2[0], gen1[1]] });
    // A third generation drops the oldest.
    await contribute(app, gen3[2]);
    expect((await fetchShards(app)).body).toEqual({ shards: [gen3[2], gen2[0]] });
  });

  it('wipe drops every shard', async () => {
    await contribute(app, gen1[0]);
    await contribute(app, gen2[0]);
    app.wipe();
    expect(app.holding()).toBe(false);
    expect((await fetchShards(app)).status).toBe(404);
    expect((await call(app, '/ready', { method: 'GET' })).status).toBe(503);
  });
});

describe('4 KiB body cap (docs/spike-api.md §12)', () => {
  function padded(envelope: ShardEnvelope, size: number): string {
    const base = JSON.stringify({ ...envelope, pad: '' });
    return JSON.stringify({ ...envelope, pad: 'x'.repeat(size - base.length) });
  }

  it('a body of exactly 4096 bytes is accepted, 4097 refused', async () => {
    const exact = padded(gen1[0]!, 4096);
    expect(new TextEncoder().encode(exact).length).toBe(4096);
    expect((await contribute(app, JSON.parse(exact))).status).toBe(200);
    const over = padded(gen1[1]!, 4097);
    const res = await call(app, '/v1/store/contribute', { body: over, peer: NEXUS });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ err: 'api_bad_request' });
    expect((await fetchShards(app)).body).toEqual({ shards: [gen1[0]] });
  });

  it('an endless streamed body is cut off after the cap, not drained', async () => {
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 512;
        controller.enqueue(new Uint8Array(512).fill(0x20));
      },
      cancel() {
        cancelled = true;
      },
    });
    const res = await call(app, '/v1/store/contribute', { body: endless, peer: NEXUS });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ err: 'api_bad_request' });
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(64 * 1024);
  });

  it('a declared Content-Length over the cap is refused without reading', async () => {
    const req = new Request('https://localhost/v1/store/shard', {
      method: 'POST',
      body: '{}',
      headers: { 'content-length': '5000' },
    });
    peers.set(req, NEXUS);
    const res = await app.handle(req);
    expect(res.status).toBe(400);
  });

  it('the cap applies to the shard route too', async () => {
    await contribute(app, gen1[0]);
    const res = await call(app, '/v1/store/shard', {
      body: JSON.stringify({ pad: 'x'.repeat(5000) }),
      peer: NEXUS,
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ shards: null, err: 'api_bad_request' });
  });
});

describe('POST /v1/store/shard', () => {
  it('none held → 404 with the zero-valued body', async () => {
    const res = await fetchShards(app);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ shards: null, err: 'api_not_found' });
    expect(res.headers).toEqual(JSON_HEADERS);
  });

  it('returns the held envelope exactly as contributed', async () => {
    await contribute(app, gen1[2]);
    const res = await fetchShards(app);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ shards: [gen1[2]] });
    expect(res.headers).toEqual(JSON_HEADERS);
  });

  it('accepts {} and null bodies, refuses non-objects and bad JSON', async () => {
    await contribute(app, gen1[0]);
    expect((await call(app, '/v1/store/shard', { body: 'null', peer: NEXUS })).status).toBe(200);
    expect((await call(app, '/v1/store/shard', { body: '{"x":1}', peer: NEXUS })).status).toBe(200);
    for (const body of ['', '[]', '1', '"{}"', '{']) {
      const res = await call(app, '/v1/store/shard', { body, peer: NEXUS });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ shards: null, err: 'api_bad_request' });
    }
  });

  const refused: [string, string | undefined][] = [
    ['no peer', undefined],
    ['bootstrap (may contribute, may not read)', BOOTSTRAP],
    ['pilot superuser', 'spiffe://spike.ist/spike/pilot/role/superuser'],
    ['pilot recover', 'spiffe://spike.ist/spike/pilot/role/recover'],
    ['workload', 'spiffe://spike.ist/app/db'],
    ['a keeper (itself)', 'spiffe://spike.ist/spike/keeper'],
    ['nexus of an untrusted domain', 'spiffe://evil.org/spike/nexus'],
  ];
  for (const [name, peer] of refused) {
    it(`${name} → 401 with the zero-valued body and no shard`, async () => {
      await contribute(app, gen1[0]);
      const req = request('/v1/store/shard', { body: '{}', peer });
      const res = await app.handle(req);
      const text = await res.text();
      expect(res.status).toBe(401);
      expect(JSON.parse(text)).toEqual({ shards: null, err: 'access_unauthorized' });
      expect(text).not.toContain(gen1[0]!.shard);
    });
  }
});

describe('hygiene', () => {
  it('no log line carries a shard, a KCV or a body, whatever happens', async () => {
    await contribute(app, gen1[0]);
    await contribute(app, gen1[0], BOOTSTRAP);
    await contribute(app, gen2[1]);
    await contribute(app, gen3[0], 'spiffe://spike.ist/app');
    await contribute(app, { ...gen3[1]!, version: 2 });
    await contribute(app, { ...gen3[1]!, kcv: 'zz' });
    await call(app, '/v1/store/contribute', { body: `{"shard":"${gen3[2]!.shard}"`, peer: NEXUS });
    await fetchShards(app);
    await fetchShards(app, BOOTSTRAP);
    app.wipe();
    await fetchShards(app);
    expect(lines.length).toBeGreaterThan(5);
    const log = lines.join('\n');
    for (const hex of allShardHex()) {
      expect(log).not.toContain(hex);
      expect(log).not.toContain(hex.slice(0, 32));
      expect(log).not.toContain(hex.slice(32, 64));
    }
    for (const e of [gen1[0]!, gen2[0]!, gen3[0]!]) expect(log).not.toContain(e.kcv);
    // The lines do say what happened.
    expect(log).toContain('shard stored');
    expect(log).toContain('request denied');
  });

  it('error responses never echo the request body', async () => {
    const e = gen1[0]!;
    const bodies = [
      { ...e, version: 9 },
      { ...e, index: 999 },
      { ...e, shard: `${e.shard}ff` },
    ];
    for (const body of bodies) {
      const res = await app.handle(
        request('/v1/store/contribute', { body: JSON.stringify(body), peer: NEXUS }),
      );
      const text = await res.text();
      expect(res.status).toBe(400);
      expect(text).toBe('{"err":"api_bad_request"}');
    }
  });
});
