/**
 * Break-glass through the real CLI against a real deployment (tests/support/cluster.ts: one Nexus
 * process, three Keeper processes, SQLite, mTLS with development SVIDs): `spike operator recover`
 * writes the recovery files; after a total loss (Nexus and every Keeper restarted empty) Nexus
 * stays not ready; two `spike operator restore` runs fed with those files bring it back with
 * its secrets, and the Keepers are refilled (spike-api.md §9, §11).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Cluster, startCluster } from './support/cluster.ts';

const ROOT = path.join(import.meta.dir, '..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let cluster: Cluster;
let recoveryBase: string;

async function spike(args: string[], role: string, stdin?: string): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(base)) {
    if (key.startsWith('SPIKE_') || key === 'SPIFFE_ENDPOINT_SOCKET') delete base[key];
  }
  const proc = Bun.spawn([process.execPath, 'cli/main.ts', ...args], {
    cwd: ROOT,
    env: {
      ...base,
      SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor(role),
      SPIKE_NEXUS_API_URL: cluster.nexusUrl,
      SPIKE_PILOT_RECOVERY_DIR: recoveryBase,
    },
    stdin: stdin === undefined ? 'ignore' : new Blob([stdin]),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  recoveryBase = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-cli-recovery-'));
  cluster = await startCluster({ keepers: 3, threshold: 2 });
  await cluster.waitReady(30_000);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  fs.rmSync(recoveryBase, { recursive: true, force: true });
});

describe('spike operator against Nexus with Keepers', () => {
  it('recover, total loss, restore from two recovery files', async () => {
    const put = await spike(['secret', 'put', 'cluster/db', 'pass=kept'], 'pilot');
    expect([put.code, put.stdout]).toEqual([0, 'OK\n']);

    const recovered = await spike(['operator', 'recover'], 'recover');
    expect(recovered.code).toBe(0);
    const dir = path.join(recoveryBase, 'recover');
    expect(recovered.stdout).toContain(`  ${dir}\n`);
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual(['spike.recovery.1.txt', 'spike.recovery.2.txt', 'spike.recovery.3.txt']);
    const lines = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));

    // Total loss: every process restarted with nothing in memory.
    await cluster.nexus.kill();
    await Promise.all(cluster.keepers.map((k) => k.kill()));
    await Promise.all(cluster.keepers.map((k) => k.start()));
    await cluster.nexus.start();
    await cluster.waitUntil(async () => (await cluster.nexusReady()) === 503, 20_000, 'Nexus up');

    const status = await spike(['status'], 'pilot');
    expect([status.code, status.stdout]).toEqual([3, 'SPIKE Nexus is not ready.\n']);
    const get = await spike(['secret', 'get', 'cluster/db'], 'pilot');
    expect([get.code, get.stderr]).toEqual([
      3,
      'SPIKE is not ready yet. Please wait a moment and try again.\n',
    ]);

    const first = await spike(['operator', 'restore'], 'restore', lines[1]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(' Shards collected: 1\n');
    expect(first.stdout).toContain(' Shards remaining: 1\n');

    const second = await spike(['operator', 'restore'], 'restore', `${lines[2]}\n`);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('SPIKE is now restored and ready to use.');

    await cluster.waitReady(10_000);
    const after = await spike(['secret', 'get', 'cluster/db', 'pass'], 'pilot');
    expect([after.code, after.stdout]).toEqual([0, 'kept\n']);
    // Nexus pushed a new generation to the (empty) Keepers.
    await cluster.waitUntil(
      async () =>
        (await Promise.all([1, 2, 3].map((i) => cluster.keeperReady(i)))).every((s) => s === 200),
      15_000,
      'Keepers refilled',
    );
  }, 90_000);
});
