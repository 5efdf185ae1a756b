/**
 * `spike status` [Ours]: is SPIKE Nexus reachable, and is it ready (holding its root key)? It
 * asks `GET /ready` over mTLS (docs/spike-api.md §12), which any verified identity may call, so no
 * SPIKE role is needed.
 *
 * With several Nexus URLs (`SPIKE_NEXUS_API_URL=https://a:8553,https://b:8553`, docs/spike-api.md
 * §10.2) every replica is asked at once and listed (URL, reachable, state);
 * the service is ready when one replica is.
 *
 * What it cannot say: the API exposes neither the storage backend nor the Keepers (how many are
 * configured or hold a shard), so the report has `reachable` and `ready` only. Exit codes: 0
 * ready; 3 not ready or unreachable (docs/spike-api.md §11).
 */
import { defineCommand } from 'citty';
import type { ReplicaStatus } from '../../src/sdk/types.ts';
import { commandMeta } from '../help.ts';
import { CliExit, EXIT, fail, formatArg, parseFormat, printValue, writeErr } from '../output.ts';
import { CONNECT_MESSAGE, connect } from '../session.ts';

/** What `status -f json|yaml` prints. */
interface StatusReport {
  /** The Nexus URL asked. */
  readonly nexus: string;
  readonly reachable: boolean;
  readonly ready: boolean;
  /** Every configured replica, in order. */
  readonly replicas: readonly ReplicaStatus[];
}

function replicaLine(r: ReplicaStatus): string {
  const detail = r.reachable ? r.state.replace('_', ' ') : `unreachable (${r.error})`;
  return `  ${r.url}  ${detail}`;
}

const statusCommand = defineCommand({
  meta: commandMeta(['status'], 'Show whether SPIKE Nexus is reachable and ready', [
    'spike status',
    'spike status -f json',
  ]),
  args: { format: formatArg },
  async run({ args }) {
    const format = parseFormat(args.format);
    const spike = await connect();
    let report: StatusReport;
    try {
      const replicas = await spike.replicaStatus();
      const ready = replicas.find((r) => r.ready);
      const reached = replicas.find((r) => r.reachable);
      report = {
        nexus: (ready ?? reached ?? replicas[0]!).url,
        reachable: reached !== undefined,
        ready: ready !== undefined,
        replicas,
      };
    } finally {
      await spike.close();
    }
    // An identity problem (not a plain connection failure) is worth a line of its own.
    const problem = report.replicas.find(
      (r) => r.error !== undefined && r.error !== 'net_peer_connection',
    );
    if (!report.reachable && format === 'human') {
      if (problem !== undefined) writeErr(CONNECT_MESSAGE);
      fail(problem === undefined ? CONNECT_MESSAGE : `  ${problem.message}`, EXIT.unavailable);
    }
    printValue(format, report, () => {
      const head = report.ready ? 'SPIKE Nexus is ready.' : 'SPIKE Nexus is not ready.';
      if (report.replicas.length === 1) return head;
      const up = report.replicas.filter((r) => r.ready).length;
      return [
        `${head} ${up} of ${report.replicas.length} replicas ready:`,
        ...report.replicas.map(replicaLine),
      ].join('\n');
    });
    if (!report.reachable) fail(CONNECT_MESSAGE, EXIT.unavailable);
    if (!report.ready) throw new CliExit(EXIT.unavailable);
  },
});

export default statusCommand;
