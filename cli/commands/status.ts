/**
 * `spike status` [Ours]: is SPIKE Nexus reachable, and is it ready (holding its root key)? It
 * asks `GET /ready` over mTLS (docs/spike-api.md §12), which any verified identity may call, so no
 * SPIKE role is needed.
 *
 * What it cannot say: the API exposes neither the storage backend nor the Keepers (how many are
 * configured or hold a shard), so the report has `reachable` and `ready` only. Exit codes: 0
 * ready; 3 not ready or unreachable (docs/spike-api.md §11).
 */
import { defineCommand } from 'citty';
import { isSpikeError } from '../../src/core/errors.ts';
import { commandMeta } from '../help.ts';
import { CliExit, EXIT, fail, formatArg, parseFormat, printValue, writeErr } from '../output.ts';
import { CONNECT_MESSAGE, connect } from '../session.ts';

/** What `status -f json|yaml` prints. */
interface StatusReport {
  /** The Nexus URL asked. */
  readonly nexus: string;
  readonly reachable: boolean;
  readonly ready: boolean;
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
    let problem: string | undefined;
    try {
      report = { nexus: spike.apiUrl, reachable: true, ready: await spike.ready() };
    } catch (error) {
      if (!isSpikeError(error)) throw error;
      report = { nexus: spike.apiUrl, reachable: false, ready: false };
      problem = error.code === 'net_peer_connection' ? undefined : error.message;
    } finally {
      await spike.close();
    }
    if (!report.reachable && format === 'human') {
      if (problem !== undefined) writeErr(CONNECT_MESSAGE);
      fail(problem === undefined ? CONNECT_MESSAGE : `  ${problem}`, EXIT.unavailable);
    }
    printValue(format, report, () =>
      report.ready ? 'SPIKE Nexus is ready.' : 'SPIKE Nexus is not ready.',
    );
    if (!report.reachable) fail(CONNECT_MESSAGE, EXIT.unavailable);
    if (!report.ready) throw new CliExit(EXIT.unavailable);
  },
});

export default statusCommand;
