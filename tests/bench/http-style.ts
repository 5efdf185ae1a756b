/**
 * In-process secret-GET throughput of the two HTTP styles (docs/architecture.md "HTTP style: measured decision (decision 2)"): the same
 * request served by
 *   nexus     `createNexusApp(...).handle` as built in this tree,
 *   plain     a bare `{ handle(Request) }` handler: capped body, Go-JSON decode, policy check,
 *             store read, JSON answer,
 *   elysia    the same handler routed by Elysia with TypeBox `query` and `body` schemas (Elysia
 *             parses with `JSON.parse` and validates; the handler then does the same check and
 *             read) — not Go `encoding/json` semantics, so not a drop-in for Nexus;
 *   elysia-go the same, with the body decoded by the Go-JSON decoder in an Elysia custom parser
 *             and the decoded struct validated by TypeBox (Elysia routing and validating for real
 *             while keeping the wire semantics).
 *
 *   bun tests/bench/http-style.ts [--seconds N] [--rounds R]
 *
 * Sequential batches of 64 concurrent requests; no sockets, so the figures isolate the HTTP
 * layer (the mTLS transport is measured by `bun run bench`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Elysia, t } from 'elysia';
import { readBodyCapped } from '../../src/core/http/body.ts';
import { decodeGoJson } from '../../src/core/http/go-json.ts';
import { createPolicyEngine, type TrustRoots } from '../../src/core/policy/engine.ts';
import { createNexusApp } from '../../src/nexus/app.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { openStore } from '../../src/nexus/store/index.ts';

const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf('--seconds') + 1] || 3) || 3;
const dir = mkdtempSync(join(os.tmpdir(), 'spike-style-'));
const store = await openStore({ backend: 'sqlite', dataDir: dir });
const keys = new MutableRootKeyProvider();
await keys.install(crypto.getRandomValues(new Uint8Array(32)));
const trustRoots: TrustRoots = {
  nexus: ['spike.ist'],
  keeper: ['spike.ist'],
  bootstrap: ['spike.ist'],
  superuser: ['spike.ist'],
  recover: ['spike.ist'],
  restore: ['spike.ist'],
  'lite-workload': ['spike.ist'],
};
const secrets = store.secrets(keys);
const policies = store.policies(keys);
const engine = createPolicyEngine({ store: policies, trustRoots });
await engine.upsert({
  name: 'bench-reader',
  spiffeIdPattern: '^spiffe://spike\\.ist/workload/demo$',
  pathPattern: '^bench/',
  permissions: ['read'],
});
await secrets.put('bench/secret', { username: 'bench', password: 'p'.repeat(32) });
const PEER = 'spiffe://spike.ist/workload/demo';
const HEADERS = new Headers({ 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });

const nexus = createNexusApp({
  secrets,
  policies,
  keys,
  backend: 'sqlite',
  trustRoots,
  maxBodyBytes: 1 << 20,
  maxCipherBytes: 65536,
  audit: () => {},
  peerOf: () => PEER,
  policyEngine: engine,
});

const SCHEMA = { path: 'string', version: 'int' } as const;
async function serveGet(path: string, version: number): Promise<Response> {
  if (!(await engine.checkAccess(PEER, path, ['read']))) {
    return new Response('{"data":null,"err":"access_unauthorized"}', { status: 401 });
  }
  const data = await secrets.get(path, version);
  return new Response(JSON.stringify({ data }), { status: 200, headers: HEADERS });
}

const plain = {
  async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== '/v1/store/secrets' || url.searchParams.get('action') !== 'get') {
      return new Response('{"err":"api_bad_request"}', { status: 400 });
    }
    const req = decodeGoJson(await readBodyCapped(request, 1 << 20), SCHEMA);
    return serveGet(req.path, req.version);
  },
};

const elysia = new Elysia().post(
  '/v1/store/secrets',
  ({ body }) => serveGet(body.path, body.version ?? 0),
  {
    query: t.Object({ action: t.Literal('get') }),
    body: t.Object({ path: t.String(), version: t.Optional(t.Integer()) }),
  },
);

// Elysia routing and TypeBox validation, with the body decoded by the Go-JSON decoder in a custom
// parser (the only way to keep Go `encoding/json` semantics under Elysia).
const elysiaGo = new Elysia().post(
  '/v1/store/secrets',
  ({ body }) => serveGet(body.path, body.version),
  {
    parse: async ({ request }) => decodeGoJson(await readBodyCapped(request, 1 << 20), SCHEMA),
    query: t.Object({ action: t.Literal('get') }),
    body: t.Object({ path: t.String(), version: t.Integer() }),
  },
);

const BODY = JSON.stringify({ path: 'bench/secret' });
const make = () =>
  new Request('https://nexus.local/v1/store/secrets?action=get', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
  });

/**
 * Requests per second of wall time and per second of this process's CPU time (user + system).
 * On a shared, loaded machine the CPU figure is the stable one: it counts only the work done.
 */
async function measure(handle: (r: Request) => Promise<Response> | Response, ms: number) {
  const first = await handle(make());
  if (first.status !== 200) throw new Error(`status ${first.status}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() < t0 + ms) {
    const batch = await Promise.all(Array.from({ length: 64 }, () => handle(make())));
    for (const r of batch) await r.arrayBuffer();
    n += batch.length;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall: n / wall, cpu: n / ((cpu.user + cpu.system) / 1e6) };
}

const variants: [string, (r: Request) => Promise<Response> | Response][] = [
  ['nexus', (r) => nexus.handle(r)],
  ['plain', (r) => plain.handle(r)],
  ['elysia', (r) => elysia.handle(r)],
  ['elysia-go', (r) => elysiaGo.handle(r)],
];
const rounds = Number(args[args.indexOf('--rounds') + 1] || 5) || 5;
const results = new Map<string, { wall: number[]; cpu: number[] }>();
for (let round = 0; round < rounds; round++) {
  for (const [name, handle] of variants) {
    const r = await measure(handle, (seconds * 1000) / rounds);
    const row = results.get(name) ?? { wall: [], cpu: [] };
    row.wall.push(r.wall);
    row.cpu.push(r.cpu);
    results.set(name, row);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
console.log(`median of ${rounds} interleaved rounds, ${seconds} s per variant in all`);
for (const [name, row] of results) {
  console.log(
    `${name.padEnd(10)} ${median(row.cpu).toFixed(0).padStart(7)} req per CPU-second   ${median(row.wall).toFixed(0).padStart(7)} req/s wall`,
  );
}
rmSync(dir, { recursive: true, force: true });
