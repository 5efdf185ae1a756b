/**
 * SDK failover across several Nexus URLs (issue 13, criterion 4; docs/spike-api.md §10 "Several
 * Nexus URLs"), on real sockets over mTLS: a real in-process Nexus (tests/support/nexus-harness.ts)
 * beside a closed port, a server that answers 503, and a server that takes the request and never
 * answers (all with the Nexus SVID of the same development issuer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createClient, type SpikeApiError, type SpikeClient } from '../src/index.ts';
import { createMtlsServer, type MtlsServer } from '../src/runtime/tls/server.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { resolveApiUrls } from '../src/sdk/options.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';
import { freePort } from './support/process.ts';

let nexus: NexusHarness;
let source: X509Source;
const servers: MtlsServer[] = [];
let busyUrl: string;
let busyHits = 0;
let silentUrl: string;
let silentHits = 0;
let closedUrl: string;

async function serve(handler: () => Promise<Response>): Promise<string> {
  const server = createMtlsServer({ source, authorizer: authorizeAny(), handler });
  servers.push(server);
  const { port } = await server.listen(0, '127.0.0.1');
  return `https://127.0.0.1:${port}`;
}

beforeAll(async () => {
  nexus = await startNexusHarness();
  source = createX509Source({
    address: nexus.issuer.addressFor('nexus'),
    logger: { info() {}, warn() {}, error() {} },
  });
  busyUrl = await serve(async () => {
    busyHits++;
    return Response.json({ err: 'state_not_ready' }, { status: 503 });
  });
  silentUrl = await serve(() => {
    silentHits++;
    return new Promise<Response>(() => {});
  });
  closedUrl = `https://127.0.0.1:${await freePort()}`;
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.close().catch(() => undefined);
  await source?.close();
  await nexus?.stop();
});

const open = (urls: string[], extra: Parameters<typeof createClient>[0] = {}) =>
  createClient({
    socket: nexus.issuer.addressFor('pilot'),
    apiUrl: urls,
    nexusTrustDomains: ['spike.ist'],
    retry: { attempts: 2, initialMs: 10, maxMs: 20 },
    ...extra,
  });

async function rejection(p: Promise<unknown>): Promise<SpikeApiError> {
  try {
    await p;
  } catch (error) {
    return error as SpikeApiError;
  }
  throw new Error('expected a rejection');
}

const puts = () => nexus.audit.filter((l) => l.includes('"action":"create"')).length;

describe('several Nexus URLs', () => {
  it('parses a comma-separated list and refuses bad entries', () => {
    expect(resolveApiUrls(' https://a:1/x , https://b:2')).toEqual(['https://a:1', 'https://b:2']);
    expect(resolveApiUrls(['https://a:1'])).toEqual(['https://a:1']);
    for (const bad of ['https://a:1,', 'https://a:1,http://b:2', 'https://a:1,https://a:1/']) {
      expect(() => resolveApiUrls(bad)).toThrow('SPIKE_NEXUS_API_URL');
    }
  });

  it('a closed port then Nexus: writes and reads land on Nexus, which becomes the preferred URL', async () => {
    let spike: SpikeClient | undefined;
    try {
      spike = await open([closedUrl, nexus.url]);
      expect(spike.apiUrls).toEqual([closedUrl, nexus.url]);
      const before = puts();
      // Never sent (refused), so even a write moves on.
      await spike.putSecret('failover/a', { v: '1' });
      expect(puts()).toBe(before + 1);
      expect(spike.apiUrl).toBe(nexus.url);
      expect((await spike.getSecret('failover/a')).data).toEqual({ v: '1' });
      expect(await spike.ready()).toBe(true);
      const status = await spike.replicaStatus();
      expect(status.map((r) => [r.url, r.state, r.reachable])).toEqual([
        [closedUrl, 'unreachable', false],
        [nexus.url, 'ready', true],
      ]);
    } finally {
      await spike?.close();
    }
  });

  it('a 503 moves on at once; the next call goes straight to the URL that answered', async () => {
    const spike = await open([busyUrl, nexus.url]);
    try {
      busyHits = 0;
      await spike.putSecret('failover/b', { v: '2' });
      expect(busyHits).toBe(1);
      await spike.getSecret('failover/b');
      expect(busyHits).toBe(1);
      expect((await spike.replicaStatus())[0]).toMatchObject({ state: 'not_ready', status: 503 });
    } finally {
      await spike.close();
    }
  });

  it('4xx is never retried elsewhere', async () => {
    const spike = await open([nexus.url, busyUrl]);
    try {
      busyHits = 0;
      const missing = await rejection(spike.getSecret('failover/none'));
      expect([missing.code, missing.status]).toEqual(['api_not_found', 404]);
      expect(busyHits).toBe(0);
    } finally {
      await spike.close();
    }
  });

  it('every URL 503: rounds with backoff, then state_not_ready', async () => {
    const spike = await open([busyUrl, closedUrl], {
      retry: { attempts: 3, initialMs: 10, maxMs: 20 },
    });
    try {
      busyHits = 0;
      const error = await rejection(spike.getSecret('failover/b'));
      expect([error.code, error.status]).toEqual(['state_not_ready', 503]);
      expect(busyHits).toBe(3);
    } finally {
      await spike.close();
    }
  });

  it('a request sent and never answered: a read moves on after the timeout, a write is not resent (maybeApplied)', async () => {
    const spike = await open([silentUrl, nexus.url], { timeoutMs: 500 });
    try {
      const writer = await open([nexus.url]);
      await writer.putSecret('failover/c', { v: '3' });
      await writer.close();
      silentHits = 0;
      expect((await spike.getSecret('failover/c')).data).toEqual({ v: '3' });
      expect(silentHits).toBe(1);
      const fresh = await open([silentUrl, nexus.url], { timeoutMs: 500 });
      try {
        const before = puts();
        const error = await rejection(fresh.putSecret('failover/c', { v: '4' }));
        expect([error.code, error.maybeApplied]).toEqual(['net_peer_connection', true]);
        expect(silentHits).toBe(2);
        expect(puts()).toBe(before);
      } finally {
        await fresh.close();
      }
    } finally {
      await spike.close();
    }
  });

  it('an abort during the backoff between rounds rejects at once with its reason', async () => {
    const spike = await open([busyUrl, closedUrl], {
      retry: { attempts: 5, initialMs: 10_000, maxMs: 10_000 },
    });
    try {
      const started = performance.now();
      const error = await rejection(
        spike.getSecret('failover/b', { signal: AbortSignal.timeout(300) }),
      );
      expect((error as Error).name).toBe('TimeoutError');
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      await spike.close();
    }
  });
});
