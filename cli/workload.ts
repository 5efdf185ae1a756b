/**
 * The Workload API address and the one-line explanations of why no X.509-SVID was obtained,
 * shared by `spike whoami` (cli/commands/whoami.ts) and every command that connects to Nexus
 * (cli/session.ts). Each way of not getting an SVID has its own message (docs/spiffe.md §1.4, §2;
 * docs/spike-api.md §11): no socket, PermissionDenied, InvalidArgument, a timeout, and an SVID that
 * fails validation.
 */
import { existsSync } from 'node:fs';
import { isSpikeError } from '../src/core/errors.ts';
import type { EndpointAddress } from '../src/core/workload/address.ts';
import { GrpcCode } from '../src/core/workload/status.ts';
import { resolveEndpointAddress } from '../src/runtime/workload/client.ts';
import { EXIT, fail } from './output.ts';

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
