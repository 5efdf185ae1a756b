/**
 * An example workload: reads one secret from SPIKE Nexus with the TypeScript SDK and reports
 * which keys it got, never their values. It is the demo service of compose.yaml and the SDK
 * example that `bun run dev` prints.
 *
 *   SPIFFE_ENDPOINT_SOCKET=unix:///path/to/agent.sock SPIKE_NEXUS_API_URL=https://nexus:8553 \
 *     bun src/examples/demo-workload.ts [path] [--every <seconds>]
 *
 * `path` defaults to `SPIKE_DEMO_SECRET_PATH`, else `secrets/demo/db`. With `--every`, it reads
 * again at that interval until stopped (SIGINT/SIGTERM), showing that access keeps working across
 * SVID rotations. The workload needs a policy granting `read` on the path to its SPIFFE ID
 * (docs/spike-api.md §7); without one Nexus answers 401 and this program says so.
 *
 * Each link of the chain that can be missing has its own message on stderr (tests/e2e.test.ts
 * asserts them): no Workload API socket or nothing listening on it (the SPIRE Agent is not
 * running), PermissionDenied from the Workload API (no registration entry matches this process),
 * and Nexus's 401 (no policy grants this SPIFFE ID `read` on the path).
 *
 * Exit codes: 0 read; 1 no SPIFFE identity, Nexus refused, or the secret does not exist; 2 bad
 * arguments; 3 Nexus not ready or unreachable.
 */
import { createClient, isSpikeError, type SpikeClient, type SpikeError } from '../index.ts';

const DEFAULT_PATH = 'secrets/demo/db';

function parseArgs(argv: readonly string[]): { path: string; everyMs?: number } {
  let path: string | undefined;
  let everyMs: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--every') {
      const seconds = Number(argv[++i]);
      if (!(seconds > 0)) throw new Error('--every needs a positive number of seconds');
      everyMs = seconds * 1000;
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown flag ${arg}`);
    } else if (path === undefined) {
      path = arg;
    } else {
      throw new Error('only one secret path is read');
    }
  }
  const chosen = path ?? process.env.SPIKE_DEMO_SECRET_PATH ?? DEFAULT_PATH;
  return everyMs === undefined ? { path: chosen } : { path: chosen, everyMs };
}

/**
 * Why `createClient()` got no SVID, in one line, worded as `spike whoami` words it. Workload API
 * errors carry the gRPC status code (`grpcCode`) and, when the socket itself failed, the `errno`.
 */
function explainNoIdentity(error: SpikeError): string {
  const { grpcCode, errno } = error as SpikeError & { grpcCode?: number; errno?: string };
  const socket = process.env.SPIFFE_ENDPOINT_SOCKET || 'the default Workload API address';
  if (errno === 'ENOENT') {
    return `no Workload API socket at ${socket}: is the SPIRE Agent running?`;
  }
  if (errno === 'ECONNREFUSED') {
    return `nothing is listening on the Workload API socket at ${socket}: is the SPIRE Agent running?`;
  }
  if (grpcCode === 7) {
    // gRPC PERMISSION_DENIED: SPIRE attested this process but no entry's selectors match it.
    return 'the Workload API issued no identity (PermissionDenied): no registration entry matches this process';
  }
  if (error.code === 'config_invalid' || error.code === 'spiffe_invalid_address') {
    return `bad configuration: ${error.message}`;
  }
  return `no SPIFFE identity: ${error.code}: ${error.message}`;
}

/** Reads `path` and prints a redacted confirmation; returns the exit code. */
async function readOnce(spike: SpikeClient, path: string): Promise<number> {
  try {
    const { data } = await spike.getSecret(path);
    const keys = Object.keys(data).sort();
    console.log(
      `demo-workload: ${spike.whoami().spiffeId} read ${path}: ${keys.length} key(s) ` +
        `[${keys.join(', ')}] (values not shown)`,
    );
    return 0;
  } catch (error) {
    if (!isSpikeError(error)) throw error;
    switch (error.code) {
      case 'api_not_found':
        console.error(`demo-workload: ${path} does not exist (or has no live version)`);
        return 1;
      case 'access_unauthorized':
        console.error(
          `demo-workload: Nexus refused (401 access_unauthorized): no policy grants ${spike.whoami().spiffeId} read on ${path}`,
        );
        return 1;
      case 'state_not_ready':
        console.error('demo-workload: SPIKE Nexus is not ready yet');
        return 3;
      default:
        console.error(`demo-workload: ${error.code}: ${error.message}`);
        return error.code === 'net_peer_connection' ? 3 : 1;
    }
  }
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`demo-workload: ${(error as Error).message}`);
    return 2;
  }
  let spike: SpikeClient;
  try {
    spike = await createClient();
  } catch (error) {
    console.error(
      `demo-workload: ${isSpikeError(error) ? explainNoIdentity(error) : String(error)}`,
    );
    return 1;
  }
  try {
    let code = await readOnce(spike, args.path);
    const everyMs = args.everyMs;
    if (everyMs === undefined) return code;
    let stopped = false;
    let wake = () => {};
    const stop = () => {
      stopped = true;
      wake();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    while (!stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, everyMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (!stopped) code = await readOnce(spike, args.path);
    }
    return code;
  } finally {
    await spike.close();
  }
}

process.exit(await main());
