/**
 * A Nexus serving both APIs over the real mTLS transport, for the Vault client suites: the
 * development issuer (real Workload API sockets), one store, the SPIKE app (createNexusApp) and
 * the Vault handler (createVaultApp) behind a tiny router: `/v1/<mount>/…`, `/v1/sys/…`,
 * `/v1/auth/…` go to the Vault handler, everything else to the SPIKE app. (The lead wires the
 * same delegation into Nexus itself; this wrapper exists only for tests.)
 *
 * For standard clients it writes PEM files fetched from the Workload API: `ca.pem` (the trust
 * bundle) and `<name>.crt` / `<name>.key` for each client identity. The Nexus SVID carries DNS
 * SAN `localhost` and IP SAN `127.0.0.1` (src/dev/issuer.ts), so hostname verification stays on.
 *
 * Run as a process: `bun tests/support/vault-server.ts <dir> [--sealed]` prints one line
 * `READY <json>` (url, files, ids) and serves until SIGTERM/SIGINT.
 */
import fs from 'node:fs';
import path from 'node:path';
import { generateRootKey } from '../../src/core/crypto/keys.ts';
import { createPolicyEngine, type TrustRoots } from '../../src/core/policy/engine.ts';
import { authorizeAny } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { type DevIssuer, startDevIssuer } from '../../src/dev/issuer.ts';
import { createNexusApp } from '../../src/nexus/app.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore } from '../../src/nexus/store/index.ts';
import { createVaultApp } from '../../src/nexus/vault/app.ts';
import { toPem } from '../../src/runtime/tls/material.ts';
import { createMtlsServer, type MtlsServer } from '../../src/runtime/tls/server.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

const TD = 'spike.ist';
const TRUST: TrustRoots = {
  nexus: [TD],
  keeper: [TD],
  bootstrap: [TD],
  superuser: [TD],
  recover: [TD],
  restore: [TD],
  'lite-workload': [TD],
};
const SILENT = { info: () => {}, warn: () => {}, error: () => {} };

/** Client identities whose certificate files are written: name → SPIFFE ID. */
export const VAULT_CLIENTS = {
  pilot: 'spiffe://spike.ist/spike/pilot/role/superuser',
  /** A plain workload without any policy: every KV call is denied. */
  denied: 'spiffe://spike.ist/workload/denied',
  /** A workload with read on `app/.*` only. */
  reader: 'spiffe://spike.ist/workload/reader',
} as const;

export interface VaultServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** `ca.pem` and per client `{ cert, key }` file paths. */
  readonly files: {
    ca: string;
    clients: Record<keyof typeof VAULT_CLIENTS, { cert: string; key: string }>;
  };
  readonly audit: string[];
  stop(): Promise<void>;
}

async function writeIdentity(issuer: DevIssuer, name: string, dir: string) {
  const source = createX509Source({ address: issuer.addressFor(name), logger: SILENT });
  try {
    const ctx = await source.ready();
    const svid = ctx.svids[0]!;
    const cert = path.join(dir, `${name}.crt`);
    const key = path.join(dir, `${name}.key`);
    fs.writeFileSync(cert, svid.chain.map((d) => toPem('CERTIFICATE', d)).join(''), {
      mode: 0o600,
    });
    fs.writeFileSync(key, toPem('PRIVATE KEY', svid.privateKey), { mode: 0o600 });
    const ca = [...ctx.bundles.values()]
      .flat()
      .map((d) => toPem('CERTIFICATE', d))
      .join('');
    return { cert, key, ca };
  } finally {
    await source.close();
  }
}

/** Starts the issuer, store, both apps and the mTLS listener on a free loopback port. */
export async function startVaultServer(
  dir: string,
  options: { sealed?: boolean } = {},
): Promise<VaultServer> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const issuer = await startDevIssuer({
    dir: path.join(dir, 'sock'),
    keepers: 0,
    extraWorkloads: { denied: VAULT_CLIENTS.denied, reader: VAULT_CLIENTS.reader },
    logger: { info: () => {}, warn: () => {} },
  });
  let store: NexusStore | undefined;
  let source: X509Source | undefined;
  let mtls: MtlsServer | undefined;
  try {
    store = await openStore({ backend: 'sqlite', dataDir: dir });
    const keys = new MutableRootKeyProvider();
    if (options.sealed === true) store.setKcv('0'.repeat(32));
    else store.setKcv((await keys.install(generateRootKey())).kcv);
    const policies = store.policies(keys);
    const engine = createPolicyEngine({ store: policies, trustRoots: TRUST });
    if (options.sealed !== true) {
      await engine.upsert({
        name: 'reader',
        spiffeIdPattern: `^${VAULT_CLIENTS.reader}$`,
        pathPattern: '^app/.*$',
        permissions: ['read'],
      });
    }
    const audit: string[] = [];
    source = createX509Source({ address: issuer.addressFor('nexus'), logger: SILENT });
    const vault = createVaultApp({
      kv: store.vault(keys),
      keys,
      initialized: () => store?.getKcv() !== undefined,
      policyEngine: engine,
      maxBodyBytes: 1024 * 1024,
      audit: (line) => audit.push(line),
      version: '0.1.0',
    });
    const server: MtlsServer = createMtlsServer({
      source,
      authorizer: authorizeAny(),
      handler: (request) => {
        const pathname = new URL(request.url).pathname;
        if (vault.matches(pathname)) {
          // As src/nexus/main.ts does: the method as received (a Request turns LIST into GET).
          return vault.handle(request, server.peerOf(request), server.methodOf(request));
        }
        return nexus.handle(request);
      },
    });
    mtls = server;
    const nexus = createNexusApp({
      secrets: store.secrets(keys),
      policies,
      keys,
      backend: 'sqlite',
      trustRoots: TRUST,
      maxBodyBytes: 1024 * 1024,
      maxCipherBytes: 65536,
      audit: (line) => audit.push(line),
      peerOf: (request) => server.peerOf(request),
      rawPathOf: (request) => server.rawPathOf(request),
      policyEngine: engine,
    });
    const { port } = await server.listen(0, '127.0.0.1');
    const clients = {} as Record<keyof typeof VAULT_CLIENTS, { cert: string; key: string }>;
    let ca = '';
    for (const name of Object.keys(VAULT_CLIENTS) as (keyof typeof VAULT_CLIENTS)[]) {
      const id = await writeIdentity(issuer, name, dir);
      clients[name] = { cert: id.cert, key: id.key };
      ca = id.ca;
    }
    const caFile = path.join(dir, 'ca.pem');
    fs.writeFileSync(caFile, ca);
    const opened = { store, source };
    return {
      url: `https://localhost:${port}`,
      port,
      dir,
      files: { ca: caFile, clients },
      audit,
      async stop() {
        await server.close();
        await opened.source.close();
        await opened.store.close();
        await issuer.stop();
      },
    };
  } catch (error) {
    await mtls?.close();
    await source?.close();
    await store?.close();
    await issuer.stop();
    throw error;
  }
}

if (import.meta.main) {
  const dir = path.resolve(process.argv[2] ?? 'vault-server');
  const server = await startVaultServer(dir, { sealed: process.argv.includes('--sealed') });
  console.log(
    `READY ${JSON.stringify({ url: server.url, files: server.files, ids: VAULT_CLIENTS })}`,
  );
  const stop = async () => {
    fs.writeFileSync(path.join(dir, 'audit.log'), `${server.audit.join('\n')}\n`);
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}
