/**
 * An in-process Nexus on real sockets for SDK and CLI tests: the development issuer (real
 * Workload API sockets per role), a real store (`memory`, or `sqlite` in a temp directory), the
 * real Nexus app and the real mTLS server on a free loopback port. Clients connect exactly as in
 * production: `SPIFFE_ENDPOINT_SOCKET=unix://<role>.sock`, `SPIKE_NEXUS_API_URL=https://127.0.0.1:<port>`.
 *
 * The root key is a fresh random key installed in the production `MutableRootKeyProvider`; there
 * are no Keepers and no key lifecycle, so the break-glass routes answer as the app defines them
 * without an operator (docs/spike-api.md §9): recover and restore need a real deployment with
 * Keepers (tests/support/cluster.ts, used by tests/cli-cluster.test.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateRootKey } from '../../src/core/crypto/keys.ts';
import type { TrustRoots } from '../../src/core/policy/engine.ts';
import { authorizeAny } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { type DevIssuer, startDevIssuer } from '../../src/dev/issuer.ts';
import { createNexusApp } from '../../src/nexus/app.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore } from '../../src/nexus/store/index.ts';
import { WatchService } from '../../src/nexus/watch/stream.ts';
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

export interface NexusHarnessOptions {
  /** Store backend; default `memory`. */
  readonly backend?: 'memory' | 'sqlite';
  /** SVID lifetime of every identity (seconds); default 3600. */
  readonly ttlSeconds?: number;
  /** Extra Workload API sockets: name → SPIFFE ID. */
  readonly extraWorkloads?: Record<string, string>;
  /** The root key to install (a copy is taken); default a fresh random one. */
  readonly rootKey?: Uint8Array;
  /** Watch heartbeat interval (ms); default 15 s. */
  readonly watchHeartbeatMs?: number;
  /** Change-log retention (ms); default 24 h. */
  readonly watchRetentionMs?: number;
}

export interface NexusHarness {
  readonly issuer: DevIssuer;
  /** Temp directory holding the sockets (and the database for `sqlite`). */
  readonly dir: string;
  readonly url: string;
  readonly port: number;
  /** One line per request, as Nexus writes them. */
  readonly audit: string[];
  /** Environment for a client with the identity of `role` (`pilot`, `recover`, `restore`, …). */
  env(role: string): Record<string, string>;
  stop(): Promise<void>;
}

/** Starts the issuer, the store, the app and the mTLS listener. */
export async function startNexusHarness(options: NexusHarnessOptions = {}): Promise<NexusHarness> {
  const backend = options.backend ?? 'memory';
  // Short base path: unix socket paths are limited to 107 bytes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spk-'));
  const issuer = await startDevIssuer({
    dir: path.join(dir, 'sock'),
    keepers: 0,
    ttlSeconds: options.ttlSeconds ?? 3600,
    extraWorkloads: options.extraWorkloads,
    logger: { info: () => {}, warn: () => {} },
  });

  let store: NexusStore | undefined;
  let source: X509Source | undefined;
  let server: MtlsServer | undefined;
  try {
    store = await openStore(
      backend === 'sqlite'
        ? { backend, dataDir: dir, watchRetentionMs: options.watchRetentionMs ?? 86_400_000 }
        : { backend: 'memory', watchRetentionMs: options.watchRetentionMs ?? 86_400_000 },
    );
    const keys = new MutableRootKeyProvider();
    const rootKey = options.rootKey ? options.rootKey.slice() : generateRootKey();
    const derived = await keys.install(rootKey);
    rootKey.fill(0);
    // Nexus records the key check value on first boot; a fresh database gets this key's.
    if (store.getKcv() === undefined) store.setKcv(derived.kcv);

    source = createX509Source({ address: issuer.addressFor('nexus'), logger: SILENT });
    const audit: string[] = [];
    const watch = new WatchService({
      feed: store.changes,
      heartbeatMs: options.watchHeartbeatMs ?? 15_000,
      maxStreams: 4096,
    });
    const mtls: MtlsServer = createMtlsServer({
      source,
      authorizer: authorizeAny(),
      handler: (request) => app.handle(request),
    });
    const app = createNexusApp({
      secrets: store.secrets(keys),
      policies: store.policies(keys),
      keys,
      backend,
      trustRoots: TRUST,
      maxBodyBytes: 1024 * 1024,
      maxCipherBytes: 65536,
      audit: (line) => audit.push(line),
      peerOf: (request) => mtls.peerOf(request),
      watch,
    });
    server = mtls;
    const { port } = await mtls.listen(0, '127.0.0.1');
    const url = `https://127.0.0.1:${port}`;
    const openedStore = store;
    const openedSource = source;

    return {
      issuer,
      dir,
      url,
      port,
      audit,
      env: (role) => ({
        SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(role),
        SPIKE_NEXUS_API_URL: url,
      }),
      async stop() {
        watch.close();
        await mtls.close();
        await openedSource.close();
        await openedStore.close();
        await issuer.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await server?.close();
    await source?.close();
    await store?.close();
    await issuer.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
