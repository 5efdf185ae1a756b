/**
 * How `spike` commands reach Nexus: open an SDK client (src/sdk/client.ts) on this process's
 * Workload API identity, check that identity's SPIKE role before any call (docs/spike-api.md §11:
 * superuser for secret/policy/cipher, recover or restore for operator), and turn SDK failures
 * into the §11 messages and exit codes.
 *
 * Exit codes (docs/spike-api.md §11): 1 when the operation failed (Nexus answered with an error,
 * wrong role, no identity), 2 for usage errors (including a bad `SPIKE_NEXUS_API_URL` or
 * Workload API address), 3 when Nexus is not ready (503) or was not reached at all.
 *
 * The SDK, the Workload API client and the X.509 parser load only when a command connects, so
 * `--help` and usage errors stay fast.
 */
import { isSpikeError, type SpikeError } from '../src/core/errors.ts';
import { hasRole, parseTrustRoots, ROLE_PATHS, type SpikeRole } from '../src/core/spike/roles.ts';
import type { SpikeClient } from '../src/sdk/client.ts';
import { isSpikeApiError } from '../src/sdk/errors.ts';
import { EXIT, type ExitCode, fail, writeErr } from './output.ts';

/** The roles a `spike` command may require. */
export type PilotRole = Extract<SpikeRole, 'superuser' | 'recover' | 'restore'>;

/** Command groups, for the group-specific messages of §11. */
export type CommandGroup = 'secret' | 'policy' | 'cipher' | 'operator' | 'status';

/** The CLI retries a little (the SDK default waits up to ~6 s): 3 tries, 200 ms → 1 s. */
const CLI_RETRY = { attempts: 3, initialMs: 200, maxMs: 1000 } as const;

const SILENT = { info: () => {}, warn: () => {}, error: () => {} };

/** §11: what a 503 prints (no `Error:` prefix, as upstream). */
const NOT_READY_MESSAGE = 'SPIKE is not ready yet. Please wait a moment and try again.';
export const CONNECT_MESSAGE = 'Error: Failed to connect to SPIKE Nexus.';

/**
 * Opens a client on the Workload API identity of this process and, when `role` is given, checks
 * that the identity has it (under `SPIKE_TRUST_ROOT_PILOT`). Ends the command on failure.
 */
export async function connect(role?: PilotRole): Promise<SpikeClient> {
  const [{ createClient }, { SOURCE_TIMEOUT_ENV }, { explainSourceError, workloadAddress }] =
    await Promise.all([
      import('../src/sdk/client.ts'),
      import('../src/runtime/workload/client.ts'),
      import('./workload.ts'),
    ]);
  const address = workloadAddress();

  let client: SpikeClient;
  try {
    client = await createClient({ retry: CLI_RETRY, logger: SILENT });
  } catch (error) {
    if (isSpikeError(error) && error.code === 'config_invalid') {
      fail(`Error: ${error.message}.`, EXIT.usage);
    }
    if (isSpikeError(error) && error.code === 'spiffe_invalid_address') {
      fail(`Error: ${error.message}`, EXIT.usage);
    }
    fail(explainSourceError(error, address, process.env[SOURCE_TIMEOUT_ENV] || '30s'));
  }

  if (role !== undefined) {
    const id = client.whoami().spiffeId;
    const roots = parseTrustRoots(process.env.SPIKE_TRUST_ROOT_PILOT);
    if (!hasRole(id, role, roots)) {
      await client.close();
      const wanted = roots.map((td) => `spiffe://${td}${ROLE_PATHS[role]}`).join(' or ');
      fail(
        `Error: You need the '${role}' role to use this command (SPIFFE ID ${wanted}); this process is ${id}.`,
      );
    }
  }
  return client;
}

/** Runs `body` with a connected client and always closes it. */
export async function withClient<T>(
  role: PilotRole | undefined,
  body: (client: SpikeClient) => Promise<T>,
): Promise<T> {
  const client = await connect(role);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

/**
 * The §11 message lines and exit code for an SDK failure (see the module header). Group-specific
 * wording: policy commands say "Entity not found." / "Invalid entity."; a cipher call that Nexus
 * answered with 500 (a JSON-mode ciphertext that fails authentication, §8) is a failed cipher
 * operation, not a connection problem.
 */
function describeApiFailure(
  error: SpikeError,
  group: CommandGroup,
): { lines: string[]; exitCode: ExitCode } {
  const status = isSpikeApiError(error) ? error.status : undefined;
  const reason = isSpikeApiError(error) ? error.reason : undefined;
  const failed = (...lines: string[]) => ({ lines, exitCode: EXIT.failed });
  const unavailable = (...lines: string[]) => ({ lines, exitCode: EXIT.unavailable });
  switch (error.code) {
    case 'state_not_ready':
      return unavailable(NOT_READY_MESSAGE);
    case 'api_not_found':
      return failed(group === 'policy' ? 'Error: Entity not found.' : 'Error: Resource not found.');
    case 'api_bad_request':
      return failed(
        group === 'policy' ? 'Error: Invalid entity.' : 'Error: Invalid request.',
        // The rule Nexus says was broken (never the rejected value).
        ...(reason === undefined ? [] : [`Reason: ${reason}.`]),
      );
    case 'access_unauthorized':
      return failed('Error: Unauthorized access.');
    case 'api_internal_error':
      // The SDK's code for a 200 whose body it cannot read.
      return failed('Error: Failed to parse API response.');
    case 'state_already_initialized':
      return failed('Error: SPIKE Nexus already holds its root key; there is nothing to restore.');
    case 'crypto_cipher_verification_failed':
      return failed(
        'Error: The shards do not rebuild the root key SPIKE Nexus expects.',
        'The collected shards were discarded: start again with shards of one recovery set.',
      );
    case 'crypto_failed_to_read_version':
    case 'crypto_unsupported_version':
    case 'crypto_failed_to_read_nonce':
      return failed(`Error: Invalid ciphertext: ${error.message}.`);
    case 'crypto_decryption_failed':
      return failed('Error: Decryption operation failed.');
    case 'net_peer_connection':
      if (status === undefined) return unavailable(CONNECT_MESSAGE);
      // Nexus answered with a status the API does not use for this route (e.g. 500).
      return failed(
        group === 'cipher' && status === 500 ? 'Error: Cipher operation failed.' : CONNECT_MESSAGE,
      );
    default:
      // No answer because the server's identity was rejected (svid_*, spiffe_*).
      if (status === undefined) return unavailable(CONNECT_MESSAGE, `  ${error.message}`);
      return failed(`Error: ${error.message}.`);
  }
}

/**
 * Ends the command for an SDK failure with the §11 message and exit code. Anything that is not a
 * `SpikeError` is rethrown (cli/main.ts reports it, exit 1).
 */
export function failApi(error: unknown, group: CommandGroup): never {
  if (!isSpikeError(error)) throw error;
  const { lines, exitCode } = describeApiFailure(error, group);
  for (const line of lines.slice(0, -1)) writeErr(line);
  fail(lines[lines.length - 1] ?? 'Error: Operation failed.', exitCode);
}

/** Runs one API call; failures end the command through `failApi`. */
export async function api<T>(group: CommandGroup, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    failApi(error, group);
  }
}
