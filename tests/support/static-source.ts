/**
 * A static `X509Source` for transport unit tests: an in-memory implementation of our own
 * interface (src/core/spiffe/types.ts), minted with src/dev/mint.ts, with `rotate()` to
 * push a freshly issued SVID and `withdraw()` to push `undefined` (fail closed), the two events a
 * real Workload API stream produces. End-to-end tests use the development issuer instead.
 */

import type {
  X509Bundles,
  X509Context,
  X509Source,
  X509Svid,
} from '../../src/core/spiffe/types.ts';
import { type Authority, createRootAuthority, issueX509Svid } from '../../src/dev/mint.ts';

export interface StaticSource extends X509Source {
  /** Issues a new SVID for the same ID from the same authority and notifies listeners. */
  rotate(options?: { ttlSeconds?: number }): Promise<X509Context>;
  /** Replaces the whole context (e.g. another bundle set) and notifies listeners. */
  set(context: X509Context): void;
  /** Withdraws the SVIDs: `current()` becomes `undefined` and listeners get `undefined`. */
  withdraw(): void;
  /** The authority that signs this source's SVIDs. */
  readonly authority: Authority;
  /** Number of listeners currently subscribed (to check that consumers unsubscribe). */
  listenerCount(): number;
}

/** Builds the SVID shape of src/core/spiffe/types.ts from a freshly minted leaf. */
export async function mintSvid(
  authority: Authority,
  id: string,
  options: { ttlSeconds?: number; now?: Date } = {},
): Promise<X509Svid> {
  const leaf = await issueX509Svid(authority, id, options);
  const trustDomain = id.slice('spiffe://'.length).split('/')[0] ?? '';
  return {
    id,
    trustDomain,
    chain: leaf.chain,
    privateKey: leaf.privateKey,
    hint: '',
    notAfter: leaf.notAfter,
    serial: leaf.serial,
  };
}

/** A bundle set with one trust domain's root (plus any `extra` bundles, for federation tests). */
function bundlesOf(
  trustDomain: string,
  authority: Authority,
  extra: ReadonlyMap<string, readonly Uint8Array[]> = new Map(),
): X509Bundles {
  const map = new Map<string, readonly Uint8Array[]>(extra);
  map.set(trustDomain, [authority.certificate]);
  return map;
}

/**
 * Creates a source holding one SVID for `id`. Pass `authority` to share a trust domain between
 * sources (server and client of the same trust domain); `extraBundles` adds federated bundles.
 */
export async function createStaticSource(
  id: string,
  options: {
    authority?: Authority;
    ttlSeconds?: number;
    extraBundles?: ReadonlyMap<string, readonly Uint8Array[]>;
  } = {},
): Promise<StaticSource> {
  const trustDomain = id.slice('spiffe://'.length).split('/')[0] ?? '';
  const authority = options.authority ?? (await createRootAuthority(trustDomain));
  const bundles = bundlesOf(trustDomain, authority, options.extraBundles);
  let context: X509Context | undefined = {
    svids: [await mintSvid(authority, id, { ttlSeconds: options.ttlSeconds })],
    bundles,
  };
  let lastGood: X509Context = context;
  const listeners = new Set<(context: X509Context | undefined) => void>();
  const emit = () => {
    for (const listener of [...listeners]) listener(context);
  };

  return {
    authority,
    ready: async () => context ?? lastGood,
    current: () => context,
    onUpdate(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close: async () => {
      listeners.clear();
    },
    async rotate(rotateOptions = {}) {
      const svid = await mintSvid(authority, id, {
        ttlSeconds: rotateOptions.ttlSeconds ?? options.ttlSeconds,
      });
      context = { svids: [svid], bundles: lastGood.bundles };
      lastGood = context;
      emit();
      return context;
    },
    set(next) {
      context = next;
      lastGood = next;
      emit();
    },
    withdraw() {
      context = undefined;
      emit();
    },
    listenerCount: () => listeners.size,
  };
}
