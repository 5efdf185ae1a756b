/**
 * End to end under a real SPIRE Server and Agent (tests/support/spire.ts): Nexus, three Keepers
 * and the `spike` CLI run as the compiled executables of `bun run build`, each attested by SPIRE
 * through the path of its executable (`unix:path`), with 30-second X509-SVIDs so that SPIRE rotates
 * every identity several times during the run.
 *
 * Covered: first boot (root key generated, one shard per Keeper), identities as issued by SPIRE
 * (and none for an unregistered copy of an executable), secret put/get with the CLI, a policy for
 * a test workload and its read through the TypeScript SDK, Nexus SIGKILL and automatic recovery
 * from the Keepers, and at least two SVID rotations of Nexus's server certificate under
 * continuous traffic from three clients with zero failed requests.
 *
 * Run by `.ci/spire-suite` (which installs SPIRE and builds dist/); by hand:
 * `.ci/install-spire && bun run build && bun test --timeout=300000 tests/spire/e2e.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { authorizeMatching } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { hasRole } from '../../src/core/spike/roles.ts';
import { createMtlsClient } from '../../src/runtime/tls/client.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import {
  copyExecutable,
  IDS,
  ROOT,
  run,
  type SpikeOnSpire,
  type Spire,
  spikeBinaries,
  startSpikeOnSpire,
  startSpire,
  TRUST_DOMAIN,
} from '../support/spire.ts';

const SVID_TTL_SECONDS = 30;
const SECRET_PATH = 'apps/e2e/db';
const silent = { info() {}, warn() {}, error() {} };

let spire: Spire;
let spike: SpikeOnSpire;
let reader: string;
let driver: X509Source;

/** The last lines of a component's log, for failure messages. */
function tail(name: string, lines = 30): string {
  try {
    return readFileSync(join(spire.dir, 'logs', `${name}.log`), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

/** The JSON log lines a component wrote after byte `offset` of its log. */
function logSince(name: string, offset: number): Record<string, unknown>[] {
  const text = readFileSync(join(spire.dir, 'logs', `${name}.log`), 'utf8').slice(offset);
  const lines: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial last line
    }
  }
  return lines;
}

/** One request on a brand-new mTLS connection as the driver: status and Nexus's leaf serial. */
async function probe(
  body: unknown,
): Promise<{ status: number; serial: string; peer: string; json: unknown }> {
  const client = createMtlsClient({
    source: driver,
    authorizer: authorizeMatching((id) => hasRole(id.toString(), 'nexus', [TRUST_DOMAIN]), 'nexus'),
    baseUrl: spike.nexusUrl,
    timeoutMs: 10_000,
  });
  try {
    const response = await client.request('/v1/store/secrets?action=get', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = new TextDecoder().decode(response.body);
    return {
      status: response.status,
      serial: client.peerCertificateSerial() ?? '',
      peer: client.peerId() ?? '',
      json: text === '' ? undefined : JSON.parse(text),
    };
  } finally {
    await client.close();
  }
}

async function spikeCli(args: string[], env?: Record<string, string>) {
  return spike.run(spike.bin.spike, args, { ...(env !== undefined && { env }) });
}

beforeAll(async () => {
  spire = await startSpire({ x509SvidTtl: `${SVID_TTL_SECONDS}s` });
  // The SDK test workload gets its own executable (and so its own unix:path identity).
  const binDir = join(spire.dir, 'bin');
  mkdirSync(binDir);
  reader = join(binDir, 'sdk-reader');
  const build = await run(
    [process.execPath, 'build', '--compile', 'tests/spire/sdk-reader.ts', '--outfile', reader],
    { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? ROOT }, timeoutMs: 120_000 },
  );
  if (build.exitCode !== 0) throw new Error(`sdk-reader build failed: ${build.stderr}`);

  const bin = spikeBinaries();
  await spire.register([
    { spiffeId: IDS.nexus, binary: bin.nexus },
    { spiffeId: IDS.keeper, binary: bin.keeper },
    { spiffeId: IDS.pilot, binary: bin.spike },
    { spiffeId: IDS.reader, binary: reader },
    // This test process (bun) drives traffic and watches Nexus's certificate.
    { spiffeId: IDS.driver, binary: realpathSync(process.execPath) },
  ]);
  await spire.waitForEntries();
  spike = await startSpikeOnSpire(spire, {
    // Re-push shards often, so Nexus → Keeper mTLS runs across the rotations too.
    // DEBUG so that each re-push shows in the log (INFO logs only the first one per Keeper).
    nexusEnv: { SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '5s', SPIKE_SYSTEM_LOG_LEVEL: 'DEBUG' },
  });
  driver = createX509Source({ address: spire.agentAddress, timeoutMs: 20_000, logger: silent });
  await driver.ready();
}, 240_000);

afterAll(async () => {
  await driver?.close();
  await spike?.close();
  await spire?.close();
});

describe('SPIKE under a real SPIRE Server and Agent', () => {
  it('first boot: Nexus generates the root key and every Keeper receives its shard', async () => {
    try {
      await spike.waitReady(60_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- nexus\n${tail('nexus')}`);
    }
    const ready = await spike.nexus.waitForLog('root key installed; nexus is ready');
    expect(ready.source).toBe('first-boot');
    const deadline = Date.now() + 20_000;
    let statuses: number[] = [];
    while (Date.now() < deadline) {
      statuses = await Promise.all([1, 2, 3].map((i) => spike.keeperReady(i)));
      if (statuses.every((s) => s === 200)) break;
      await Bun.sleep(200);
    }
    expect(statuses).toEqual([200, 200, 200]);
    const status = await spikeCli(['status']);
    expect(status.stdout.trim()).toBe('SPIKE Nexus is ready.');
    expect(status.exitCode).toBe(0);
  }, 90_000);

  it('each executable holds the identity SPIRE issued for its path; an unregistered copy gets none', async () => {
    const pilot = await spikeCli(['whoami', '-f', 'json']);
    expect(pilot.exitCode).toBe(0);
    expect(JSON.parse(pilot.stdout)).toMatchObject({
      spiffeId: IDS.pilot,
      trustDomain: TRUST_DOMAIN,
    });

    const workload = await spike.run(reader, ['whoami']);
    expect(workload.exitCode).toBe(0);
    expect(JSON.parse(workload.stdout).spiffeId).toBe(IDS.reader);

    expect(driver.current()?.svids[0]?.id).toBe(IDS.driver);
    const seen = await probe({ path: SECRET_PATH });
    expect(seen.peer).toBe(IDS.nexus);
    expect(seen.serial).toMatch(/^[0-9a-f]+$/);

    // Same bytes, another path: SPIRE's unix attestor really checks the path.
    const copy = copyExecutable(spike.bin.spike, join(spire.dir, 'bin'), 'spike-unregistered');
    const stranger = await spike.run(copy, ['whoami'], {
      env: { SPIKE_SPIFFE_SOURCE_TIMEOUT: '3s' },
    });
    expect(stranger.exitCode).toBe(1);
    expect(stranger.stdout).not.toContain('spiffe://');
    expect(stranger.stderr).toMatch(/PermissionDenied|no identity/);
  }, 60_000);

  it('secret put and get through the spike CLI', async () => {
    const put = await spikeCli(['secret', 'put', SECRET_PATH, 'user=app', 'pass=first-value']);
    expect(put.stderr).toBe('');
    expect(put.stdout.trim()).toBe('OK');
    expect(put.exitCode).toBe(0);
    const get = await spikeCli(['secret', 'get', SECRET_PATH, '-f', 'json']);
    expect(get.exitCode).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ pass: 'first-value', user: 'app' });
    const missing = await spikeCli(['secret', 'get', 'apps/e2e/none']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/^Error: .*not found\.\n$/);
  }, 60_000);

  it('a policy lets the test workload read with the TypeScript SDK, and nothing else', async () => {
    const before = await spike.run(reader, ['get', SECRET_PATH]);
    expect(JSON.parse(before.stdout)).toEqual({ error: 'access_unauthorized' });
    expect(before.exitCode).toBe(1);

    // One policy per workload: the SPIFFE-pattern grammar (docs/spike-api.md §5) has no `|`.
    for (const [name, id] of [
      ['e2e-reader', 'reader'],
      ['e2e-driver', 'e2e-driver'],
    ] as const) {
      const create = await spikeCli([
        'policy',
        'create',
        '--name',
        name,
        '--spiffeid-pattern',
        `^spiffe://spike\\.ist/workload/${id}$`,
        '--path-pattern',
        '^apps/e2e/.*$',
        '--permissions',
        'read',
      ]);
      expect(create.stderr).toBe('');
      expect(create.stdout.trim()).toBe('Policy created successfully.');
    }

    const after = await spike.run(reader, ['get', SECRET_PATH]);
    expect(after.exitCode).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual({ data: { pass: 'first-value', user: 'app' } });

    await spikeCli(['secret', 'put', 'apps/other/db', 'k=v']);
    const outside = await spike.run(reader, ['get', 'apps/other/db']);
    expect(JSON.parse(outside.stdout)).toEqual({ error: 'access_unauthorized' });

    const seen = await probe({ path: SECRET_PATH });
    expect(seen.status).toBe(200);
    expect(seen.json).toEqual({ data: { pass: 'first-value', user: 'app' }, version: 1 });
  }, 60_000);

  it('Nexus SIGKILL: the restarted Nexus recovers its root key from the Keepers by itself', async () => {
    const put = await spikeCli(['secret', 'put', SECRET_PATH, 'user=app', 'pass=second-value']);
    expect(put.exitCode).toBe(0);
    await spike.nexus.kill('SIGKILL');
    expect(await spike.nexusReady()).toBe(0);

    const started = performance.now();
    spike.nexus.start();
    try {
      await spike.waitReady(60_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- nexus\n${tail('nexus')}`);
    }
    const recoveredMs = Math.round(performance.now() - started);
    await spike.nexus.waitForLog('key-check record found: asking keepers for shards');
    const ready = await spike.nexus.waitForLog('root key installed; nexus is ready');
    expect(ready.source).toBe('keepers');
    console.log(`nexus recovered from the keepers ${recoveredMs} ms after the restart`);

    const read = await spike.run(reader, ['get', SECRET_PATH]);
    expect(read.exitCode).toBe(0);
    expect(JSON.parse(read.stdout)).toEqual({ data: { pass: 'second-value', user: 'app' } });
  }, 90_000);

  it('SVID rotation under continuous traffic: at least two rotations of Nexus, zero failed requests', async () => {
    const expected = { pass: 'second-value', user: 'app' };
    const maxMs = 6 * SVID_TTL_SECONDS * 1000;
    const logOffset = statSync(spike.nexus.log).size;
    const start = performance.now();
    const nexusSerials = new Set<string>();
    const driverSerials = new Set<string>();
    const failures: string[] = [];
    let driverRequests = 0;
    let cliRequests = 0;
    let keeperChecks = 0;
    /** When each new Nexus serial was first seen (seconds into this phase). */
    const changes: string[] = [];

    // 1. The compiled SDK workload: one pooled HTTP/2 session, no retries, until told to stop.
    const readerProc = Bun.spawn([reader, 'loop', SECRET_PATH, String(maxMs + 30_000), '50'], {
      env: spike.clientEnv(),
      stdout: 'pipe',
      stderr: 'pipe',
    });
    let stop = false;

    // 2. The driver (this process): a new TLS connection per request, watching Nexus's serial.
    const driverLoop = (async () => {
      while (!stop) {
        try {
          const r = await probe({ path: SECRET_PATH });
          driverRequests++;
          // The wire answer carries the version read beside the data (docs/spike-api.md §4).
          if (r.status !== 200 || !Bun.deepEquals((r.json as { data?: unknown })?.data, expected)) {
            failures.push(`driver: status ${r.status}`);
          }
          // '' = the client dropped its session right after the answer (its own SVID rotated):
          // the request counts, the serial was not observed.
          if (r.serial !== '' && !nexusSerials.has(r.serial)) {
            changes.push(
              `${((performance.now() - start) / 1000).toFixed(1)}s ${r.serial.slice(0, 8)}`,
            );
            nexusSerials.add(r.serial);
          }
        } catch (error) {
          driverRequests++;
          failures.push(`driver: ${(error as Error).message}`);
        }
        const own = driver.current()?.svids[0]?.serial;
        if (own !== undefined) driverSerials.add(own);
        for (const i of [1, 2, 3]) {
          keeperChecks++;
          const status = await spike.keeperReady(i);
          if (status !== 200) failures.push(`keeper-${i}: /ready ${status}`);
        }
        await Bun.sleep(250);
      }
    })();

    // 3. The spike CLI: a new process (and a fresh SVID fetch) per request.
    const cliLoop = (async () => {
      while (!stop) {
        const r = await spikeCli(['secret', 'get', SECRET_PATH, '-f', 'json']);
        cliRequests++;
        let same = false;
        try {
          same = Bun.deepEquals(JSON.parse(r.stdout), expected);
        } catch {
          same = false;
        }
        if (r.exitCode !== 0 || !same) failures.push(`cli: exit ${r.exitCode} ${r.stderr.trim()}`);
        await Bun.sleep(500);
      }
    })();

    // Until Nexus has shown three certificates (two rotations) and at least one SVID lifetime has
    // passed, so that every client's own SVID rotated too (SPIRE rotates at about half-life).
    const minMs = SVID_TTL_SECONDS * 1000;
    while (
      performance.now() - start < maxMs &&
      (nexusSerials.size < 3 || performance.now() - start < minMs)
    ) {
      await Bun.sleep(250);
    }
    // A little more traffic after the last rotation, then stop everything.
    await Bun.sleep(2000);
    stop = true;
    await Promise.all([driverLoop, cliLoop]);
    readerProc.kill('SIGTERM');
    const [readerOut, readerErr] = await Promise.all([
      new Response(readerProc.stdout).text(),
      new Response(readerProc.stderr).text(),
      readerProc.exited,
    ]);
    const elapsed = Math.round((performance.now() - start) / 1000);
    let summary: {
      ok: number;
      failed: number;
      mismatched: number;
      errors: string[];
      serials: string[];
    };
    try {
      summary = JSON.parse(readerOut.trim().split('\n').at(-1) ?? '');
    } catch {
      throw new Error(`sdk-reader printed no summary: ${readerOut} ${readerErr}`);
    }
    console.log(
      `rotation: ${elapsed} s, nexus serials ${nexusSerials.size}, driver serials ${driverSerials.size}, ` +
        `reader serials ${summary.serials.length}; requests: sdk ${summary.ok + summary.failed}, ` +
        `driver ${driverRequests}, cli ${cliRequests}; keeper checks ${keeperChecks}; ` +
        `nexus serials first seen at: ${changes.join(', ')}`,
    );

    // Nexus kept re-pushing shards to every Keeper over mTLS across the rotations (both sides
    // rotate), and not one push failed.
    const nexusLog = logSince('nexus', logOffset);
    const pushed = nexusLog.filter((l) => l.msg === 'shard sent to keeper');
    const pushFailures = nexusLog.filter((l) => l.level === 'WARN' || l.level === 'ERROR');
    const perKeeper = [1, 2, 3].map((k) => pushed.filter((l) => l.keeper === k).length);
    console.log(`nexus re-pushed shards during the rotations: ${perKeeper.join(', ')} per keeper`);
    expect(pushFailures).toEqual([]);
    for (const count of perKeeper) expect(count).toBeGreaterThanOrEqual(2);

    expect(failures).toEqual([]);
    expect({
      failed: summary.failed,
      mismatched: summary.mismatched,
      errors: summary.errors,
    }).toEqual({
      failed: 0,
      mismatched: 0,
      errors: [],
    });
    // Three distinct serials on Nexus's server certificate = at least two rotations.
    expect(nexusSerials.size).toBeGreaterThanOrEqual(3);
    // The clients' own SVIDs rotated too, while they kept working.
    expect(driverSerials.size).toBeGreaterThanOrEqual(2);
    expect(summary.serials.length).toBeGreaterThanOrEqual(2);
    expect(summary.ok).toBeGreaterThan(50);
    expect(cliRequests).toBeGreaterThan(5);
  }, 300_000);
});
