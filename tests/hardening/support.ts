/**
 * Shared helpers of the hardening acceptance tests (issue 11): wire calls with status, headers,
 * raw body and latency; shard envelopes; total loss; soft checks that collect every missing
 * behaviour before failing once with all of them.
 *
 * Only the wire and process surface is used (tests/support/cluster.ts, tests/support/process.ts),
 * never a module under src/ directly.
 */
import { expect } from 'bun:test';
import type { Cluster, NexusClient } from '../support/cluster.ts';

/** The trust domain of every test cluster. */
const TD = 'spike.ist';

/** Identities the attack tests add to the development issuer (name → SPIFFE ID). */
export const ATTACKERS = {
  bootstrap: `spiffe://${TD}/spike/bootstrap`,
  'nexus-evil': `spiffe://${TD}/spike/nexus/evil`,
} as const;

/** One shard envelope (docs/spike-api.md §9). */
export interface Envelope {
  version: number;
  index: number;
  generation: string;
  kcv: string;
  shard: string;
}

/** A wire answer with everything a test may check. */
export interface WireAnswer {
  /** HTTP status; 0 when the request failed without an answer (refused connection, reset). */
  status: number;
  headers: Record<string, string>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary answer shapes
  json: any;
  /** Milliseconds from sending to the full answer. */
  ms: number;
  /** The client error when there was no answer. */
  error?: string;
}

/** POSTs `body` (JSON) to `path`; never throws (a failed request has status 0). */
export async function call(client: NexusClient, path: string, body: unknown): Promise<WireAnswer> {
  const started = performance.now();
  try {
    const response = await client.mtls.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = new TextDecoder().decode(response.body);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return {
      status: response.status,
      headers: response.headers,
      text,
      json,
      ms: performance.now() - started,
    };
  } catch (error) {
    return {
      status: 0,
      headers: {},
      text: '',
      json: undefined,
      ms: performance.now() - started,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    };
  }
}

/** A short description of an answer for failure messages (never a shard or a value). */
export function show(answer: WireAnswer): string {
  if (answer.status === 0) return `no answer (${answer.error}) after ${Math.round(answer.ms)} ms`;
  const err = answer.json?.err === undefined ? '' : ` err=${answer.json.err}`;
  return `${answer.status}${err} after ${Math.round(answer.ms)} ms`;
}

/** Lowercase hex of `bytes` random bytes. */
function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');
}

/**
 * A valid-looking envelope that is not Nexus's: a fresh random generation and a random 33-byte
 * share whose x-coordinate (last byte) is 1..255, so it passes every format check.
 */
export function forgedEnvelope(index: number, kcv: string, generation = randomHex(16)): Envelope {
  const share = crypto.getRandomValues(new Uint8Array(33));
  share[32] = 1 + (share[32]! % 255);
  return { version: 1, index, generation, kcv, shard: Buffer.from(share).toString('hex') };
}

/** The current generation's envelopes, by `POST /v1/operator/recover` as the recover role. */
export async function recoverEnvelopes(cluster: Cluster): Promise<Envelope[]> {
  const recover = await cluster.client('recover');
  try {
    const answer = await call(recover, '/v1/operator/recover', {});
    if (answer.status !== 200 || !Array.isArray(answer.json?.shards)) {
      throw new Error(`setup: /v1/operator/recover answered ${show(answer)}`);
    }
    return [...(answer.json.shards as Envelope[])].sort((a, b) => a.index - b.index);
  } finally {
    await recover.close();
  }
}

/** What Keeper `i` holds, read with the real Nexus identity (`[]` when it holds nothing). */
export async function keeperShards(cluster: Cluster, i: number): Promise<Envelope[]> {
  const client = await cluster.keeperClient(i);
  try {
    const answer = await call(client, '/v1/store/shard', {});
    return answer.status === 200 && Array.isArray(answer.json?.shards) ? answer.json.shards : [];
  } finally {
    await client.close();
  }
}

/** Writes one secret as the superuser; throws when it is not 200. */
export async function putSecret(
  cluster: Cluster,
  path: string,
  values: Record<string, string>,
): Promise<void> {
  const pilot = await cluster.client('pilot');
  try {
    const answer = await call(pilot, '/v1/store/secrets', { path, values });
    if (answer.status !== 200) throw new Error(`setup: secret put answered ${show(answer)}`);
  } finally {
    await pilot.close();
  }
}

/** Reads one secret as the superuser. */
export async function getSecret(cluster: Cluster, path: string): Promise<WireAnswer> {
  const pilot = await cluster.client('pilot');
  try {
    return await call(pilot, '/v1/store/secrets?action=get', { path });
  } finally {
    await pilot.close();
  }
}

/** Polls `check` every `everyMs` until true or `timeoutMs`; true when it became true. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await Bun.sleep(everyMs);
  }
}

/** Waits until every Keeper's health port says ready (it holds an envelope). */
export async function waitKeepersFilled(cluster: Cluster, timeoutMs = 30_000): Promise<void> {
  await cluster.waitUntil(
    async () => {
      for (let i = 1; i <= cluster.keepers.length; i++) {
        if ((await cluster.keeperReady(i)) !== 200) return false;
      }
      return true;
    },
    timeoutMs,
    'every Keeper holding a shard',
  );
}

/**
 * Total loss: Nexus and every Keeper SIGKILLed, the Keepers restarted empty, then Nexus; waits
 * until Nexus answers its health port with 503 (up, without a root key).
 */
export async function totalLoss(cluster: Cluster): Promise<void> {
  await cluster.nexus.kill();
  await Promise.all(cluster.keepers.map((k) => k.kill()));
  await Promise.all(cluster.keepers.map((k) => k.start()));
  await Promise.all(
    cluster.keepers.map((_, i) =>
      cluster.waitUntil(
        async () => (await cluster.keeperReady(i + 1)) !== 0,
        30_000,
        `keeper-${i + 1} up`,
      ),
    ),
  );
  await cluster.nexus.start();
  await cluster.waitUntil(
    async () => (await cluster.nexusReady()) === 503,
    60_000,
    'Nexus up without a key (503)',
  );
}

/**
 * Collects the required behaviours that are missing, so one run reports all of them:
 * `need(cond, 'what is required')`, then `done()` fails listing every unmet requirement.
 */
export class Requirements {
  readonly missing: string[] = [];
  readonly #finding: string;

  constructor(finding: string) {
    this.#finding = finding;
  }

  /** Records `requirement` as missing when `ok` is false; returns `ok`. */
  need(ok: boolean, requirement: string): boolean {
    if (!ok) this.missing.push(requirement);
    return ok;
  }

  /** Fails the test with every missing behaviour, or passes. */
  done(): void {
    const report =
      this.missing.length === 0
        ? ''
        : `${this.#finding}: required behaviour missing:\n  - ${this.missing.join('\n  - ')}`;
    expect(report).toBe('');
  }
}
