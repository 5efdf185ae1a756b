/**
 * DEVELOPMENT ONLY: runs the embedded identity issuer (src/dev/issuer.ts) as a process.
 *
 *   bun src/dev/issuer-main.ts --dir /tmp/spike-dev [--trust-domain spike.ist] [--ttl 1h]
 *     [--keepers 3] [--workload name=spiffe://spike.ist/path ...]
 *
 * Prints one line per socket (`name  unix://path  spiffe://id`) and serves until SIGINT or
 * SIGTERM. The one-command development deployment uses the library form instead.
 */
import { parseGoDuration } from '../core/duration.ts';
import { isSpikeError } from '../core/errors.ts';
import { startDevIssuer } from './issuer.ts';

const USAGE =
  'usage: bun src/dev/issuer-main.ts --dir <dir> [--trust-domain <td>] [--ttl <duration>] ' +
  '[--keepers <n>] [--workload <name>=<spiffe-id>]...';

function parseArgs(argv: string[]) {
  let dir: string | undefined;
  let trustDomain: string | undefined;
  let ttlSeconds: number | undefined;
  let keepers: number | undefined;
  const extraWorkloads: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] =
      arg.includes('=') && arg.startsWith('--') ? splitOnce(arg) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--dir':
        dir = value();
        break;
      case '--trust-domain':
        trustDomain = value();
        break;
      case '--ttl':
        ttlSeconds = parseGoDuration(value()) / 1000;
        break;
      case '--keepers':
        keepers = Number(value());
        break;
      case '--workload': {
        const [name, id] = splitOnce(value());
        if (id === undefined) throw new Error('--workload expects <name>=<spiffe-id>');
        extraWorkloads[name] = id;
        break;
      }
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  if (dir === undefined) throw new Error('--dir is required');
  return { dir, trustDomain, ttlSeconds, keepers, extraWorkloads };
}

function splitOnce(s: string): [string, string | undefined] {
  const at = s.indexOf('=');
  return at === -1 ? [s, undefined] : [s.slice(0, at), s.slice(at + 1)];
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    process.exit(2);
  }
  const issuer = await startDevIssuer({
    ...options,
    logger: { info: (m) => console.error(m), warn: (m) => console.error(m) },
  });
  for (const name of Object.keys(issuer.sockets)) {
    console.log(`${name}\t${issuer.addressFor(name)}\t${issuer.ids[name]}`);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void issuer.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error(
    isSpikeError(error)
      ? `${error.code}: ${error.message}`
      : `development issuer failed: ${String(error)}`,
  );
  process.exit(1);
});
