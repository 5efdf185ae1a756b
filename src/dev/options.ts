/**
 * The options and environment of `bun run dev` (src/dev/up.ts): ports, state directory, extra
 * `--workload` identities, SVID lifetime, JWT audience and flags; a bad one throws `UsageError` (exit 2).
 */
import { join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../build.ts';
import { parseGoDuration } from '../core/duration.ts';
import { isMemberOf, parseSpiffeId } from '../core/spiffe/id.ts';
import { hasRole, type SpikeRole } from '../core/spike/roles.ts';

export const TRUST_DOMAIN = 'spike.ist';
/** Every process of `bun run dev` listens on loopback only. */
export const HOST = '127.0.0.1';
const DEFAULT_NEXUS_PORT = 8553;
const DEFAULT_KEEPER_PORTS = [8443, 8444, 8445];
const DEFAULT_SVID_TTL_SECONDS = 3600;
const MIN_SVID_TTL_SECONDS = 10;
const MAX_SVID_TTL_SECONDS = 24 * 3600;
/** `--workload` names: they name the socket `<name>.sock` and the directory `certs/<name>`. */
const WORKLOAD_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Socket names of the built-in identities (keepers of any count). */
const BUILT_IN_NAME = /^(?:nexus|pilot|recover|restore|workload|keeper-[0-9]+)$/;
/** Roles of SPIKE's own components: a `--workload` must not impersonate them. */
const COMPONENT_ROLES: readonly SpikeRole[] = [
  'nexus',
  'keeper',
  'bootstrap',
  'superuser',
  'recover',
  'restore',
];

export const USAGE = `usage: bun run dev [-- options]

Starts the DEVELOPMENT identity issuer, Nexus (SQLite) and the Keepers; Ctrl-C stops everything.

options:
  --nexus-port <port>        Nexus mTLS port (default 8553; env SPIKE_DEV_NEXUS_PORT)
  --keeper-ports <p1,p2,..>  one port per Keeper, at least 2 (default 8443,8444,8445;
                             env SPIKE_DEV_KEEPER_PORTS)
  --dir <dir>                state directory (default <checkout>/.dev; env SPIKE_DEV_DIR)
  --workload <name>=<id>     one more workload identity (repeatable): a Workload API socket
                             <name>.sock and certificate files certs/<name>/; <name> is 1-32 of
                             a-z 0-9 -, <id> a SPIFFE ID in spike.ist, e.g.
                             --workload billing=spiffe://spike.ist/apps/billing
  --svid-ttl <duration>      X.509-SVID lifetime, rotated at half of it (default 1h, 10s-24h;
                             env SPIKE_DEV_SVID_TTL)
  --jwt-audience <aud>       also accept JWT-SVID bearer tokens for <aud> (sets
                             SPIKE_NEXUS_JWT_AUDIENCE; tokens from FetchJWTSVID on a socket)
  --postgres                 keep the data in a throwaway PostgreSQL cluster under <dir>/postgres
                             (needs the server installed: apt-get install postgresql)
  --replicas <n>             run n Nexus replicas (1-9, default 1) on consecutive ports from
                             the Nexus port, sharing the Keepers; n > 1 needs --postgres
                             (env SPIKE_DEV_REPLICAS)
  --reset                    delete the state directory first (data, recovery files, logs)
  --compiled                 run dist/nexus, dist/keeper and dist/spike (built if missing;
                             \`bun run build\` refreshes them)
  --keep-keepers             leave the Keepers running on exit, so the next start recovers
                             the root key from them
  --stop                     stop processes left running by a previous run, then exit
  -h, --help                 this text`;

/** An extra workload identity of `--workload <name>=<id>`. */
interface DevWorkload {
  readonly name: string;
  readonly id: string;
}

/** The parsed options of `bun run dev`. */
export interface Options {
  readonly dir: string;
  readonly nexusPort: number;
  readonly keeperPorts: readonly number[];
  /** `--workload`, in the order given. */
  readonly workloads: readonly DevWorkload[];
  readonly svidTtlSeconds: number;
  /** `--jwt-audience`: Nexus's `SPIKE_NEXUS_JWT_AUDIENCE`; `undefined` = mTLS only. */
  readonly jwtAudience?: string;
  /** `--postgres`: the store is a development PostgreSQL cluster (src/dev/postgres.ts). */
  readonly postgres: boolean;
  /** `--replicas`: Nexus replicas on `nexusPort`, `nexusPort + 1`, … (1 without --postgres). */
  readonly replicas: number;
  readonly reset: boolean;
  readonly compiled: boolean;
  readonly keepKeepers: boolean;
  readonly stopOnly: boolean;
}

/** A bad option or value, with a one-line reason. */
class UsageError extends Error {}

function parsePort(value: string, what: string): number {
  const n = /^[0-9]{1,5}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) throw new UsageError(`${what} must be a port number (1-65535)`);
  return n;
}

function parsePorts(value: string, what: string): number[] {
  const ports = value.split(',').map((p) => parsePort(p, what));
  if (ports.length < 2) throw new UsageError(`${what} needs at least 2 ports (threshold 2)`);
  if (ports.length > 9) throw new UsageError(`${what}: at most 9 Keepers`);
  if (new Set(ports).size !== ports.length) throw new UsageError(`${what} lists a port twice`);
  return ports;
}

function parseReplicas(value: string, what: string): number {
  const n = /^[0-9]$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= 9)) throw new UsageError(`${what} must be a number of replicas from 1 to 9`);
  return n;
}

function parseSvidTtl(value: string, what: string): number {
  let ms: number;
  try {
    ms = parseGoDuration(value.trim());
  } catch {
    throw new UsageError(`${what} must be a duration such as 30s, 10m or 1h`);
  }
  const seconds = ms / 1000;
  if (!(seconds >= MIN_SVID_TTL_SECONDS && seconds <= MAX_SVID_TTL_SECONDS)) {
    throw new UsageError(`${what} must be between 10s and 24h`);
  }
  return seconds;
}

/** `<name>=<spiffe-id>` of `--workload`, checked against the names given so far. */
function parseWorkload(value: string, given: readonly DevWorkload[]): DevWorkload {
  const at = value.indexOf('=');
  if (at === -1) {
    throw new UsageError(
      `--workload expects <name>=<spiffe-id>, e.g. --workload billing=spiffe://${TRUST_DOMAIN}/apps/billing`,
    );
  }
  const name = value.slice(0, at);
  const id = value.slice(at + 1);
  if (!WORKLOAD_NAME.test(name)) {
    throw new UsageError(
      '--workload: the name must be 1-32 lowercase letters, digits and dashes, starting with a ' +
        'letter or a digit (it names the socket <name>.sock)',
    );
  }
  if (BUILT_IN_NAME.test(name)) {
    throw new UsageError(`--workload: the name ${name} is taken by a built-in identity`);
  }
  if (given.some((w) => w.name === name)) {
    throw new UsageError(`--workload: the name ${name} is given twice`);
  }
  let path: string;
  try {
    path = parseSpiffeId(id).path;
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'invalid';
    throw new UsageError(`--workload ${name}: not a valid SPIFFE ID (${reason})`);
  }
  if (!isMemberOf(id, TRUST_DOMAIN)) {
    throw new UsageError(
      `--workload ${name}: the SPIFFE ID must be in the trust domain ${TRUST_DOMAIN} ` +
        `(spiffe://${TRUST_DOMAIN}/...)`,
    );
  }
  if (path === '') {
    throw new UsageError(
      `--workload ${name}: spiffe://${TRUST_DOMAIN} names the trust domain; a workload's ID has a path`,
    );
  }
  const role = COMPONENT_ROLES.find((r) => hasRole(id, r, [TRUST_DOMAIN]));
  if (role !== undefined) {
    throw new UsageError(
      `--workload ${name}: ${id} has the ${role} role of SPIKE itself; give the workload its own path`,
    );
  }
  return { name, id };
}

/**
 * Parses the options and environment of `bun run dev` (see {@link USAGE}); `'help'` for
 * `-h`/`--help`.
 *
 * @throws UsageError (a plain `Error`) with a one-line reason; the entry point prints it with the
 *   usage and exits 2.
 */
export function parseOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Options | 'help' {
  let dir = env.SPIKE_DEV_DIR || join(PROJECT_ROOT, '.dev');
  let nexusPort = env.SPIKE_DEV_NEXUS_PORT
    ? parsePort(env.SPIKE_DEV_NEXUS_PORT, 'SPIKE_DEV_NEXUS_PORT')
    : DEFAULT_NEXUS_PORT;
  let keeperPorts = env.SPIKE_DEV_KEEPER_PORTS
    ? parsePorts(env.SPIKE_DEV_KEEPER_PORTS, 'SPIKE_DEV_KEEPER_PORTS')
    : DEFAULT_KEEPER_PORTS;
  let svidTtlSeconds = env.SPIKE_DEV_SVID_TTL
    ? parseSvidTtl(env.SPIKE_DEV_SVID_TTL, 'SPIKE_DEV_SVID_TTL')
    : DEFAULT_SVID_TTL_SECONDS;
  const workloads: DevWorkload[] = [];
  let jwtAudience: string | undefined;
  let replicas = env.SPIKE_DEV_REPLICAS
    ? parseReplicas(env.SPIKE_DEV_REPLICAS, 'SPIKE_DEV_REPLICAS')
    : 1;
  let postgres = false;
  let reset = false;
  let compiled = false;
  let keepKeepers = false;
  let stopOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = eq === -1 ? raw : raw.slice(0, eq);
    const value = () => {
      const v = eq === -1 ? argv[++i] : raw.slice(eq + 1);
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--dir':
        dir = value();
        break;
      case '--nexus-port':
        nexusPort = parsePort(value(), '--nexus-port');
        break;
      case '--keeper-ports':
        keeperPorts = parsePorts(value(), '--keeper-ports');
        break;
      case '--workload':
        workloads.push(parseWorkload(value(), workloads));
        break;
      case '--svid-ttl':
        svidTtlSeconds = parseSvidTtl(value(), '--svid-ttl');
        break;
      case '--jwt-audience':
        jwtAudience = value().trim();
        break;
      case '--postgres':
        postgres = true;
        break;
      case '--replicas':
        replicas = parseReplicas(value(), '--replicas');
        break;
      case '--reset':
        reset = true;
        break;
      case '--compiled':
        compiled = true;
        break;
      case '--keep-keepers':
        keepKeepers = true;
        break;
      case '--stop':
        stopOnly = true;
        break;
      default:
        throw new UsageError(`unknown option ${raw}`);
    }
  }
  if (jwtAudience === '') throw new UsageError('--jwt-audience needs a value');
  if (replicas > 1 && !postgres) {
    throw new UsageError('--replicas needs --postgres: the replicas share one PostgreSQL database');
  }
  const nexusPorts = Array.from({ length: replicas }, (_, i) => nexusPort + i);
  if (nexusPorts.at(-1)! > 65535) throw new UsageError('the replica ports run past 65535');
  if (nexusPorts.some((p) => keeperPorts.includes(p))) {
    throw new UsageError(
      replicas > 1
        ? `the Nexus ports ${nexusPort}-${nexusPort + replicas - 1} and the Keeper ports must differ`
        : 'the Nexus port and the Keeper ports must differ',
    );
  }
  return {
    dir: resolve(dir),
    nexusPort,
    keeperPorts,
    workloads,
    svidTtlSeconds,
    ...(jwtAudience === undefined ? {} : { jwtAudience }),
    postgres,
    replicas,
    reset,
    compiled,
    keepKeepers,
    stopOnly,
  };
}
