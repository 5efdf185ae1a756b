/**
 * An in-process Nexus on real sockets for SDK and CLI tests: the development issuer (real
 * Workload API sockets per role), a real store (`memory`, or `sqlite` in a temp directory), the
 * real Nexus app and the real mTLS server on a free loopback port. Clients connect exactly as in
 * production: `SPIFFE_ENDPOINT_SOCKET=unix://<role>.sock`, `SPIKE_NEXUS_API_URL=https://127.0.0.1:<port>`.
 *
 * With the `sqlite` backend the harness also provides the break-glass operations (recover and
 * restore, spike-api.md §9) through a small test double of the key lifecycle built on the real
 * core pieces (`splitRootKey`, `RestoreCollector`, HKDF key derivation): there are no Keepers
 * here. `lock()` drops the root key as a Nexus restart without Keepers would (every route then
 * answers 503 until an operator restore installs a key whose KCV matches the stored one).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateRootKey } from '../../src/core/crypto/keys.ts';
import { SpikeError } from '../../src/core/errors.ts';
import type { TrustRoots } from '../../src/core/policy/engine.ts';
import {
  RestoreCollector,
  type ShardEnvelope,
  splitRootKey,
} from '../../src/core/shamir/shards.ts';
import { authorizeAny } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { type DevIssuer, startDevIssuer } from '../../src/dev/issuer.ts';
import { createNexusApp, type NexusOperator } from '../../src/nexus/app.ts';
import type { DerivedKeys, RootKeyProvider } from '../../src/nexus/domain.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key.ts';
import { type NexusStore, openStore } from '../../src/nexus/store/index.ts';
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
  /** Store backend; default `memory`. `sqlite` adds recover/restore. */
  readonly backend?: 'memory' | 'sqlite';
  /** SVID lifetime of every identity (seconds); default 3600. */
  readonly ttlSeconds?: number;
  /** Extra Workload API sockets: name → SPIFFE ID. */
  readonly extraWorkloads?: Record<string, string>;
  /** sqlite only: Shamir n and t of the operator double (default 3 and 2). */
  readonly shares?: number;
  readonly threshold?: number;
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
  /** sqlite only: forgets the root key (Nexus answers 503 until a restore). */
  lock(): void;
  /** True while a root key is held. */
  ready(): boolean;
  stop(): Promise<void>;
}

/** The swappable key holder behind the app: `lock()` replaces the provider with an empty one. */
class SwappableKeys implements RootKeyProvider {
  provider = new MutableRootKeyProvider();
  keys(): DerivedKeys | undefined {
    return this.provider.keys();
  }
}

/** The recover/restore double (see the module header). */
function createOperatorDouble(
  store: NexusStore,
  keys: SwappableKeys,
  shares: number,
  threshold: number,
): NexusOperator & { boot(): Promise<void> } {
  let current: ShardEnvelope[] = [];
  let collector: RestoreCollector | undefined;

  const acquire = async (rootKey: Uint8Array) => {
    const envelopes = await splitRootKey(rootKey, shares, threshold);
    const derived = await keys.provider.install(rootKey);
    rootKey.fill(0);
    if (store.getKcv() === undefined) store.setKcv(derived.kcv);
    current = envelopes;
    collector = undefined;
  };

  return {
    boot: () => acquire(generateRootKey()),
    async recover() {
      if (keys.keys() === undefined) throw new SpikeError('state_not_ready', 'no root key yet');
      return current;
    },
    async restore(envelope) {
      if (keys.keys() !== undefined) {
        throw new SpikeError('state_already_initialized', 'a root key is already held');
      }
      collector ??= new RestoreCollector(threshold, store.getKcv());
      const step = await collector.add(envelope);
      if (step.rootKey !== undefined) await acquire(step.rootKey);
      return step.status;
    },
  };
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
      backend === 'sqlite' ? { backend, dataDir: dir } : { backend: 'memory' },
    );
    const keys = new SwappableKeys();
    let operator: (NexusOperator & { boot(): Promise<void> }) | undefined;
    if (backend === 'sqlite') {
      operator = createOperatorDouble(store, keys, options.shares ?? 3, options.threshold ?? 2);
      await operator.boot();
    } else {
      await keys.provider.install(generateRootKey());
    }

    source = createX509Source({ address: issuer.addressFor('nexus'), logger: SILENT });
    const audit: string[] = [];
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
      operator,
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
      lock() {
        if (backend !== 'sqlite') throw new Error('lock() needs the sqlite backend');
        keys.provider = new MutableRootKeyProvider();
      },
      ready: () => keys.keys() !== undefined,
      async stop() {
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
