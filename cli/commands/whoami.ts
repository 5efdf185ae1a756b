/**
 * `spike whoami`: fetches this process's X.509-SVID from the Workload API and prints its SPIFFE
 * ID, trust domain, expiry and chain length. It is the first thing to run when a command fails
 * with an identity problem, so every way of not getting an SVID has its own message
 * (spec/spiffe.md §1.4, §2; spike-api.md §11): no socket, PermissionDenied, InvalidArgument, a
 * timeout, and an SVID that fails validation. All of them exit 1.
 */
import { existsSync } from 'node:fs';
import { defineCommand } from 'citty';
import { parseGoDuration } from '../../src/core/duration.ts';
import { isSpikeError } from '../../src/core/errors.ts';
import type { X509Source, X509Svid } from '../../src/core/spiffe/types.ts';
import type { EndpointAddress } from '../../src/core/workload/address.ts';
import { GrpcCode } from '../../src/core/workload/status.ts';
import {
  createX509Source,
  ENDPOINT_ENV,
  resolveEndpointAddress,
} from '../../src/runtime/workload/client.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, formatArg, formatFields, parseFormat, printValue } from '../output.ts';

/** What `whoami -f json|yaml` prints. */
export interface WhoamiReport {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Leaf `notAfter`, ISO 8601 UTC. */
  readonly expiresAt: string;
  /** Certificates in the SVID chain: the leaf plus intermediates. */
  readonly chainLength: number;
  /** The Workload API `hint`, only when set. */
  readonly hint?: string;
}

export function whoamiReport(svid: X509Svid): WhoamiReport {
  return {
    spiffeId: svid.id,
    trustDomain: svid.trustDomain,
    expiresAt: svid.notAfter.toISOString(),
    chainLength: svid.chain.length,
    ...(svid.hint !== '' && { hint: svid.hint }),
  };
}

function describeAddress(address: EndpointAddress): string {
  return address.kind === 'unix' ? address.path : `${address.host}:${address.port}`;
}

const NO_AGENT = 'is the SPIRE Agent running?';

/** The one-line explanation of why no SVID was obtained. */
export function explainSourceError(
  error: unknown,
  address: EndpointAddress,
  timeout: string,
): string {
  const where = describeAddress(address);
  const e = error as {
    code?: string;
    grpcCode?: number;
    grpcMessage?: string;
    errno?: string;
    message?: string;
    cause?: unknown;
  };
  if (e.errno === 'ENOENT') return `Error: no Workload API socket at ${where}: ${NO_AGENT}`;
  if (e.errno === 'ECONNREFUSED') {
    return `Error: nothing is listening on the Workload API socket at ${where}: ${NO_AGENT}`;
  }
  if (e.errno === 'EACCES') {
    return `Error: permission denied on the Workload API socket at ${where} (check its mode and owner)`;
  }
  if (e.grpcCode === GrpcCode.PERMISSION_DENIED) {
    return 'Error: the Workload API issued no identity (PermissionDenied): no registration entry matches this process';
  }
  if (e.grpcCode === GrpcCode.INVALID_ARGUMENT) {
    const detail = e.grpcMessage ? `: ${e.grpcMessage}` : '';
    return `Error: the Workload API rejected the request (InvalidArgument)${detail}`;
  }
  const cause = e.cause as { code?: string; message?: string } | undefined;
  if (
    isSpikeError(cause) &&
    (cause.code === 'svid_invalid' ||
      cause.code === 'svid_untrusted' ||
      cause.code === 'spiffe_invalid_id')
  ) {
    return `Error: the X.509-SVID from the Workload API failed validation: ${cause.message}`;
  }
  if (e.code === 'workload_api_timeout') {
    const status = e.grpcCode !== undefined && e.message ? ` (${e.message})` : '';
    return `Error: timed out after ${timeout} waiting for an X.509-SVID from ${where}${status}`;
  }
  return `Error: cannot get an X.509-SVID from ${where}: ${e.message ?? String(error)}`;
}

/**
 * The Workload API address (`socket`, else `SPIFFE_ENDPOINT_SOCKET`). A bad one is a usage error
 * (exit 2); a missing unix socket ends the command at once (exit 1), as the source would
 * otherwise retry it until its timeout.
 */
export function workloadAddress(socket?: string): EndpointAddress {
  let address: EndpointAddress;
  try {
    address = resolveEndpointAddress(socket);
  } catch (error) {
    fail(
      `Error: ${isSpikeError(error) ? error.message : 'invalid Workload API address'}`,
      EXIT.usage,
    );
  }
  if (address.kind === 'unix' && !existsSync(address.path)) {
    fail(`Error: no Workload API socket at ${address.path}: ${NO_AGENT}`);
  }
  return address;
}

export const whoamiCommand = defineCommand({
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
