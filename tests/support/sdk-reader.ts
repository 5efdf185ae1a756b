/**
 * A minimal application for the end-to-end test (tests/e2e.test.ts), compiled with
 * `bun build --compile` like any workload would be: it reads one secret with the public SDK
 * (`createClient` from src/index.ts, configured only by `SPIFFE_ENDPOINT_SOCKET`,
 * `SPIKE_NEXUS_API_URL` and `SPIKE_SPIFFE_SOURCE_TIMEOUT`) and prints one JSON line on stdout.
 *
 *   sdk-reader <path> <key>
 *
 * Success (exit 0): `{"ok":true,"spiffeId":…,"keys":[…],"sha256":<hex SHA-256 of data[key]>}`,
 * so the test can check the value without it ever being printed. Failure (exit 1): the SDK's
 * error as an application sees it, `{"ok":false,"code":…,"status":…,"message":…}` (`status` only
 * when Nexus answered).
 */
import { createClient, isSpikeError, SpikeApiError, type SpikeClient } from '../../src/index.ts';

const [path, key] = process.argv.slice(2);
if (path === undefined || key === undefined) {
  console.error('usage: sdk-reader <path> <key>');
  process.exit(2);
}

/** What the program found out: printed as one JSON line; `ok` decides the exit code. */
async function run(path: string, key: string): Promise<Record<string, unknown>> {
  let client: SpikeClient;
  try {
    client = await createClient();
  } catch (error) {
    if (!isSpikeError(error)) throw error;
    return { ok: false, stage: 'createClient', code: error.code, message: error.message };
  }
  try {
    const { data } = await client.getSecret(path);
    const value = data[key];
    if (value === undefined) return { ok: false, stage: 'getSecret', missing: key };
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value));
    return {
      ok: true,
      spiffeId: client.whoami().spiffeId,
      keys: Object.keys(data).sort(),
      sha256: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join(''),
    };
  } catch (error) {
    if (!isSpikeError(error)) throw error;
    return {
      ok: false,
      stage: 'getSecret',
      code: error.code,
      ...(error instanceof SpikeApiError && error.status !== undefined && { status: error.status }),
      message: error.message,
    };
  } finally {
    await client.close();
  }
}

const outcome = await run(path, key);
console.log(JSON.stringify(outcome));
process.exit(outcome.ok === true ? 0 : 1);
