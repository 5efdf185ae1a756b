/**
 * After Nexus starts (src/dev/up.ts): the development restore from saved recovery files, and
 * the next steps `bun run dev` prints.
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from '../build.ts';
import { type CommandResult, runCommand } from '../runtime/run-command.ts';
import type { DevIssuer } from './issuer.ts';
import type { Options } from './options.ts';
import { note, say } from './output.ts';
import { recoveryFiles, type SvidFiles, shellWord, shown } from './state-files.ts';

/** `90` → `1m30s`, `1800` → `30m`: a short duration for people. */
function formatSeconds(total: number): string {
  const s = Math.round(total);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${rest > 0 || s === 0 ? `${rest}s` : ''}`;
}

/** Runs the `spike` CLI; stdout and stderr are captured. */
export function runCli(
  spike: readonly string[],
  args: readonly string[],
  env: Record<string, string | undefined>,
  stdinFile?: string,
): Promise<CommandResult> {
  return runCommand([...spike, ...args], {
    cwd: PROJECT_ROOT,
    env,
    ...(stdinFile === undefined ? {} : { stdin: Bun.file(stdinFile) }),
  });
}

/**
 * DEVELOPMENT ONLY: feeds the saved recovery files to Nexus with `spike operator restore`, one per
 * run, until it reports the key restored. Prints what it does; never prints a shard.
 */
export async function restoreFromFiles(
  recoverDir: string,
  spike: readonly string[],
  env: Record<string, string | undefined>,
  freshKeepers: boolean,
): Promise<boolean> {
  const files = recoveryFiles(recoverDir);
  note(
    freshKeepers
      ? 'the data exists but the new Keepers hold no shards: Nexus waits for its root key'
      : 'the adopted Keepers did not give Nexus its root key',
  );
  if (files.length === 0) {
    note(
      `no recovery files in ${recoverDir}: run \`spike operator restore\` with the restore ` +
        `identity (${env.SPIFFE_ENDPOINT_SOCKET}) once per shard, or start afresh with --reset`,
    );
    return false;
  }
  note(
    'DEVELOPMENT ONLY: restoring it from the saved recovery files ' +
      '(spike operator restore < recover/spike.recovery.<i>.txt)',
  );
  for (const file of files) {
    const result = await runCli(spike, ['operator', 'restore'], env, file);
    if (result.code !== 0) {
      note(`spike operator restore failed: ${result.stderr.trim() || `exit ${result.code}`}`);
      return false;
    }
    if (result.stdout.includes('restored')) return true;
  }
  note('the recovery files did not reach the threshold; see `spike operator restore`');
  return false;
}

/**
 * What `bun run dev` prints once Nexus is ready. Every line between `SPIKE is ready` and `Logs:`
 * is a shell command or a comment: .ci/readme-check runs them as printed.
 */
export function printNextSteps(
  options: Options,
  issuer: DevIssuer,
  nexusUrl: string,
  spike: readonly string[],
  files: { readonly bundleFile: string; readonly svidFiles: readonly SvidFiles[] },
): void {
  const cli = options.compiled ? shown(spike[0]!) : 'bun cli/main.ts';
  const demo = 'bun src/examples/demo-workload.ts';
  const workloadId = issuer.ids.workload!;
  const idPattern = `^${workloadId.replaceAll('.', '\\.')}$`;
  say();
  say(`SPIKE is ready (development). Nexus: ${nexusUrl}. In another terminal, in ${PROJECT_ROOT}:`);
  say();
  say(`  export SPIFFE_ENDPOINT_SOCKET=${issuer.addressFor('pilot')}`);
  say(`  export SPIKE_NEXUS_API_URL=${nexusUrl}`);
  say();
  say(`  ${cli} whoami                  # ${issuer.ids.pilot} (superuser)`);
  say(`  ${cli} secret put secrets/db/creds username=admin password=s3cret`);
  say(`  ${cli} secret get secrets/db/creds`);
  say(
    `  ${cli} policy create --name demo-read --spiffeid-pattern '${idPattern}' \\\n` +
      `      --path-pattern '^secrets/db/.*$' --permissions read`,
  );
  say();
  say(`  # the example workload (${workloadId}) reads it with the TypeScript SDK:`);
  say(`  SPIFFE_ENDPOINT_SOCKET=${issuer.addressFor('workload')} ${demo} secrets/db/creds`);
  say();
  say('  # or in your own code:');
  say("  #   import { createClient } from 'spike-ts';");
  say('  #   const spike = await createClient();   // SPIFFE_ENDPOINT_SOCKET, SPIKE_NEXUS_API_URL');
  say("  #   const { data } = await spike.getSecret('secrets/db/creds');");
  say();
  const [example, ...extra] = files.svidFiles;
  const rotation = formatSeconds(options.svidTtlSeconds / 2);
  say(
    `  # Vault clients (hvac, node-vault, the Vault Go client, the vault CLI) as ${example!.id}:`,
  );
  say(`  # KV v2 at $VAULT_ADDR/v1/secret/; the certificate is the credential, no token needed.`);
  say(`  # The certificate files are renewed as the SVID rotates (every ${rotation}).`);
  say(`  export VAULT_ADDR=https://localhost:${options.nexusPort}`);
  say(`  export VAULT_CACERT=${shellWord(files.bundleFile)}`);
  say(`  export VAULT_CLIENT_CERT=${shellWord(example!.cert)}`);
  say(`  export VAULT_CLIENT_KEY=${shellWord(example!.key)}`);
  for (const w of extra) {
    say();
    say(`  # workload ${w.name} (${w.id}): its Workload API socket (SDK, CLI) or its files:`);
    say(`  #   SPIFFE_ENDPOINT_SOCKET=${shellWord(issuer.addressFor(w.name))}`);
    say(`  #   VAULT_CLIENT_CERT=${shellWord(w.cert)} VAULT_CLIENT_KEY=${shellWord(w.key)}`);
  }
  say();
  say(`  Logs: ${shown(join(options.dir, 'logs'))}/. Press Ctrl-C to stop.`);
}
