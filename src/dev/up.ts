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
 * left running by a previous run and exit), `--dir <dir>`, `--workload`, `--svid-ttl`,
 * `--jwt-audience <aud>` (Nexus also accepts JWT-SVIDs for `<aud>`, signed by the issuer), `--help`.
 * A bad option is a usage error (exit 2) before anything starts.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_TARGETS, buildExecutables, PROJECT_ROOT } from '../build.ts';
import { createClient, type SpikeClient } from '../sdk/client.ts';
import { type DevIssuer, startDevIssuer } from './issuer.ts';
import { printNextSteps, restoreFromFiles, runCli } from './next-steps.ts';
import { HOST, type Options, parseOptions, TRUST_DOMAIN, USAGE } from './options.ts';
import { note, say, sleep } from './output.ts';
import { type DevPostgres, startDevPostgres, stopDevPostgres } from './postgres.ts';
import {
  isOurs,
  type ProcessRecord,
  readRunRecord,
  refuseConcurrentRun,
  stopPid,
  stopRecorded,
} from './previous-run.ts';
import {
  type NexusLaunch,
  replicaPorts,
  replicaUrls,
  startNexusReplicas,
  waitForOtherReplicas,
} from './replicas.ts';
import {
  checkPortFree,
  followSvidFiles,
  isListening,
  type SvidFiles,
  shown,
  socketDirFor,
  tail,
  writeBundle,
} from './state-files.ts';
import { type Child, INTERRUPTED, Supervisor } from './supervisor.ts';

export type { Options } from './options.ts';
export { parseOptions } from './options.ts';
export { socketDirFor } from './state-files.ts';

const KEEPER_START_TIMEOUT_MS = 30_000;
const NEXUS_READY_TIMEOUT_MS = 60_000;
/** How long to let Nexus recover the key from adopted Keepers before restoring from files. */
const ADOPTED_RECOVERY_WAIT_MS = 40_000;

/** The command lines of the three programs (sources under Bun, or dist/ executables). */
interface Programs {
  readonly nexus: string[];
  readonly keeper: string[];
  readonly spike: string[];
}

/** What the steps of one run share. */
interface RunContext {
  readonly options: Options;
  readonly dir: string;
  readonly logDir: string;
  readonly recoverDir: string;
  readonly certsDir: string;
  readonly hadData: boolean;
  readonly programs: Programs;
  readonly issuer: DevIssuer;
  readonly supervisor: Supervisor;
  /** Keepers of the previous run still up, by slot. */
  readonly adopted: ReadonlyMap<number, ProcessRecord>;
  /** The first replica's URL (the CLI runs of this command use it). */
  readonly nexusUrl: string;
  /** `--postgres`: the development cluster's URL. */
  readonly databaseUrl: string | undefined;
}

/** Refuses to run twice, stops a stray Nexus, and returns the live Keepers to adopt by slot. */
async function settlePreviousRun(options: Options, runFile: string) {
  const previous = readRunRecord(runFile);
  refuseConcurrentRun(previous);
  if (options.reset) {
    await stopRecorded(runFile);
    rmSync(options.dir, { recursive: true, force: true });
    note(`--reset: deleted ${options.dir}`);
  } else {
    for (const nexus of [previous?.nexus ?? null, ...(previous?.replicas ?? [])]) {
      if (nexus === null || !isOurs(nexus.pid, 'nexus')) continue;
      note(`stopping the Nexus left running by the previous run (pid ${nexus.pid})`);
      await stopPid(nexus.pid);
    }
  }
  const adopted = new Map<number, ProcessRecord>();
  if (options.reset) return adopted;
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
  return adopted;
}

/** Every port not held by an adopted Keeper must be free, else a one-line way out. */
async function checkPorts(options: Options, adopted: ReadonlyMap<number, ProcessRecord>) {
  const wanted: [string, number][] = [
    ...replicaPorts(options).map((p, i): [string, number] => [
      i === 0 ? 'nexus' : `nexus-${i + 1}`,
      p,
    ]),
    ...options.keeperPorts.map((p, i): [string, number] => [`keeper-${i + 1}`, p]),
  ];
  for (const [name, port] of wanted) {
    if ([...adopted.values()].some((k) => k.port === port)) continue;
    const problem = await checkPortFree(port);
    if (problem !== undefined) {
      const flag = name.startsWith('nexus') ? '--nexus-port 9553' : '--keeper-ports 9443,9444,9445';
      throw new Error(
        `port ${port} (${name}) on ${HOST} is not available (${problem}). Stop what uses it ` +
          `(e.g. \`ss -ltnp 'sport = :${port}'\`), or choose other ports: bun run dev -- ${flag}`,
      );
    }
  }
}

async function programsFor(options: Options): Promise<Programs> {
  if (!options.compiled) {
    return {
      nexus: [process.execPath, BUILD_TARGETS.nexus],
      keeper: [process.execPath, BUILD_TARGETS.keeper],
      spike: [process.execPath, BUILD_TARGETS.spike],
    };
  }
  const dist = join(PROJECT_ROOT, 'dist');
  const missing = (['nexus', 'keeper', 'spike'] as const).filter(
    (name) => !existsSync(join(dist, name)),
  );
  if (missing.length > 0) {
    note(`building ${missing.map((m) => `dist/${m}`).join(', ')} (bun run build)`);
    await buildExecutables({ targets: missing });
  }
  return {
    nexus: [join(dist, 'nexus')],
    keeper: [join(dist, 'keeper')],
    spike: [join(dist, 'spike')],
  };
}

/** The environment of a `spike` CLI run as `identity`. */
function cliEnv(ctx: RunContext, identity: string): Record<string, string | undefined> {
  return {
    ...process.env,
    SPIFFE_ENDPOINT_SOCKET: ctx.issuer.addressFor(identity),
    SPIKE_NEXUS_API_URL: ctx.nexusUrl,
    SPIKE_PILOT_RECOVERY_DIR: ctx.dir,
  };
}

const baseEnv = (): Record<string, string | undefined> => ({
  ...process.env,
  SPIKE_SYSTEM_LOG_LEVEL: process.env.SPIKE_SYSTEM_LOG_LEVEL || 'INFO',
});

/** The trust bundle, and the SVIDs of the example workload and every `--workload` as files. */
async function writeClientFiles(ctx: RunContext) {
  const bundleFile = writeBundle(ctx.dir, ctx.issuer.rootCertificate);
  rmSync(ctx.certsDir, { recursive: true, force: true });
  mkdirSync(ctx.certsDir, { recursive: true, mode: 0o700 });
  chmodSync(ctx.certsDir, 0o700);
  const svidFiles: SvidFiles[] = [];
  for (const name of ['workload', ...ctx.options.workloads.map((w) => w.name)]) {
    const follower = await followSvidFiles(ctx.issuer.addressFor(name), name, ctx.certsDir, note);
    ctx.supervisor.svidFollowers.push(follower);
    svidFiles.push(follower.files);
  }
  return { bundleFile, svidFiles };
}

/** Starts (or adopts) the Keepers and waits until each listens. */
async function startKeepers(ctx: RunContext): Promise<void> {
  const { supervisor, issuer } = ctx;
  ctx.options.keeperPorts.forEach((port, i) => {
    const name = `keeper-${i + 1}`;
    const kept = ctx.adopted.get(i);
    if (kept !== undefined) {
      supervisor.children.push({ name, port, log: join(ctx.logDir, `${name}.log`), pid: kept.pid });
      note(`${name}: still running from the previous run (pid ${kept.pid}), adopted`);
      return;
    }
    supervisor.spawn(name, ctx.programs.keeper, port, {
      ...baseEnv(),
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(name),
      SPIKE_KEEPER_TLS_PORT: `${HOST}:${port}`,
    });
  });
  supervisor.writeRunRecord(process.pid, false);
  const keeperDeadline = Date.now() + KEEPER_START_TIMEOUT_MS;
  for (const keeper of supervisor.children) {
    while (!(await isListening(keeper.port))) {
      supervisor.failIfExited();
      if (Date.now() > keeperDeadline) {
        throw new Error(
          `${keeper.name} did not listen on ${HOST}:${keeper.port}:\n${tail(keeper.log)}`,
        );
      }
      await sleep(100);
    }
    note(`${keeper.name} listening on ${HOST}:${keeper.port} (pid ${keeper.pid})`);
  }
}

/**
 * Waits until Nexus holds its root key: recovered from adopted Keepers, or (development only)
 * restored from the saved recovery files; without them it waits for the operator.
 */
async function waitForRootKey(ctx: RunContext, nexus: Child, pilot: SpikeClient): Promise<void> {
  const isReady = async () => {
    try {
      return await pilot.ready();
    } catch {
      return false;
    }
  };
  const started = Date.now();
  const freshKeepers = ctx.adopted.size === 0;
  let restoreTried = false;
  let waitForOperator = false;
  while (!(await isReady())) {
    ctx.supervisor.failIfExited();
    const waited = Date.now() - started;
    if (waited > NEXUS_READY_TIMEOUT_MS && !waitForOperator) {
      throw new Error(
        `nexus did not become ready within ${NEXUS_READY_TIMEOUT_MS / 1000} s:\n${tail(nexus.log)}`,
      );
    }
    const listening = await isListening(ctx.options.nexusPort);
    const keepersCannotHelp = freshKeepers || waited > ADOPTED_RECOVERY_WAIT_MS;
    if (ctx.hadData && listening && keepersCannotHelp && !restoreTried) {
      restoreTried = true;
      const env = cliEnv(ctx, 'restore');
      if (!(await restoreFromFiles(ctx.recoverDir, ctx.programs.spike, env, freshKeepers))) {
        // Nexus is healthy and waits for its key: leave it to the operator, without a deadline.
        waitForOperator = true;
        note('waiting for `spike operator restore` (Ctrl-C to stop)');
      }
    }
    await sleep(200);
  }
  note(`nexus is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Everything from the client files to serving until a signal (the supervisor is running). */
async function startAndServe(ctx: RunContext): Promise<void> {
  const files = await writeClientFiles(ctx);
  await startKeepers(ctx);
  const launch: NexusLaunch = { ...ctx, nexusCommand: ctx.programs.nexus };
  const replicas = startNexusReplicas(launch);
  const nexus = replicas[0]!;
  const pilot = await createClient({
    socket: ctx.issuer.addressFor('pilot'),
    apiUrl: ctx.nexusUrl,
    retry: false,
    timeoutMs: 5000,
    logger: { info: () => {}, warn: () => {}, error: () => {} },
  });
  try {
    await waitForRootKey(ctx, nexus, pilot);
    await waitForOtherReplicas(launch, replicas);
    // Recovery files: a development convenience, see the module header.
    const saved = await runCli(ctx.programs.spike, ['operator', 'recover'], cliEnv(ctx, 'recover'));
    if (saved.code === 0) {
      note(
        `DEVELOPMENT ONLY: recovery shards saved in ${shown(ctx.recoverDir)} ` +
          'so that a restart can restore the root key. In production keep them offline.',
      );
    } else {
      note(`could not save recovery shards (spike operator recover: ${saved.stderr.trim()})`);
    }
    // Several replicas: clients get them all, comma-separated, and fail over between them.
    const apiUrl = replicaUrls(ctx.options).join(',');
    printNextSteps(ctx.options, ctx.issuer, apiUrl, ctx.programs.spike, files);
    await ctx.supervisor.serve();
  } finally {
    await pilot.close().catch(() => undefined);
  }
}

async function run(options: Options): Promise<number> {
  const { dir } = options;
  const runFile = join(dir, 'run.json');
  if (options.stopOnly) {
    const n = (await stopRecorded(runFile)) + ((await stopDevPostgres(dir, process.env)) ? 1 : 0);
    note(n === 0 ? 'nothing was running' : `stopped ${n} process(es) of the previous run`);
    return 0;
  }
  const adopted = await settlePreviousRun(options, runFile);
  await checkPorts(options, adopted);

  const logDir = join(dir, 'logs');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const hadData = options.postgres
    ? existsSync(join(dir, 'postgres', 'data', 'PG_VERSION'))
    : existsSync(join(dir, 'data', 'spike.db'));
  const socketDir = socketDirFor(
    dir,
    options.workloads.map((w) => w.name),
  );
  const certsDir = join(dir, 'certs');
  if (!socketDir.startsWith(dir)) {
    note(`the checkout path is long; Workload API sockets are in ${socketDir}`);
  }
  const programs = await programsFor(options);
  const postgres: DevPostgres | undefined = options.postgres
    ? await startDevPostgres(dir, process.env, note)
    : undefined;

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
  const supervisor = new Supervisor({ runFile, logDir, certsDir }, issuer);
  supervisor.handleSignals();
  const ctx: RunContext = {
    options,
    dir,
    logDir,
    recoverDir: join(dir, 'recover'),
    certsDir,
    hadData,
    programs,
    issuer,
    supervisor,
    adopted,
    nexusUrl: `https://${HOST}:${options.nexusPort}`,
    databaseUrl: postgres?.url,
  };
  try {
    await startAndServe(ctx);
  } catch (error) {
    if (error !== INTERRUPTED) {
      await supervisor.stopAll(false);
      await postgres?.stop();
      throw error;
    }
  }
  await supervisor.stopAll(options.keepKeepers);
  await postgres?.stop();
  if (options.keepKeepers) {
    const kept = supervisor.children.filter((c) => c.name !== 'nexus');
    note(
      `stopped Nexus and the issuer; Keepers still running (pids ${kept.map((c) => c.pid).join(', ')}). ` +
        'The next `bun run dev` recovers the root key from them; `bun run dev -- --stop` stops them.',
    );
  } else {
    note('stopped. The data stays in the state directory; `bun run dev` starts again.');
  }
  return 0;
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
