/**
 * Benchmark server, run as its own process by tests/bench/run.ts so that the load generator and
 * the server do not share an event loop.
 *
 *   bun tests/bench/server.ts echo                 our mTLS transport, echo handler
 *   bun tests/bench/server.ts bare                 bare `node:http2` secure server (HTTP/2 and
 *                                                  HTTP/1.1, client certificates required, no
 *                                                  SPIFFE checks), echo via the request/response
 *                                                  API: the baseline of our transport
 *   bun tests/bench/server.ts nexus <dir> <n>      Nexus app on SQLite in <dir>, a fresh random
 *                                                  root key, <n> policies (n-1 that never match the
 *                                                  workload, then one read grant on `bench/`), and
 *                                                  the Vault KV v2 API under `/v1/secret/` beside
 *                                                  it, as src/nexus/main.ts wires them (same
 *                                                  store, same policy engine)
 *
 * SPIFFE_ENDPOINT_SOCKET names the Nexus socket of a development issuer. Prints `READY <port>`.
 */
import http2 from 'node:http2';
import { createPolicyEngine, type TrustRoots } from '../../src/core/policy/engine.ts';
import { authorizeAny } from '../../src/core/spiffe/authorizer.ts';
import { createNexusApp } from '../../src/nexus/app.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { openStore } from '../../src/nexus/store/index.ts';
import { createVaultApp } from '../../src/nexus/vault/app.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createMtlsServer } from '../../src/runtime/tls/server.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

const [mode = 'echo', dataDir = '', policyCount = '1'] = process.argv.slice(2);
const source = createX509Source({});
await source.ready();

let handler: (request: Request) => Response | Promise<Response>;

if (mode === 'bare') {
  const bare = http2.createSecureServer({
    ...tlsMaterialOf(await source.ready()),
    allowHTTP1: true,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  });
  bare.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.concat(chunks));
    });
  });
  bare.listen(0, '127.0.0.1', () => {
    const address = bare.address();
    console.log(`READY ${typeof address === 'object' && address !== null ? address.port : 0}`);
  });
  process.on('SIGTERM', () => process.exit(0));
  await new Promise(() => {});
}

if (mode === 'echo') {
  handler = async (request) =>
    new Response(await request.arrayBuffer(), { headers: { 'Content-Type': 'application/json' } });
} else {
  const store = await openStore({ backend: 'sqlite', dataDir });
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
  const n = Number(policyCount);
  for (let i = 0; i < n - 1; i++) {
    await engine.upsert({
      name: `tenant-${i}`,
      spiffeIdPattern: `^spiffe://spike\\.ist/tenant/${i}/.*$`,
      pathPattern: `^tenants/${i}/.*$`,
      permissions: ['read'],
    });
  }
  await engine.upsert({
    name: 'bench-reader',
    spiffeIdPattern: '^spiffe://spike\\.ist/workload/demo$',
    pathPattern: '^bench/',
    permissions: ['read'],
  });
  await secrets.put('bench/secret', { username: 'bench', password: 'p'.repeat(32) });
  const app = createNexusApp({
    secrets,
    policies,
    keys,
    backend: 'sqlite',
    trustRoots,
    maxBodyBytes: 1 << 20,
    maxCipherBytes: 65536,
    audit: () => {},
    // `server` is assigned below, before the first request can arrive.
    peerOf: (r) => server.peerOf(r),
    policyEngine: engine,
  });
  const vault = createVaultApp({
    kv: store.vault(keys),
    keys,
    initialized: () => true,
    policyEngine: engine,
    maxBodyBytes: 1 << 20,
    audit: () => {},
  });
  // As src/nexus/main.ts: Vault paths go to the Vault app, everything else to the SPIKE app.
  handler = (request) => {
    const url = request.url;
    const start = url.indexOf('/', url.indexOf('//') + 2);
    const end = url.indexOf('?', start);
    const pathname = end === -1 ? url.slice(start) : url.slice(start, end);
    return vault.matches(pathname)
      ? vault.handle(request, server.peerOf(request))
      : app.handle(request);
  };
}

const server = createMtlsServer({ source, authorizer: authorizeAny(), handler });
const { port } = await server.listen(0, '127.0.0.1');
console.log(`READY ${port}`);
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
