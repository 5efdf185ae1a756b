/**
 * `bun run dev`: the whole system on one machine with one command (DEVELOPMENT ONLY).
 *
 * It starts the development identity issuer (./issuer.ts, in this process), three Keepers and a
 * Nexus on SQLite as child processes, waits until Nexus holds its root key, prints what to run
 * next, and on Ctrl-C (SIGINT, SIGTERM or SIGHUP) stops Nexus, then the Keepers, then the issuer,
 * and exits 0.
 *
 * Layout (default `<checkout>/.dev`, or `--dir`):
 *
 *   sockets/<name>.sock   Workload API sockets of the issuer (nexus, keeper-1..n, pilot, recover,
 *                         restore, workload); the directory (mode 0700) is the only access control
 *   data/spike.db         the Nexus database (`SPIKE_NEXUS_DATA_DIR=<dir>`, which appends /data)
 *   logs/<name>.log       stdout and stderr of each process; logs/nexus-audit.log the audit trail
 *   recover/              recovery shards, refreshed on every start (see below)
 *   run.json              the processes of the current run, for the next start and `--stop`
 *   bundle.pem            the trust bundle (the issuer's root CA) in PEM, for standard TLS clients
 *                         (`VAULT_CACERT`); the issuer mints a new root on every start
 *   certs/<name>/         (mode 0700) `cert.pem` and `key.pem` (mode 0600): the current X.509-SVID
 *                         of the example workload and of every `--workload`, fetched from its
 *                         Workload API socket like any workload would, rewritten whenever the SVID
 *                         rotates (at half its lifetime), deleted on exit; for clients that take
 *                         certificate files instead of a socket (`VAULT_CLIENT_CERT`/`_KEY`)
 *
 * Ports (127.0.0.1 only): Nexus 8553, Keepers 8443, 8444, 8445; `--nexus-port` and
 * `--keeper-ports` (or `SPIKE_DEV_NEXUS_PORT`, `SPIKE_DEV_KEEPER_PORTS`) move them. A busy port
 * is reported by name and the command exits 1 before starting anything.
 *
 * Restarts keep the data. The root key lives only in Nexus's memory and in the Keepers' shards:
 * - if Keepers from the previous run are still up (started with `--keep-keepers`, or left behind
 *   by a crash), they are adopted and Nexus recovers the key from them, as in production;
 * - otherwise the fresh Keepers hold nothing, and the key is restored from the recovery files
 *   that every start saves in `recover/` (`spike operator recover`, then `spike operator restore`
 *   once per shard, run through the real CLI). That shortcut is **for development only**: in
 *   production, recovery shards are kept offline by operators, never next to the database.
 *
 * Identities: besides the fixed components (docs/spike-api.md §1 roles) and the example workload
 * `spiffe://spike.ist/workload/demo`, `--workload <name>=<spiffe-id>` (repeatable) adds a workload
 * identity with its own socket `<name>.sock` and certificate files `certs/<name>/`, so the README's
 * grant recipe can be tried with several workloads. `--svid-ttl` (default 1h) sets the SVID
 * lifetime. Nexus runs with the Vault KV v2 API on (`SPIKE_NEXUS_VAULT_API=true`,
 * docs/vault-kv2.md §1) and its SVID names `localhost` and `127.0.0.1`, so the printed
 * `VAULT_ADDR`, `VAULT_CACERT`, `VAULT_CLIENT_CERT` and `VAULT_CLIENT_KEY` work with hostname
 * verification on.
 *
 * Options: `--reset` (delete the directory first), `--compiled` (run dist/ executables, building
 * them if missing), `--keep-keepers` (leave the Keepers running on exit), `--stop` (stop processes
 * left running by a previous run and exit), `--dir <dir>`, `--workload`, `--svid-ttl`, `--help`.
 * A bad option is a usage error (exit 2) before anything starts.
 */
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Subprocess } from 'bun';
import { BUILD_TARGETS, buildExecutables, PROJECT_ROOT } from '../build.ts';
import { parseGoDuration } from '../core/duration.ts';
import { isMemberOf, parseSpiffeId } from '../core/spiffe/id.ts';
import type { X509Context } from '../core/spiffe/types.ts';
import { hasRole, type SpikeRole } from '../core/spike/roles.ts';
import { type CommandResult, runCommand } from '../runtime/run-command.ts';
import { tlsMaterialOf, toPem } from '../runtime/tls/material.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { createClient, type SpikeClient } from '../sdk/client.ts';
import { type DevIssuer, startDevIssuer } from './issuer.ts';

const TRUST_DOMAIN = 'spike.ist';
const DEFAULT_NEXUS_PORT = 8553;
const DEFAULT_KEEPER_PORTS = [8443, 8444, 8445];
const THRESHOLD = 2;
const HOST = '127.0.0.1';
const STOP_GRACE_MS = 5000;
const KEEPER_START_TIMEOUT_MS = 30_000;
const NEXUS_READY_TIMEOUT_MS = 60_000;
/** How long to let Nexus recover the key from adopted Keepers before restoring from files. */
const ADOPTED_RECOVERY_WAIT_MS = 40_000;
/** `sun_path` is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** The longest built-in socket name (`keeper-NN`, without `.sock`). */
const LONGEST_BUILT_IN_NAME = 'keeper-NN';
const DEFAULT_SVID_TTL_SECONDS = 3600;
const MIN_SVID_TTL_SECONDS = 10;
const MAX_SVID_TTL_SECONDS = 24 * 3600;
/** How long to wait for a certificate-file identity's first SVID from its socket. */
const SVID_FILES_TIMEOUT_MS = 15_000;
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

const USAGE = `usage: bun run dev [-- options]

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
  --reset                    delete the state directory first (data, recovery files, logs)
  --compiled                 run dist/nexus, dist/keeper and dist/spike (built if missing;
                             \`bun run build\` refreshes them)
  --keep-keepers             leave the Keepers running on exit, so the next start recovers
                             the root key from them
  --stop                     stop processes left running by a previous run, then exit
  -h, --help                 this text`;

/** An extra workload identity of `--workload <name>=<id>`. */
export interface DevWorkload {
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
  readonly reset: boolean;
  readonly compiled: boolean;
  readonly keepKeepers: boolean;
  readonly stopOnly: boolean;
}

/** What run.json records about one process. */
interface ProcessRecord {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

interface RunRecord {
  readonly upPid: number | null;
  readonly nexus: ProcessRecord | null;
  readonly keepers: readonly ProcessRecord[];
}

class UsageError extends Error {}
/** Thrown when Ctrl-C interrupts start-up: stop quietly, as the signal handler already does. */
const INTERRUPTED = new Error('interrupted');

const say = (line = '') => console.log(line);
const note = (line: string) => console.log(`[dev] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  if (keeperPorts.includes(nexusPort)) {
    throw new UsageError('the Nexus port and the Keeper ports must differ');
  }
  return {
    dir: resolve(dir),
    nexusPort,
    keeperPorts,
    workloads,
    svidTtlSeconds,
    reset,
    compiled,
    keepKeepers,
    stopOnly,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes of earlier runs

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** The command line of `pid`, or `undefined` when it cannot be read (not Linux, gone). */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and still the program recorded (guards against pid reuse). */
function isOurs(pid: number, program: 'nexus' | 'keeper' | 'up'): boolean {
  if (!isAlive(pid)) return false;
  const cmd = commandLine(pid);
  if (cmd === undefined) return false;
  if (program === 'up') return cmd.includes('dev/up.ts');
  return cmd.includes(`src/${program}/main.ts`) || cmd.includes(`dist/${program}`);
}

/** Refuses to start while the `bun run dev` of `record` is still running. */
function refuseConcurrentRun(record: RunRecord | undefined): void {
  const pid = record?.upPid;
  if (pid != null && pid !== process.pid && isOurs(pid, 'up')) {
    throw new Error(`another \`bun run dev\` is running (pid ${pid}); stop it with Ctrl-C first`);
  }
}

function readRunRecord(file: string): RunRecord | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    if (!Array.isArray(parsed.keepers)) return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + STOP_GRACE_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  while (isAlive(pid)) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// Ports, sockets, files

/** Resolves when `port` can be bound on 127.0.0.1, rejects with the error code otherwise. */
function checkPortFree(port: number): Promise<string | undefined> {
  return new Promise((resolvePort) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolvePort(error.code ?? 'error'));
    server.listen({ port, host: HOST, exclusive: true }, () => {
      server.close(() => resolvePort(undefined));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolveListening) => {
    const socket = net.connect({ port, host: HOST });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolveListening(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolveListening(false);
    });
    socket.once('error', () => resolveListening(false));
  });
}

/**
 * `<dir>/sockets`, unless `<that>/<longest name>.sock` is too long for a unix socket: then a
 * private directory in the temp directory, named after the state directory so every checkout gets
 * its own. `names` are the extra socket names (`--workload`); the built-in ones always fit.
 */
export function socketDirFor(dir: string, names: readonly string[] = []): string {
  const preferred = join(dir, 'sockets');
  const longest = Math.max(LONGEST_BUILT_IN_NAME.length, ...names.map((n) => n.length));
  const bytes = new TextEncoder().encode(preferred).length + 1 + longest + '.sock'.length;
  if (bytes <= MAX_SOCKET_PATH) return preferred;
  const tag = new Bun.CryptoHasher('sha256').update(dir).digest('hex').slice(0, 12);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `spike-dev-${uid}-${tag}`);
}

function tail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n');
    return text
      .slice(-lines)
      .map((l) => `    ${l}`)
      .join('\n');
  } catch {
    return '    (no log)';
  }
}

/** `path` relative to the checkout when it lies inside it, else absolute. */
function shown(path: string): string {
  const rel = relative(PROJECT_ROOT, path);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

const RECOVERY_FILE = /^spike\.recovery\.([0-9]{1,3})\.txt$/;

function recoveryFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => RECOVERY_FILE.test(name))
    .sort((a, b) => Number(RECOVERY_FILE.exec(a)![1]) - Number(RECOVERY_FILE.exec(b)![1]))
    .map((name) => join(dir, name));
}

// ---------------------------------------------------------------------------------------------
// Certificate files for clients that take files instead of a Workload API socket

/** Where one identity's certificate files are. */
export interface SvidFiles {
  readonly name: string;
  readonly id: string;
  /** `certs/<name>`, mode 0700. */
  readonly dir: string;
  /** The SVID chain in PEM, leaf first (mode 0600). */
  readonly cert: string;
  /** The SVID's PKCS#8 private key in PEM (mode 0600). */
  readonly key: string;
}

/** Writes `text` to `file` with `mode` through a temporary file and a rename (never half a file). */
function writeFileAtomic(file: string, text: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

/** The trust bundle in PEM at `<dir>/bundle.pem` (public: mode 0644). */
function writeBundle(dir: string, rootCertificate: Uint8Array): string {
  const file = join(dir, 'bundle.pem');
  writeFileAtomic(file, toPem('CERTIFICATE', rootCertificate), 0o644);
  return file;
}

function writeSvidFiles(files: SvidFiles, context: X509Context): void {
  const material = tlsMaterialOf(context);
  // Key first: a reader between the two renames sees the new key with the old certificate for a
  // moment, never a certificate without its key file.
  writeFileAtomic(files.key, material.key, 0o600);
  writeFileAtomic(files.cert, material.cert, 0o600);
}

/**
 * Fetches `name`'s X.509-SVID from its Workload API socket, as any workload does, writes it to
 * `certsDir/<name>/{cert,key}.pem`, and rewrites both whenever the SVID rotates. `close()` stops
 * following and leaves the files; the caller deletes `certsDir`.
 */
async function followSvidFiles(
  address: string,
  name: string,
  certsDir: string,
  onProblem: (message: string) => void,
): Promise<{ files: SvidFiles; close(): Promise<void> }> {
  const dir = join(certsDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const source = createX509Source({
    address,
    timeoutMs: SVID_FILES_TIMEOUT_MS,
    logger: { info: () => {}, warn: onProblem, error: onProblem },
  });
  try {
    const context = await source.ready();
    const files: SvidFiles = {
      name,
      id: context.svids[0]!.id,
      dir,
      cert: join(dir, 'cert.pem'),
      key: join(dir, 'key.pem'),
    };
    writeSvidFiles(files, context);
    source.onUpdate((next) => {
      if (next === undefined) return;
      try {
        writeSvidFiles(files, next);
      } catch (error) {
        onProblem(
          `could not renew the certificate files of ${name}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
    });
    return { files, close: () => source.close() };
  } catch (error) {
    await source.close();
    throw new Error(
      `could not fetch the SVID of ${name} for its certificate files: ${(error as Error).message}`,
    );
  }
}

/** A value for a POSIX shell: as is when it needs no quoting, else in single quotes. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

// ---------------------------------------------------------------------------------------------
// The run

interface Child {
  readonly name: string;
  readonly port: number;
  readonly log: string;
  /** Our own child, or `undefined` for a Keeper adopted from a previous run. */
  readonly proc?: Subprocess;
  readonly pid: number;
}

async function stopRecorded(runFile: string): Promise<number> {
  const record = readRunRecord(runFile);
  if (record === undefined) return 0;
  refuseConcurrentRun(record);
  let stopped = 0;
  if (record.nexus !== null && isOurs(record.nexus.pid, 'nexus')) {
    await stopPid(record.nexus.pid);
    stopped++;
  }
  for (const keeper of record.keepers) {
    if (isOurs(keeper.pid, 'keeper')) {
      await stopPid(keeper.pid);
      stopped++;
    }
  }
  rmSync(runFile, { force: true });
  return stopped;
}

async function run(options: Options): Promise<number> {
  const { dir } = options;
  const runFile = join(dir, 'run.json');

  if (options.stopOnly) {
    const n = await stopRecorded(runFile);
    note(n === 0 ? 'nothing was running' : `stopped ${n} process(es) of the previous run`);
    return 0;
  }

  // ---- previous run: refuse to run twice, stop a stray Nexus, adopt live Keepers
  const previous = readRunRecord(runFile);
  refuseConcurrentRun(previous);
  if (options.reset) {
    await stopRecorded(runFile);
    rmSync(dir, { recursive: true, force: true });
    note(`--reset: deleted ${dir}`);
  } else if (previous?.nexus != null && isOurs(previous.nexus.pid, 'nexus')) {
    note(`stopping the Nexus left running by the previous run (pid ${previous.nexus.pid})`);
    await stopPid(previous.nexus.pid);
  }
  const adopted = new Map<number, ProcessRecord>();
  if (!options.reset) {
    for (const keeper of previous?.keepers ?? []) {
      if (!isOurs(keeper.pid, 'keeper')) continue;
      const slot = options.keeperPorts.indexOf(keeper.port);
      if (slot === -1 || adopted.has(slot)) {
        note(`stopping ${keeper.name} of the previous run (pid ${keeper.pid}): port not used now`);
        await stopPid(keeper.pid);
      } else {
        adopted.set(slot, keeper);
      }
    }
  }

  // ---- ports
  const wanted: [string, number][] = [
    ['nexus', options.nexusPort],
    ...options.keeperPorts.map((p, i): [string, number] => [`keeper-${i + 1}`, p]),
  ];
  for (const [name, port] of wanted) {
    if ([...adopted.values()].some((k) => k.port === port)) continue;
    const problem = await checkPortFree(port);
    if (problem !== undefined) {
      const flag = name === 'nexus' ? '--nexus-port 9553' : '--keeper-ports 9443,9444,9445';
      throw new Error(
        `port ${port} (${name}) on ${HOST} is not available (${problem}). Stop what uses it ` +
          `(e.g. \`ss -ltnp 'sport = :${port}'\`), or choose other ports: bun run dev -- ${flag}`,
      );
    }
  }

  // ---- layout
  const dataDir = join(dir, 'data');
  const logDir = join(dir, 'logs');
  const recoverDir = join(dir, 'recover');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const hadData = existsSync(join(dataDir, 'spike.db'));
  const socketDir = socketDirFor(
    dir,
    options.workloads.map((w) => w.name),
  );
  const certsDir = join(dir, 'certs');
  if (!socketDir.startsWith(dir)) {
    note(`the checkout path is long; Workload API sockets are in ${socketDir}`);
  }

  // ---- programs
  let programs: { nexus: string[]; keeper: string[]; spike: string[] };
  if (options.compiled) {
    const dist = join(PROJECT_ROOT, 'dist');
    const missing = (['nexus', 'keeper', 'spike'] as const).filter(
      (name) => !existsSync(join(dist, name)),
    );
    if (missing.length > 0) {
      note(`building ${missing.map((m) => `dist/${m}`).join(', ')} (bun run build)`);
      await buildExecutables({ targets: missing });
    }
    programs = {
      nexus: [join(dist, 'nexus')],
      keeper: [join(dist, 'keeper')],
      spike: [join(dist, 'spike')],
    };
  } else {
    programs = {
      nexus: [process.execPath, BUILD_TARGETS.nexus],
      keeper: [process.execPath, BUILD_TARGETS.keeper],
      spike: [process.execPath, BUILD_TARGETS.spike],
    };
  }

  // ---- identity
  say();
  say('  DEVELOPMENT ONLY: a built-in SPIFFE identity issuer with no workload attestation.');
  say('  Anyone who can open a socket in the socket directory gets that identity. Use SPIRE in');
  say('  production (see compose.yaml).');
  say();
  const issuer: DevIssuer = await startDevIssuer({
    dir: socketDir,
    trustDomain: TRUST_DOMAIN,
    keepers: options.keeperPorts.length,
    ttlSeconds: options.svidTtlSeconds,
    extraWorkloads: Object.fromEntries(options.workloads.map((w) => [w.name, w.id])),
    logger: { info: () => {}, warn: (m) => note(m) },
  });
  const svidFollowers: { close(): Promise<void> }[] = [];

  const children: Child[] = [];
  const nexusUrl = `https://${HOST}:${options.nexusPort}`;
  const keeperUrls = options.keeperPorts.map((p) => `https://${HOST}:${p}`);
  const baseEnv: Record<string, string | undefined> = {
    ...process.env,
    SPIKE_SYSTEM_LOG_LEVEL: process.env.SPIKE_SYSTEM_LOG_LEVEL || 'INFO',
  };
  const cliEnv = (identity: string): Record<string, string | undefined> => ({
    ...process.env,
    SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(identity),
    SPIKE_NEXUS_API_URL: nexusUrl,
    SPIKE_PILOT_RECOVERY_DIR: dir,
  });

  const writeRunRecord = (upPid: number | null, keepersKept: boolean) => {
    const nexus = children.find((c) => c.name === 'nexus');
    const record: RunRecord = {
      upPid,
      nexus:
        upPid !== null && nexus !== undefined
          ? { name: 'nexus', pid: nexus.pid, port: nexus.port }
          : null,
      keepers: children
        .filter((c) => c.name.startsWith('keeper-') && (upPid !== null || keepersKept))
        .map((c) => ({ name: c.name, pid: c.pid, port: c.port })),
    };
    writeFileSync(runFile, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  };

  const spawnChild = (
    name: string,
    cmd: string[],
    port: number,
    env: Record<string, string | undefined>,
  ) => {
    const log = join(logDir, `${name}.log`);
    const fd = openSync(log, 'a', 0o600);
    let proc: Subprocess;
    try {
      // Own process group: a Ctrl-C in the terminal reaches only this process, which then
      // stops the children in order (Nexus first) or leaves the Keepers up (--keep-keepers).
      proc = Bun.spawn(cmd, {
        cwd: PROJECT_ROOT,
        env,
        stdin: 'ignore',
        stdout: fd,
        stderr: fd,
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    const child: Child = { name, port, log, proc, pid: proc.pid };
    children.push(child);
    writeRunRecord(process.pid, false);
    return child;
  };

  // ---- stopping
  let stopping = false;
  let unexpected: string | undefined;
  let wakeMain: () => void = () => {};
  const stopAll = async (keepKeepers: boolean) => {
    const nexus = children.filter((c) => c.name === 'nexus');
    await Promise.all(nexus.map((c) => stopPid(c.pid)));
    if (!keepKeepers) {
      await Promise.all(children.filter((c) => c.name !== 'nexus').map((c) => stopPid(c.pid)));
    }
    await Promise.all(svidFollowers.map((f) => f.close().catch(() => undefined)));
    rmSync(certsDir, { recursive: true, force: true });
    await issuer.stop();
    if (keepKeepers) writeRunRecord(null, true);
    else rmSync(runFile, { force: true });
  };
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // `bun run` forwards the terminal's SIGINT that this process also receives directly: a
    // repeat within a second is the same Ctrl-C.
    if (stopping && Date.now() - firstSignalAt < 1000) return;
    if (stopping) {
      note(`${signal} again: killing everything now`);
      for (const c of children) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      process.exit(130);
    }
    stopping = true;
    firstSignalAt = Date.now();
    say();
    note(`${signal}: stopping (Ctrl-C again to kill at once)`);
    wakeMain();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const watch = (child: Child) => {
    void child.proc?.exited.then((code) => {
      if (stopping) return;
      unexpected = `${child.name} exited unexpectedly (exit ${code}); last lines of ${shown(child.log)}:\n${tail(child.log)}`;
      wakeMain();
    });
  };
  const failIfExited = () => {
    if (unexpected !== undefined) throw new Error(unexpected);
    if (stopping) throw INTERRUPTED;
  };

  let pilot: SpikeClient | undefined;
  try {
    // ---- files for standard TLS clients: the trust bundle, and SVIDs as certificate files
    const bundleFile = writeBundle(dir, issuer.rootCertificate);
    rmSync(certsDir, { recursive: true, force: true });
    mkdirSync(certsDir, { recursive: true, mode: 0o700 });
    chmodSync(certsDir, 0o700);
    const svidFiles: SvidFiles[] = [];
    for (const name of ['workload', ...options.workloads.map((w) => w.name)]) {
      const follower = await followSvidFiles(issuer.addressFor(name), name, certsDir, note);
      svidFollowers.push(follower);
      svidFiles.push(follower.files);
    }

    // ---- Keepers
    options.keeperPorts.forEach((port, i) => {
      const name = `keeper-${i + 1}`;
      const kept = adopted.get(i);
      if (kept !== undefined) {
        children.push({ name, port, log: join(logDir, `${name}.log`), pid: kept.pid });
        note(`${name}: still running from the previous run (pid ${kept.pid}), adopted`);
        return;
      }
      const child = spawnChild(name, programs.keeper, port, {
        ...baseEnv,
        SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(name),
        SPIKE_KEEPER_TLS_PORT: `${HOST}:${port}`,
      });
      watch(child);
    });
    writeRunRecord(process.pid, false);
    const keeperDeadline = Date.now() + KEEPER_START_TIMEOUT_MS;
    for (const keeper of children) {
      while (!(await isListening(keeper.port))) {
        failIfExited();
        if (Date.now() > keeperDeadline) {
          throw new Error(
            `${keeper.name} did not listen on ${HOST}:${keeper.port}:\n${tail(keeper.log)}`,
          );
        }
        await sleep(100);
      }
      note(`${keeper.name} listening on ${HOST}:${keeper.port} (pid ${keeper.pid})`);
    }

    // ---- Nexus
    const nexus = spawnChild('nexus', programs.nexus, options.nexusPort, {
      ...baseEnv,
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus'),
      SPIKE_NEXUS_TLS_PORT: `${HOST}:${options.nexusPort}`,
      SPIKE_NEXUS_BACKEND_STORE: 'sqlite',
      SPIKE_NEXUS_DATA_DIR: dir,
      SPIKE_NEXUS_KEEPER_PEERS: keeperUrls.join(','),
      SPIKE_NEXUS_SHAMIR_SHARES: String(options.keeperPorts.length),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: String(THRESHOLD),
      SPIKE_NEXUS_AUDIT_FILE: join(logDir, 'nexus-audit.log'),
      SPIKE_NEXUS_VAULT_API: 'true',
    });
    watch(nexus);
    note(
      hadData
        ? `nexus starting on ${HOST}:${options.nexusPort} with the existing data in ${shown(dataDir)}`
        : `nexus starting on ${HOST}:${options.nexusPort} (first boot: new root key, split across the Keepers)`,
    );

    pilot = await createClient({
      socket: issuer.addressFor('pilot'),
      apiUrl: nexusUrl,
      retry: false,
      timeoutMs: 5000,
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    });
    const client = pilot;
    const isReady = async () => {
      try {
        return await client.ready();
      } catch {
        return false;
      }
    };

    // ---- the root key
    const started = Date.now();
    const freshKeepers = adopted.size === 0;
    let restoreTried = false;
    let waitForOperator = false;
    while (!(await isReady())) {
      failIfExited();
      const waited = Date.now() - started;
      if (waited > NEXUS_READY_TIMEOUT_MS && !waitForOperator) {
        throw new Error(
          `nexus did not become ready within ${NEXUS_READY_TIMEOUT_MS / 1000} s:\n${tail(nexus.log)}`,
        );
      }
      const listening = await isListening(options.nexusPort);
      const keepersCannotHelp = freshKeepers || waited > ADOPTED_RECOVERY_WAIT_MS;
      if (hadData && listening && keepersCannotHelp && !restoreTried) {
        restoreTried = true;
        const restored = await restoreFromFiles(
          recoverDir,
          programs.spike,
          cliEnv('restore'),
          freshKeepers,
        );
        if (!restored) {
          // Nexus is healthy and waits for its key: leave it to the operator, without a deadline.
          waitForOperator = true;
          note('waiting for `spike operator restore` (Ctrl-C to stop)');
        }
      }
      await sleep(200);
    }
    note(`nexus is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    // ---- recovery files (development convenience, see the module header)
    const saved = await runCli(programs.spike, ['operator', 'recover'], cliEnv('recover'));
    if (saved.code === 0) {
      note(
        `DEVELOPMENT ONLY: recovery shards saved in ${shown(recoverDir)} ` +
          'so that a restart can restore the root key. In production keep them offline.',
      );
    } else {
      note(`could not save recovery shards (spike operator recover: ${saved.stderr.trim()})`);
    }

    printNextSteps(options, issuer, nexusUrl, programs.spike, { bundleFile, svidFiles });

    // ---- serve until a signal or a crash
    await new Promise<void>((resolveWait) => {
      wakeMain = resolveWait;
      if (stopping || unexpected !== undefined) resolveWait();
    });
    if (unexpected !== undefined) throw new Error(unexpected);
  } catch (error) {
    if (error !== INTERRUPTED) {
      stopping = true;
      await pilot?.close().catch(() => undefined);
      await stopAll(false);
      throw error;
    }
  }
  stopping = true;
  await pilot?.close().catch(() => undefined);
  await stopAll(options.keepKeepers);
  if (options.keepKeepers) {
    const kept = children.filter((c) => c.name !== 'nexus');
    note(
      `stopped Nexus and the issuer; Keepers still running (pids ${kept.map((c) => c.pid).join(', ')}). ` +
        'The next `bun run dev` recovers the root key from them; `bun run dev -- --stop` stops them.',
    );
  } else {
    note('stopped. The data stays in the state directory; `bun run dev` starts again.');
  }
  return 0;
}

/** `90` → `1m30s`, `1800` → `30m`: a short duration for people. */
function formatSeconds(total: number): string {
  const s = Math.round(total);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${rest > 0 || s === 0 ? `${rest}s` : ''}`;
}

/** Runs the `spike` CLI; stdout and stderr are captured. */
function runCli(
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
async function restoreFromFiles(
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
function printNextSteps(
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
      `      --path-pattern '^secrets/db/' --permissions read`,
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

if (import.meta.main) {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`bun run dev: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (options === 'help') {
    console.log(USAGE);
    process.exit(0);
  }
  try {
    process.exit(await run(options));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`bun run dev: ${message}`);
    process.exit(1);
  }
}
