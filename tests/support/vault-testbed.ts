/**
 * In-process Vault KV v2 testbed: one store shared by the SPIKE app (createNexusApp) and the
 * Vault handler (createVaultApp), one policy engine, fixed peer IDs. `vault()` and `spike()`
 * drive each API with a chosen caller, as the mTLS transport would.
 */
import { generateRootKey } from '../../src/core/crypto/keys.ts';
import { createPolicyEngine, type TrustRoots } from '../../src/core/policy/engine.ts';
import { createNexusApp } from '../../src/nexus/app.ts';
import { MutableRootKeyProvider } from '../../src/nexus/root-key/providers.ts';
import { type NexusStore, openStore } from '../../src/nexus/store/index.ts';
import { createVaultApp, type VaultApp } from '../../src/nexus/vault/app.ts';

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

export const PILOT = 'spiffe://spike.ist/spike/pilot/role/superuser';
export const WORKLOAD = 'spiffe://spike.ist/workload/app';
export const LITE = 'spiffe://spike.ist/spike/workload/role/lite';

interface VaultAnswer {
  readonly status: number;
  readonly type: string | null;
  readonly text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON is asserted field by field
  readonly json: any;
}

export interface Testbed {
  readonly store: NexusStore;
  readonly keys: MutableRootKeyProvider;
  readonly app: VaultApp;
  readonly audit: string[];
  readonly now: { ms: number };
  vault(
    method: string,
    path: string,
    options?: {
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
      peer?: string | null;
    },
  ): Promise<VaultAnswer>;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON is asserted field by field
  spike(path: string, body: unknown, peer?: string): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

export interface TestbedOptions {
  readonly backend?: 'memory' | 'sqlite';
  readonly dataDir?: string;
  /** Leave the root key out (sealed). */
  readonly sealed?: boolean;
  readonly maxBodyBytes?: number;
  /** `SPIKE_NEXUS_VAULT_MOUNT`; default `secret`. */
  readonly mount?: string;
}

export async function createTestbed(options: TestbedOptions = {}): Promise<Testbed> {
  const now = { ms: Date.parse('2026-01-01T00:00:00Z') };
  const clock = () => now.ms;
  const store = await openStore(
    options.backend === 'sqlite'
      ? { backend: 'sqlite', dataDir: options.dataDir!, clock }
      : { backend: 'memory', clock },
  );
  const keys = new MutableRootKeyProvider();
  if (options.sealed !== true) {
    const derived = await keys.install(generateRootKey());
    store.setKcv(derived.kcv);
  }
  const policies = store.policies(keys);
  const engine = createPolicyEngine({ store: policies, trustRoots: TRUST });
  const audit: string[] = [];
  const app = createVaultApp({
    kv: store.vault(keys),
    keys,
    initialized: () => store.getKcv() !== undefined,
    policyEngine: engine,
    maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
    audit: (line) => audit.push(line),
    version: '0.1.0',
    ...(options.mount === undefined ? {} : { mount: options.mount }),
  });
  const peers = new WeakMap<Request, string>();
  const nexus = createNexusApp({
    secrets: store.secrets(keys),
    policies,
    keys,
    backend: options.backend ?? 'memory',
    trustRoots: TRUST,
    maxBodyBytes: 1024 * 1024,
    maxCipherBytes: 65536,
    audit: (line) => audit.push(line),
    peerOf: (r) => peers.get(r),
    policyEngine: engine,
  });
  return {
    store,
    keys,
    app,
    audit,
    now,
    async vault(method, path, o = {}) {
      const headers = new Headers(o.headers ?? {});
      let body: string | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        if (!headers.has('content-type')) {
          headers.set(
            'content-type',
            method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
          );
        }
      }
      const request = new Request(`https://nexus.test${path}`, { method, headers, body });
      const peer = o.peer === null ? undefined : (o.peer ?? PILOT);
      // Bun's Request turns unknown methods (LIST) into GET; pass the method as received.
      const res = await app.handle(request, peer, method);
      const text = await res.text();
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, type: res.headers.get('content-type'), text, json };
    },
    async spike(path, body, peer = PILOT) {
      const request = new Request(`https://nexus.test${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
      peers.set(request, peer);
      const res = await nexus.handle(request);
      return { status: res.status, json: await res.json() };
    },
    close: () => store.close(),
  };
}
