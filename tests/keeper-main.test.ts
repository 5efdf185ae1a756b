/**
 * The Keeper process end to end (src/keeper/main.ts): `bun src/keeper/main.ts` gets its SVID from
 * a Workload API double (tests/support/workload-double.ts, grpc-js) and serves real mTLS on
 * loopback; Nexus, Bootstrap and Pilot are real mTLS clients (src/runtime/tls/client.ts) with
 * SVIDs of the same trust domain. Checks the start-up role check, caller roles at connection and
 * per route, the plain health listener, SIGTERM, and that nothing it prints carries a shard.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { type Subprocess, spawn } from 'bun';
import { concatBytes } from '../src/core/bytes.ts';
import { type ShardEnvelope, splitRootKey } from '../src/core/shamir/shards.ts';
import { authorizeMatching } from '../src/core/spiffe/authorizer.ts';
import { hasRole } from '../src/core/spike/roles.ts';
import { type Authority, createRootAuthority, issueX509Svid } from '../src/dev/mint.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { createStaticSource } from './support/static-source.ts';
import { startWorkloadDouble, type WorkloadDouble } from './support/workload-double.ts';

const TD = 'spike.ist';
const KEEPER = `spiffe://${TD}/spike/keeper/keeper-1`;
const NEXUS = `spiffe://${TD}/spike/nexus`;
const BOOTSTRAP = `spiffe://${TD}/spike/bootstrap`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;

interface Running {
  readonly proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  readonly lines: string[];
  readonly stderr: () => Promise<string>;
  /** Resolves with the first stdout JSON line whose `msg` matches. */
  waitFor(msg: string): Promise<Record<string, unknown>>;
}

async function serve(double: WorkloadDouble, authority: Authority, id: string): Promise<void> {
  const leaf = await issueX509Svid(authority, id);
  double.pushX509({
    svids: [
      {
        spiffeId: id,
        x509Svid: concatBytes(...leaf.chain),
        x509SvidKey: leaf.privateKey,
        bundle: authority.certificate,
      },
    ],
  });
}

function startKeeper(address: string, extraEnv: Record<string, string> = {}): Running {
  const proc = spawn(['bun', 'src/keeper/main.ts'], {
    cwd: `${import.meta.dir}/..`,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      SPIFFE_ENDPOINT_SOCKET: address,
      SPIKE_KEEPER_TLS_PORT: '127.0.0.1:0',
      SPIKE_KEEPER_HEALTH_PORT: '127.0.0.1:0',
      SPIKE_SYSTEM_LOG_LEVEL: 'DEBUG',
      SPIKE_SPIFFE_SOURCE_TIMEOUT: '5s',
      ...extraEnv,
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const lines: string[] = [];
  const waiters: { msg: string; resolve: (v: Record<string, unknown>) => void }[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of proc.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      let nl = pending.indexOf('\n');
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        lines.push(line);
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          for (const w of waiters.filter((w) => w.msg === parsed.msg)) w.resolve(parsed);
        } catch {
          // not JSON: kept in `lines`, checked by the tests
        }
        nl = pending.indexOf('\n');
      }
    }
  })();
  return {
    proc,
    lines,
    stderr: () => new Response(proc.stderr).text(),
    waitFor(msg) {
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (parsed.msg === msg) return Promise.resolve(parsed);
        } catch {}
      }
      return new Promise((resolve, reject) => {
        waiters.push({ msg, resolve });
        setTimeout(() => reject(new Error(`no "${msg}" line; got:\n${lines.join('\n')}`)), 8000);
      });
    },
  };
}

async function clientAs(authority: Authority, id: string, port: number): Promise<MtlsClient> {
  const source = await createStaticSource(id, { authority });
  return createMtlsClient({
    source,
    authorizer: authorizeMatching((peer) => hasRole(peer.toString(), 'keeper', [TD]), 'keeper'),
    baseUrl: `https://127.0.0.1:${port}`,
    timeoutMs: 5000,
  });
}

const decode = (body: Uint8Array) => JSON.parse(new TextDecoder().decode(body)) as unknown;

describe('keeper process', () => {
  let authority: Authority;
  let double: WorkloadDouble;
  let keeper: Running;
  let port: number;
  let healthPort: number;
  let envelopes: ShardEnvelope[];
  let nexus: MtlsClient;
  let bootstrap: MtlsClient;

  beforeAll(async () => {
    authority = await createRootAuthority(TD);
    double = await startWorkloadDouble();
    await serve(double, authority, KEEPER);
    keeper = startKeeper(double.address);
    const ready = await keeper.waitFor('keeper ready for shards');
    port = ready.port as number;
    healthPort = ready.healthPort as number;
    envelopes = await splitRootKey(crypto.getRandomValues(new Uint8Array(32)), 3, 2);
    nexus = await clientAs(authority, NEXUS, port);
    bootstrap = await clientAs(authority, BOOTSTRAP, port);
  }, 20_000);

  afterAll(async () => {
    await nexus?.close();
    await bootstrap?.close();
    if (keeper !== undefined && keeper.proc.exitCode === null) keeper.proc.kill('SIGKILL');
    await double?.stop();
  });

  it('is not ready and holds nothing at first', async () => {
    const ready = await fetch(`http://127.0.0.1:${healthPort}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'not_ready', err: 'state_not_ready' });
    const res = await nexus.request('/v1/store/shard', { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
    expect(decode(res.body)).toEqual({ shards: null, err: 'api_not_found' });
  });

  it('nexus contributes and reads its shard back over mTLS', async () => {
    const put = await nexus.request('/v1/store/contribute', {
      method: 'POST',
      body: JSON.stringify(envelopes[0]),
    });
    expect(put.status).toBe(200);
    expect(decode(put.body)).toEqual({});
    expect(put.headers['content-type']).toBe('application/json');
    expect(put.headers['cache-control']).toBe('no-store, no-cache, must-revalidate, private');
    expect(nexus.peerId()).toBe(KEEPER);
    const get = await nexus.request('/v1/store/shard', { method: 'POST', body: '{}' });
    expect(get.status).toBe(200);
    expect(decode(get.body)).toEqual({ shards: [envelopes[0]] });
  });

  it('the plain health listener reports ready and serves nothing else', async () => {
    const health = await fetch(`http://127.0.0.1:${healthPort}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`http://127.0.0.1:${healthPort}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const shard = await fetch(`http://127.0.0.1:${healthPort}/v1/store/shard`, {
      method: 'POST',
      body: '{}',
    });
    expect(shard.status).toBe(400);
    expect(await shard.text()).not.toContain(envelopes[0]!.shard);
  });

  it('bootstrap may not replace a held shard, nor read', async () => {
    // The Keeper holds Nexus's shard from the tests above: bootstrap only fills an empty Keeper.
    const put = await bootstrap.request('/v1/store/contribute', {
      method: 'POST',
      body: JSON.stringify(envelopes[0]),
    });
    expect(put.status).toBe(409);
    expect(decode(put.body)).toEqual({ err: 'state_already_initialized' });
    const get = await bootstrap.request('/v1/store/shard', { method: 'POST', body: '{}' });
    expect(get.status).toBe(401);
    expect(decode(get.body)).toEqual({ shards: null, err: 'access_unauthorized' });
  });

  it('a pilot (or any other ID) is refused at the connection, before the app', async () => {
    const pilot = await clientAs(authority, PILOT, port);
    try {
      const outcome = await pilot.request('/v1/store/shard', { method: 'POST', body: '{}' }).then(
        (r) => ({ status: r.status, body: new TextDecoder().decode(r.body) }),
        (error: unknown) => ({ status: -1, body: String(error) }),
      );
      // The connection is dropped: no HTTP status at all, and certainly no shard.
      expect([0, -1]).toContain(outcome.status);
      expect(outcome.body).not.toContain(envelopes[0]!.shard);
      // The app never saw the request: a denial inside it would have been logged with the caller.
      expect(keeper.lines.some((l) => l.includes(PILOT))).toBe(false);
      expect(keeper.lines.some((l) => l.includes(BOOTSTRAP))).toBe(true);
    } finally {
      await pilot.close();
    }
  });

  it('SIGTERM stops it cleanly, and nothing it printed carries a shard', async () => {
    keeper.proc.kill('SIGTERM');
    expect(await keeper.proc.exited).toBe(0);
    const out = keeper.lines.join('\n');
    const err = await keeper.stderr();
    expect(out).toContain('shard stored');
    expect(out).toContain('stopping; shards wiped');
    for (const e of envelopes) {
      expect(out).not.toContain(e.shard);
      expect(err).not.toContain(e.shard);
      expect(out).not.toContain(e.kcv);
    }
    for (const line of keeper.lines) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('keeper start-up checks', () => {
  let authority: Authority;
  let double: WorkloadDouble;

  beforeAll(async () => {
    authority = await createRootAuthority(TD);
    double = await startWorkloadDouble();
  });

  afterAll(async () => {
    await double?.stop();
  });

  async function failsWith(env: Record<string, string>, text: string): Promise<void> {
    const run = startKeeper(double.address, { SPIKE_SYSTEM_LOG_LEVEL: 'WARN', ...env });
    const code = await run.proc.exited;
    // Let the stdout reader drain.
    await new Promise((r) => setTimeout(r, 50));
    expect(code).not.toBe(0);
    const errors = run.lines.filter((l) => l.includes('"level":"ERROR"'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(text);
  }

  it('refuses to start when its own SVID is not a keeper', async () => {
    await serve(double, authority, NEXUS);
    await failsWith({}, 'does not have the keeper role');
  });

  it('refuses to start when the keeper trust root is another domain', async () => {
    await serve(double, authority, KEEPER);
    await failsWith({ SPIKE_TRUST_ROOT_KEEPER: 'other.org' }, 'does not have the keeper role');
  });

  it('refuses a malformed port', async () => {
    await failsWith({ SPIKE_KEEPER_TLS_PORT: 'http://x' }, 'SPIKE_KEEPER_TLS_PORT');
  });

  it('refuses a malformed trust root', async () => {
    await failsWith({ SPIKE_TRUST_ROOT_NEXUS: 'Bad Domain' }, 'SPIKE_TRUST_ROOT_NEXUS');
  });
});
