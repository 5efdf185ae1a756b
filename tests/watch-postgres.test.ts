/**
 * Watch across replicas (issue 14 criterion 2): two Nexus processes on one PostgreSQL database
 * (`bash .ci/postgres bun test tests/watch-postgres.test.ts`; skipped without
 * SPIKE_TEST_DATABASE_URL). A write acknowledged by either replica reaches the watchers of both
 * within 1 s, with the same sequence numbers on both streams.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import type { Subprocess } from 'bun';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { type Cluster, type NexusClient, startCluster } from './support/cluster.ts';
import { freePort, plainStatus, ROOT, waitUntil } from './support/process.ts';
import { freshDatabase, TEST_DATABASE_URL } from './support/store-backends.ts';
import { openWatch, sourceFor, type WatchStream } from './support/watch-client.ts';

setDefaultTimeout(180_000);

describe.skipIf(TEST_DATABASE_URL === undefined)('watch across postgres replicas', () => {
  let cluster: Cluster;
  let second: Subprocess | undefined;
  let secondUrl = '';
  let source: X509Source;
  const clients: NexusClient[] = [];

  beforeAll(async () => {
    const url = await freshDatabase();
    const env = { SPIKE_NEXUS_BACKEND_STORE: 'postgres', SPIKE_NEXUS_DATABASE_URL: url };
    cluster = await startCluster({ keepers: 3, threshold: 2, nexusEnv: env });
    await cluster.waitReady(60_000);
    const [port, healthPort] = await Promise.all([freePort(), freePort()]);
    secondUrl = `https://127.0.0.1:${port}`;
    second = Bun.spawn(['bun', 'src/nexus/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: cluster.dir,
        TMPDIR: cluster.dir,
        SPIKE_SYSTEM_LOG_LEVEL: 'WARN',
        SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor('nexus'),
        SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${port}`,
        SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${healthPort}`,
        SPIKE_NEXUS_KEEPER_PEERS: cluster.keeperUrls.join(','),
        SPIKE_NEXUS_SHAMIR_SHARES: '3',
        SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
        ...env,
      },
      stdout: 'ignore',
      stderr: 'ignore',
    });
    await waitUntil(async () => (await plainStatus(healthPort, '/ready')) === 200, 60_000, 'B');
    source = await sourceFor(cluster.issuer.addressFor('pilot'));
  }, 180_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await source?.close();
    second?.kill('SIGKILL');
    await second?.exited;
    await cluster?.close();
  });

  test('postgres: an event committed at either replica reaches both within 1 s', async () => {
    const a = await cluster.client('pilot');
    clients.push(a);
    const streams: WatchStream[] = [];
    for (const url of [cluster.nexusUrl, secondUrl]) {
      const w = await openWatch(url, source, { prefix: 'ha/' });
      expect(w.status).toBe(200);
      await w.waitForComment('watching');
      streams.push(w);
    }
    // Writes through replica B use a raw client to B; replica A through the cluster client.
    const b = await openWriter(secondUrl);
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const viaB = i % 2 === 1;
      const sent = performance.now();
      const r = viaB
        ? await b.put(`ha/k${i}`)
        : (await a.post('/v1/store/secrets', { path: `ha/k${i}`, values: { i: String(i) } }))
            .status;
      expect(r).toBe(200);
      await Promise.all(streams.map((w) => w.waitForEvents(i + 1, 5000)));
      latencies.push(performance.now() - sent); // request sent -> event on both
    }
    await b.close();
    const [onA, onB] = streams.map((w) => w.events.map((e) => [e.id, e.data.path]));
    expect(onA).toEqual(onB!);
    expect(onA!.map((e) => e[1])).toEqual(Array.from({ length: 10 }, (_, i) => `ha/k${i}`));
    latencies.sort((x, y) => x - y);
    console.log(
      `cross-replica write -> event ms: p50 ${latencies[5]!.toFixed(0)} max ${latencies[9]!.toFixed(0)}`,
    );
    for (const ms of latencies) expect(ms).toBeLessThan(1000);
    for (const w of streams) w.close();
  });

  /** A minimal mTLS writer to replica B (the cluster's clients talk to A only). */
  async function openWriter(url: string) {
    const { createMtlsClient } = await import('../src/runtime/tls/client.ts');
    const { authorizeAny } = await import('../src/core/spiffe/authorizer.ts');
    const mtls = createMtlsClient({
      source,
      authorizer: authorizeAny(),
      baseUrl: url,
      timeoutMs: 10_000,
    });
    return {
      async put(path: string) {
        const r = await mtls.request('/v1/store/secrets', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ path, values: { v: path } }),
        });
        return r.status;
      },
      close: () => mtls.close(),
    };
  }
});
