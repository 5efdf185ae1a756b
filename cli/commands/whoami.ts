/**
 * `spike whoami`: fetches this process's X.509-SVID from the Workload API and prints its SPIFFE
 * ID, trust domain, expiry and chain length. It is the first thing to run when a command fails
 * with an identity problem, so every way of not getting an SVID has its own message
 * (docs/spiffe.md §1.4, §2; docs/spike-api.md §11): no socket, PermissionDenied, InvalidArgument, a
 * timeout, and an SVID that fails validation (cli/workload.ts, shared with the commands that
 * connect to Nexus). All of them exit 1.
 */
import { defineCommand } from 'citty';
import { parseGoDuration } from '../../src/core/duration.ts';
import { isSpikeError } from '../../src/core/errors.ts';
import type { X509Source, X509Svid } from '../../src/core/spiffe/types.ts';
import { createX509Source, ENDPOINT_ENV } from '../../src/runtime/workload/client.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, formatArg, formatFields, parseFormat, printValue } from '../output.ts';
import { explainSourceError, workloadAddress } from '../workload.ts';

/** What `whoami -f json|yaml` prints. */
interface WhoamiReport {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Leaf `notAfter`, ISO 8601 UTC. */
  readonly expiresAt: string;
  /** Certificates in the SVID chain: the leaf plus intermediates. */
  readonly chainLength: number;
  /** The Workload API `hint`, only when set. */
  readonly hint?: string;
}

function whoamiReport(svid: X509Svid): WhoamiReport {
  return {
    spiffeId: svid.id,
    trustDomain: svid.trustDomain,
    expiresAt: svid.notAfter.toISOString(),
    chainLength: svid.chain.length,
    ...(svid.hint !== '' && { hint: svid.hint }),
  };
}

const whoamiCommand = defineCommand({
  meta: commandMeta(
    ['whoami'],
    'Show the SPIFFE identity (X.509-SVID) this process gets from the Workload API',
    [
      'spike whoami',
      'spike whoami -f json --timeout 5s',
      '# ask a specific SPIRE Agent socket',
      'spike whoami --socket unix:///run/spire/agent-sockets/api.sock',
    ],
  ),
  args: {
    socket: {
      type: 'string',
      description: `Workload API address (unix:///path or tcp://IP:port); overrides ${ENDPOINT_ENV}`,
      valueHint: 'addr',
    },
    format: formatArg,
    timeout: {
      type: 'string',
      description: 'How long to wait for the SVID, as a Go duration (e.g. 5s); default 30s',
      valueHint: 'duration',
    },
  },
  async run({ args }) {
    const format = parseFormat(args.format);
    let timeoutMs: number | undefined;
    if (args.timeout !== undefined) {
      try {
        timeoutMs = parseGoDuration(args.timeout);
      } catch {
        fail('Error: Invalid --timeout: use a duration such as 5s or 1m.', EXIT.usage);
      }
      if (!(timeoutMs > 0)) fail('Error: Invalid --timeout: it must be positive.', EXIT.usage);
    }

    const address = workloadAddress(args.socket);

    let source: X509Source;
    try {
      source = createX509Source({
        address: args.socket,
        timeoutMs,
        // The command explains failures itself; the source's retry chatter stays quiet.
        logger: { info: () => {}, warn: () => {}, error: () => {} },
      });
    } catch (error) {
      fail(`Error: ${isSpikeError(error) ? error.message : 'invalid configuration'}`, EXIT.usage);
    }
    try {
      const context = await source.ready().catch((error: unknown) => {
        fail(explainSourceError(error, address, args.timeout ?? '30s'));
      });
      const svid = context.svids[0];
      if (svid === undefined) fail('Error: the Workload API returned no X.509-SVID');
      const report = whoamiReport(svid);
      printValue(format, report, () => {
        const seconds = Math.round((svid.notAfter.getTime() - Date.now()) / 1000);
        return formatFields([
          ['SPIFFE ID', report.spiffeId],
          ['Trust domain', report.trustDomain],
          ['Expires', `${report.expiresAt} (in ${seconds} s)`],
          ['Chain length', String(report.chainLength)],
          ...(report.hint !== undefined ? ([['Hint', report.hint]] as const) : []),
        ]);
      });
    } finally {
      await source.close();
    }
  },
});

export default whoamiCommand;
