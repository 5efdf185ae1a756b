/**
 * Issue 11, finding 2 (restore), black-box: real Nexus and Keeper processes over mTLS on
 * loopback, the restore role from the development issuer, and the real CLI.
 *
 * Setup: a secret is written, recovery envelopes of generation G1 are taken
 * (`/v1/operator/recover`), Nexus is restarted (it recovers from the Keepers and mints G2) and
 * G2's envelopes are taken too: the honest operator's mix of recovery files from before and after
 * a restart. Then total loss (every Keeper and Nexus killed, Keepers restarted empty).
 *
 * Required (issue 11):
 * - restore reports what it holds: `generation`, `collected`, `threshold` (beside the existing
 *   `collected`/`remaining`/`restored`), on success and on refusal;
 * - a shard of a different generation → 400 whose body says "different generation", and the
 *   held shard is still reported (not `collected:0`); the CLI says so too (exit 1);
 * - collected shards can be discarded: `spike operator restore --reset` (CLI) and, proposed as
 *   its wire form, `POST /v1/operator/restore?action=reset` with `{}` → 200
 *   `{"collected":0,"remaining":t,"restored":false,…}`;
 * - two concurrent restore calls at the threshold both tell the truth: `restored:true`, or 409
 *   `state_already_initialized`; never another error and never a `collected:0` lie.
 */
import { afterAll, beforeAll, describe, it, setDefaultTimeout } from 'bun:test';
import { type Cluster, type NexusClient, startCluster } from '../support/cluster.ts';
import { cleanEnv, runCli } from '../support/process.ts';
import {
  call,
  type Envelope,
  getSecret,
  putSecret,
  Requirements,
  recoverEnvelopes,
  show,
  totalLoss,
  type WireAnswer,
  waitKeepersFilled,
} from './support.ts';

setDefaultTimeout(240_000);

const THRESHOLD = 2;
const RESTORE = '/v1/operator/restore';
const RESET = '/v1/operator/restore?action=reset';
const CANARY = 'hardening/restore-canary';

let cluster: Cluster;
let restore: NexusClient;
/** Envelopes of the first generation (before the restart) and of the second (after it). */
let g1: Envelope[] = [];
let g2: Envelope[] = [];

function cliEnv(): Record<string, string> {
  return {
    ...cleanEnv(),
    SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor('restore'),
    SPIKE_NEXUS_API_URL: cluster.nexusUrl,
  };
}

/** A recovery file's line for `e` (docs/spike-api.md §11). */
function recoveryLine(e: Envelope): string {
  return `spike-recovery:1:${e.index}:${e.generation}:${e.kcv}:${e.shard}`;
}

/** Checks that a restore answer reports the held state `expected` (the new fields). */
function reports(
  req: Requirements,
  answer: WireAnswer,
  expected: { generation: string; collected: number },
  what: string,
): void {
  const j = answer.json ?? {};
  req.need(
    j.generation === expected.generation,
    `${what}: restore must report the held generation (\`generation\`: ${expected.generation}), got ${JSON.stringify(j.generation)}`,
  );
  req.need(
    j.collected === expected.collected,
    `${what}: restore must report how many shards it holds (\`collected\`: ${expected.collected}), got ${JSON.stringify(j.collected)}`,
  );
  req.need(
    j.threshold === THRESHOLD,
    `${what}: restore must report the threshold (\`threshold\`: ${THRESHOLD}), got ${JSON.stringify(j.threshold)}`,
  );
  req.need(
    j.remaining === THRESHOLD - expected.collected,
    `${what}: \`remaining\` must be ${THRESHOLD - expected.collected}, got ${JSON.stringify(j.remaining)}`,
  );
}

beforeAll(async () => {
  cluster = await startCluster({ keepers: 3, threshold: THRESHOLD });
  await cluster.waitReady(60_000);
  await waitKeepersFilled(cluster);
  await putSecret(cluster, CANARY, { k: 'survives-total-loss' });
  g1 = await recoverEnvelopes(cluster);
  // A restart: Nexus recovers from the Keepers and mints a new generation (docs/spike-api.md §9).
  await cluster.nexus.kill('SIGKILL');
  await cluster.nexus.start();
  await cluster.waitReady(60_000);
  await waitKeepersFilled(cluster);
  g2 = await recoverEnvelopes(cluster);
  if (g1[0]?.generation === g2[0]?.generation) {
    throw new Error('setup: the restart did not mint a new generation');
  }
  await totalLoss(cluster);
  restore = await cluster.client('restore');
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe('issue 11 finding 2: restore after total loss', () => {
  it('restore reports what it holds: generation, collected, threshold', async () => {
    const req = new Requirements('finding 2 (restore reports its state)');
    const first = await call(restore, RESTORE, g1[0]);
    if (req.need(first.status === 200, `the first G1 shard must be accepted, got ${show(first)}`)) {
      req.need(first.json?.restored === false, 'one shard of two must not restore');
      reports(req, first, { generation: g1[0]!.generation, collected: 1 }, 'first shard');
    }
    req.done();
  });

  it('a shard of a different generation: 400 saying "different generation", the held shard still reported', async () => {
    const req = new Requirements('finding 2 (different generation)');
    const mixed = await call(restore, RESTORE, g2[1]);
    req.need(mixed.status === 400, `a G2 shard after a G1 shard must be 400, got ${show(mixed)}`);
    req.need(
      /different generation/i.test(mixed.text),
      `the 400 body must say "different generation" (got ${mixed.text})`,
    );
    reports(req, mixed, { generation: g1[0]!.generation, collected: 1 }, 'refused G2 shard');
    // The operator sees it through the CLI too (a recovery file from after the restart).
    const cli = await runCli(['operator', 'restore'], {
      env: cliEnv(),
      stdin: recoveryLine(g2[2]!),
    });
    req.need(
      cli.code === 1 && /different generation/i.test(cli.stderr),
      `\`spike operator restore\` with a shard of another generation must exit 1 and say ` +
        `"different generation" on stderr, got ${cli.code}: ${cli.stderr.trim()}`,
    );
    req.done();
  });

  it('wire reset (proposed): POST /v1/operator/restore?action=reset discards the collected shards', async () => {
    const req = new Requirements('finding 2 (wire reset)');
    const reset = await call(restore, RESET, {});
    req.need(
      reset.status === 200,
      `POST ${RESET} {} must answer 200 (reset of collected shards), got ${show(reset)}`,
    );
    req.need(
      reset.json?.collected === 0 && reset.json?.restored === false,
      `after a reset restore must report collected:0 restored:false, got ${reset.text}`,
    );
    req.need(
      reset.json?.remaining === THRESHOLD && reset.json?.threshold === THRESHOLD,
      `after a reset remaining and threshold must both be ${THRESHOLD}, got ${reset.text}`,
    );
    // After the reset another generation is welcome.
    const other = await call(restore, RESTORE, g2[1]);
    req.need(
      other.status === 200,
      `after the reset a G2 shard must be accepted, got ${show(other)} ${other.text}`,
    );
    reports(req, other, { generation: g2[1]!.generation, collected: 1 }, 'G2 shard after reset');
    req.done();
  });

  it('CLI: spike operator restore --reset discards the collected shards', async () => {
    const req = new Requirements('finding 2 (spike operator restore --reset)');
    const first = await runCli(['operator', 'restore', '--reset'], { env: cliEnv(), stdin: '' });
    req.need(
      first.code === 0,
      `\`spike operator restore --reset\` must exit 0, got ${first.code}: ${first.stderr.trim()}`,
    );
    // Hold one G1 shard, reset through the CLI, then a G2 shard must start a new collection.
    const held = await call(restore, RESTORE, g1[0]);
    req.need(held.status === 200, `a G1 shard after a reset must be accepted, got ${show(held)}`);
    const second = await runCli(['operator', 'restore', '--reset'], { env: cliEnv(), stdin: '' });
    req.need(
      second.code === 0,
      `\`spike operator restore --reset\` must exit 0, got ${second.code}: ${second.stderr.trim()}`,
    );
    const other = await call(restore, RESTORE, g2[2]);
    req.need(
      other.status === 200 && other.json?.collected === 1,
      `after \`--reset\` the held G1 shard must be gone: a G2 shard must give 200 collected:1, got ${show(other)} ${other.text}`,
    );
    req.done();
  });

  it('two concurrent restore calls at the threshold both report the truth; Nexus is back', async () => {
    const req = new Requirements('finding 2 (concurrent restore at the threshold)');
    // A fresh total loss: nothing collected, whatever the earlier tests left.
    await restore.close();
    await totalLoss(cluster);
    restore = await cluster.client('restore');
    const second = await cluster.client('restore');
    try {
      const first = await call(restore, RESTORE, g2[0]);
      req.need(first.status === 200, `the first G2 shard must be accepted, got ${show(first)}`);
      const answers = await Promise.all([
        call(restore, RESTORE, g2[1]),
        call(second, RESTORE, g2[2]),
      ]);
      for (const [n, a] of answers.entries()) {
        const truthful =
          (a.status === 200 && a.json?.restored === true) ||
          (a.status === 409 && a.json?.err === 'state_already_initialized');
        req.need(
          truthful,
          `concurrent call ${n + 1} at the threshold must answer 200 restored:true or 409 ` +
            `state_already_initialized, got ${show(a)} ${a.text}`,
        );
      }
      req.need(
        answers.some((a) => a.status === 200 && a.json?.restored === true),
        'one of the concurrent calls must report restored:true',
      );
    } finally {
      await second.close();
    }
    const back = await cluster
      .waitReady(30_000)
      .then(() => true)
      .catch(() => false);
    if (req.need(back, 'after the restore Nexus must be ready')) {
      const read = await getSecret(cluster, CANARY);
      req.need(
        read.status === 200 && read.json?.data?.k === 'survives-total-loss',
        `the secret written before the loss must read back, got ${show(read)}`,
      );
    }
    req.done();
  });
});
