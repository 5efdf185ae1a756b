/**
 * A tiny SPIKE application for the SPIRE suite, compiled with `bun build --compile` so that it has
 * an executable path of its own and SPIRE attests it as `spiffe://spike.ist/workload/reader` by
 * that path (a plain `bun` process would share bun's path with every other test process). It uses
 * the TypeScript SDK (src/sdk/client.ts) exactly as an application would: Workload API socket
 * from `SPIFFE_ENDPOINT_SOCKET`, Nexus from `SPIKE_NEXUS_API_URL`.
 *
 *   sdk-reader whoami                     prints {"spiffeId","serial"}
 *   sdk-reader get <path>                 prints {"data":{...}} or {"error":"<code>"} (exit 1)
 *   sdk-reader loop <path> <ms> <gap-ms>  reads <path> for <ms> (or until SIGTERM) with no
 *                                         retries, pausing <gap-ms> between reads;
 *                                         prints {"ok","failed","errors","serials","mismatched"}
 *                                         where serials are this program's own SVID serials seen
 *
 * Test code: it prints the secret it read, which only ever holds test values.
 */
import { isSpikeError } from '../../src/core/errors.ts';
import { createClient } from '../../src/sdk/client.ts';

const silent = { info() {}, warn() {}, error() {} };

function codeOf(error: unknown): string {
  return isSpikeError(error) ? error.code : String(error);
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, path, durationArg, gapArg] = argv;
  const client = await createClient({
    logger: silent,
    ...(command === 'loop' && { retry: false as const }),
  });
  try {
    if (command === 'whoami') {
      const me = client.whoami();
      console.log(JSON.stringify({ spiffeId: me.spiffeId, serial: me.serial }));
      return 0;
    }
    if (command === 'get' && path !== undefined) {
      try {
        const { data } = await client.getSecret(path);
        console.log(JSON.stringify({ data }));
        return 0;
      } catch (error) {
        console.log(JSON.stringify({ error: codeOf(error) }));
        return 1;
      }
    }
    if (command === 'loop' && path !== undefined) {
      const duration = Number(durationArg);
      const gap = Number(gapArg ?? '100');
      const first = await client.getSecret(path);
      const expected = first.data;
      const serials = new Set<string>([client.whoami().serial]);
      let ok = 1;
      let failed = 0;
      let mismatched = 0;
      const errors: string[] = [];
      const end = Date.now() + duration;
      let stopping = false;
      process.on('SIGTERM', () => {
        stopping = true;
      });
      while (!stopping && Date.now() < end) {
        try {
          const { data } = await client.getSecret(path);
          if (Bun.deepEquals(data, expected)) ok++;
          else mismatched++;
        } catch (error) {
          failed++;
          if (errors.length < 10) errors.push(codeOf(error));
        }
        serials.add(client.whoami().serial);
        await Bun.sleep(gap);
      }
      console.log(JSON.stringify({ ok, failed, mismatched, errors, serials: [...serials] }));
      return failed === 0 && mismatched === 0 ? 0 : 1;
    }
    console.error('usage: sdk-reader whoami | get <path> | loop <path> <ms> [gap-ms]');
    return 2;
  } finally {
    await client.close();
  }
}

process.exit(await main(process.argv.slice(2)));
