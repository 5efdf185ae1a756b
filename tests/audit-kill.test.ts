/**
 * The audit trail is never dropped (docs/architecture.md "The audit trail: batched, never
 * dropped"; issue 12 criterion 3): audit lines are batched (src/nexus/audit-sink.ts), yet every
 * answered request has its line in Nexus's audit output even when Nexus is SIGKILLed the moment
 * the last answer arrives. Real processes: a Keeper, Nexus on SQLite, mTLS clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { readFileSync } from 'node:fs';
import { type Cluster, type NexusClient, startCluster } from './support/cluster.ts';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ keepers: 2, threshold: 2, logLevel: 'WARN' });
  await cluster.waitReady(60_000);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
});

describe('audit lines survive a SIGKILL right after the answers', () => {
  it('every answered put and get has its audit line', async () => {
    const clients: NexusClient[] = [];
    for (let i = 0; i < 4; i++) clients.push(await cluster.client('pilot'));
    const run = crypto.randomUUID().slice(0, 8);
    const paths = Array.from({ length: 160 }, (_, i) => `audit/${run}/p${i}`);
    // Puts and gets of distinct paths, many in flight at once, so lines share batches.
    const answers = await Promise.all(
      paths.map(async (path, i) => {
        const client = clients[i % clients.length]!;
        const put = await client.post('/v1/store/secrets', { path, values: { v: 'x' } });
        const get = await client.post('/v1/store/secrets?action=get', { path });
        return { path, put: put.status, get: get.status };
      }),
    );
    // The moment the last answer is in: no grace period for a flush.
    await cluster.nexus.kill('SIGKILL');
    expect(answers.every((a) => a.put === 200 && a.get === 200)).toBe(true);

    const lines = readFileSync(cluster.nexus.errLog, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { resource?: string; status?: number; route?: string });
    const seen = new Map<string, number>();
    for (const line of lines) {
      if (line.resource?.startsWith(`audit/${run}/`) && line.status === 200) {
        seen.set(line.resource, (seen.get(line.resource) ?? 0) + 1);
      }
    }
    const missing = paths.filter((p) => seen.get(p) !== 2);
    expect(missing).toEqual([]);
    for (const client of clients) await client.close();
  });
});
