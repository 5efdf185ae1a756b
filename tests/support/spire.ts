/**
 * A real SPIRE Server and Agent on loopback for the SPIRE suites (tests/spire/), and a SPIKE
 * deployment (Nexus + Keepers as the compiled executables of `bun run build`) whose identities
 * come from that Agent. Unlike tests/support/cluster.ts (the development issuer), nothing here
 * was written by us on the identity side: SPIRE attests each process and signs its SVIDs.
 *
 * ```ts
 * const spire = await startSpire({ x509SvidTtl: '30s' });       // server + agent, join token
 * await spire.register([{ spiffeId: NEXUS_ID, binary: 'dist/nexus' }, ...]);
 * await spire.waitForEntries();                                    // agent has synced them
 * const spike = await startSpikeOnSpire(spire, { distDir });      // 3 Keepers, then Nexus
 * await spike.waitReady();
 * const r = await spike.run(spike.bin.spike, ['secret', 'get', 'a/b']);  // {exitCode, stdout, stderr}
 * await spike.close(); await spire.close();
 * ```
 *
 * Attestation: the Agent runs the `unix` workload attestor with `discover_workload_path = true`,
 * so every entry is keyed on `unix:path:<real path of the executable>`, read by the Agent from
 * `/proc/<pid>/exe` of the process at the other end of the socket. Separate executables therefore
 * get separate identities, and an unregistered copy of a registered executable gets none.
 * Node attestation is `join_token`; the Agent bootstraps from the Server's bundle (no insecure
 * bootstrap). Everything lives in one temp dir: `server.sock`, `agent.sock`, `*.conf`,
 * `server-data/`, `agent-data/`, `logs/`.
 *
 * Binaries: `SPIKE_SPIRE_BIN_DIR` (what `.ci/install-spire` prints), else the pinned cache dir.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Subprocess, spawn } from 'bun';
import { freePort, plainStatus } from './process.ts';

/** The SPIRE release `.ci/install-spire` pins (keep the two in step). */
const SPIRE_VERSION = '1.13.3';
export const TRUST_DOMAIN = 'spike.ist';
export const ROOT = join(import.meta.dir, '..', '..');

export const IDS = {
  nexus: `spiffe://${TRUST_DOMAIN}/spike/nexus`,
  keeper: `spiffe://${TRUST_DOMAIN}/spike/keeper`,
  pilot: `spiffe://${TRUST_DOMAIN}/spike/pilot/role/superuser`,
  interop: `spiffe://${TRUST_DOMAIN}/workload/interop`,
  reader: `spiffe://${TRUST_DOMAIN}/workload/reader`,
  driver: `spiffe://${TRUST_DOMAIN}/workload/e2e-driver`,
} as const;

/** Where the SPIRE binaries are. */
function spireBinDir(): string {
  const fromEnv = process.env.SPIKE_SPIRE_BIN_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return join(homedir(), '.cache', 'spike-tools', `spire-${SPIRE_VERSION}`, 'bin');
}

/** Where `bun run build` put nexus, keeper and spike (`SPIKE_DIST_DIR`, else `dist/`). */
function distDir(): string {
  const fromEnv = process.env.SPIKE_DIST_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(ROOT, 'dist');
}

/** Every child started here, killed if the test process exits first. */
const children = new Set<Subprocess>();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (bounded by `timeoutMs`, then SIGKILL). */
export async function run(
  cmd: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; stdin?: string } = {},
): Promise<RunResult> {
  const proc = spawn([...cmd], {
    cwd: ROOT,
    env: options.env ?? { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() },
    stdin: options.stdin === undefined ? 'ignore' : new TextEncoder().encode(options.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  children.add(proc);
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { exitCode, stdout, stderr };
  } finally {
    clearTimeout(timer);
    children.delete(proc);
  }
}

/** A long-running child whose output goes to `<logDir>/<name>.log` (appended across starts). */
interface ManagedProcess {
  readonly name: string;
  readonly log: string;
  running(): boolean;
  start(): void;
  /** SIGKILL (default) or another signal, then waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the first JSON log line (this start) whose `msg` is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function managed(
  name: string,
  cmd: readonly string[],
  env: Record<string, string>,
  logDir: string,
): ManagedProcess {
  const log = join(logDir, `${name}.log`);
  let proc: Subprocess | undefined;
  let offset = 0;
  const alive = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  return {
    name,
    log,
    running: alive,
    start() {
      if (alive()) throw new Error(`${name} is already running`);
      const fd = openSync(log, 'a');
      offset = existsSync(log) ? readFileSync(log).length : 0;
      try {
        proc = spawn([...cmd], { cwd: ROOT, env, stdin: 'ignore', stdout: fd, stderr: fd });
      } finally {
        closeSync(fd);
      }
      children.add(proc);
      const p = proc;
      void p.exited.then(() => children.delete(p));
    },
    async kill(signal = 'SIGKILL') {
      const p = proc;
      if (p === undefined || !alive()) return;
      p.kill(signal);
      await p.exited;
    },
    async waitForLog(msg, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const text = readFileSync(log, 'utf8').slice(offset);
        for (const line of text.split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (parsed.msg === msg) return parsed;
          } catch {
            // partial line
          }
        }
        if (!alive()) throw new Error(`${name} exited before logging "${msg}"`);
        await sleep(50);
      }
      throw new Error(`${name} did not log "${msg}" within ${timeoutMs} ms`);
    },
  };
}

export interface SpireOptions {
  /** `default_x509_svid_ttl` of the Server; default `30s` (SPIRE rotates at about half-life). */
  readonly x509SvidTtl?: string;
  /** Keep the temp dir on `close()`. */
  readonly keepDir?: boolean;
}

/** One registration entry, keyed on the executable's path. */
interface EntrySpec {
  readonly spiffeId: string;
  /** The executable; its real path becomes the `unix:path` selector. */
  readonly binary: string;
}

export interface Spire {
  readonly dir: string;
  readonly binDir: string;
  /** `unix://…/agent.sock`: the Workload API every component uses. */
  readonly agentAddress: string;
  readonly agentSocket: string;
  readonly serverSocket: string;
  /** SPIFFE ID of the attested Agent node (parent of every entry). */
  readonly agentId: string;
  readonly server: ManagedProcess;
  readonly agent: ManagedProcess;
  /** Creates the entries; returns their entry ids in the same order. */
  register(entries: readonly EntrySpec[]): Promise<string[]>;
  /**
   * Waits until the Agent serves SVIDs for every entry registered so far: registers a probe
   * entry for the `spire-agent` executable last and polls `spire-agent api fetch x509` until it
   * gets the probe SVID (entries are synced together, so the earlier ones are there too).
   */
  waitForEntries(timeoutMs?: number): Promise<number>;
  /** `spire-server <args…> -socketPath …`. */
  serverCli(args: readonly string[]): Promise<RunResult>;
  close(): Promise<void>;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await check()) return performance.now() - start;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Starts a SPIRE Server and a join-token-attested Agent in a fresh temp dir. */
export async function startSpire(options: SpireOptions = {}): Promise<Spire> {
  const binDir = spireBinDir();
  const serverBin = join(binDir, 'spire-server');
  const agentBin = join(binDir, 'spire-agent');
  for (const bin of [serverBin, agentBin]) {
    if (!existsSync(bin)) {
      throw new Error(`${bin} is missing: run .ci/install-spire (or set SPIKE_SPIRE_BIN_DIR)`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'spike-spire-'));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  const serverSocket = join(dir, 'server.sock');
  const agentSocket = join(dir, 'agent.sock');
  const serverPort = await freePort();
  // The join token is generated with this ID: the Server makes it a node alias of the attested
  // Agent (spiffe://<td>/spire/agent/join_token/<token>), and every workload entry hangs off it.
  const agentId = `spiffe://${TRUST_DOMAIN}/node/local`;
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir };

  writeFileSync(
    join(dir, 'server.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${serverPort}"
  socket_path = "${serverSocket}"
  trust_domain = "${TRUST_DOMAIN}"
  data_dir = "${join(dir, 'server-data')}"
  log_level = "INFO"
  default_x509_svid_ttl = "${options.x509SvidTtl ?? '30s'}"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(dir, 'server-data', 'datastore.sqlite3')}"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
  );
  const server = managed(
    'spire-server',
    [serverBin, 'run', '-config', join(dir, 'server.conf')],
    env,
    logDir,
  );
  server.start();

  const serverCli = (args: readonly string[]) =>
    run([serverBin, ...args, '-socketPath', serverSocket], { env, timeoutMs: 30_000 });

  const spire: Spire = {
    dir,
    binDir,
    agentAddress: `unix://${agentSocket}`,
    agentSocket,
    serverSocket,
    agentId,
    server,
    agent: undefined as unknown as ManagedProcess,
    serverCli,
    async register(entries) {
      const ids: string[] = [];
      for (const entry of entries) {
        const path = realpathSync(entry.binary);
        const r = await serverCli([
          'entry',
          'create',
          '-parentID',
          agentId,
          '-spiffeID',
          entry.spiffeId,
          '-selector',
          `unix:path:${path}`,
          '-output',
          'json',
        ]);
        if (r.exitCode !== 0) {
          throw new Error(`entry create ${entry.spiffeId} failed: ${r.stderr || r.stdout}`);
        }
        const parsed = JSON.parse(r.stdout) as { results?: { entry?: { id?: string } }[] };
        const id = parsed.results?.[0]?.entry?.id;
        if (id === undefined)
          throw new Error(`entry create ${entry.spiffeId}: no id in ${r.stdout}`);
        ids.push(id);
      }
      return ids;
    },
    async waitForEntries(timeoutMs = 30_000) {
      const probeId = `spiffe://${TRUST_DOMAIN}/probe/${Date.now()}`;
      await spire.register([{ spiffeId: probeId, binary: agentBin }]);
      return waitUntil(
        async () => {
          const r = await run(
            [agentBin, 'api', 'fetch', 'x509', '-socketPath', agentSocket, '-timeout', '2s'],
            { env, timeoutMs: 10_000 },
          );
          return r.exitCode === 0 && r.stdout.includes(probeId);
        },
        timeoutMs,
        'the agent to serve the registered entries',
      );
    },
    async close() {
      await Promise.all([spire.agent?.kill('SIGKILL'), server.kill('SIGKILL')]);
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await waitUntil(
      async () => (await serverCli(['healthcheck'])).exitCode === 0,
      30_000,
      'spire-server healthcheck',
    );
    const bundle = await serverCli(['bundle', 'show', '-format', 'pem']);
    if (bundle.exitCode !== 0) throw new Error(`bundle show failed: ${bundle.stderr}`);
    writeFileSync(join(dir, 'bootstrap.pem'), bundle.stdout);
    const token = await serverCli(['token', 'generate', '-spiffeID', agentId, '-ttl', '600']);
    const joinToken = /Token:\s*(\S+)/.exec(token.stdout)?.[1];
    if (token.exitCode !== 0 || joinToken === undefined) {
      throw new Error(`token generate failed: ${token.stderr || token.stdout}`);
    }
    writeFileSync(
      join(dir, 'agent.conf'),
      `agent {
  data_dir = "${join(dir, 'agent-data')}"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "${serverPort}"
  socket_path = "${agentSocket}"
  trust_bundle_path = "${join(dir, 'bootstrap.pem')}"
  trust_domain = "${TRUST_DOMAIN}"
  join_token = "${joinToken}"
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {
      discover_workload_path = true
    }
  }
}
`,
    );
    const agent = managed(
      'spire-agent',
      [agentBin, 'run', '-config', join(dir, 'agent.conf')],
      env,
      logDir,
    );
    (spire as { agent: ManagedProcess }).agent = agent;
    agent.start();
    await waitUntil(
      async () =>
        (
          await run([agentBin, 'healthcheck', '-socketPath', agentSocket], {
            env,
            timeoutMs: 10_000,
          })
        ).exitCode === 0,
      30_000,
      'spire-agent healthcheck',
    );
  } catch (error) {
    const logs = ['spire-server', 'spire-agent']
      .map((n) => join(logDir, `${n}.log`))
      .filter((f) => existsSync(f))
      .map((f) => `--- ${f}\n${readFileSync(f, 'utf8').slice(-3000)}`)
      .join('\n');
    await spire.close();
    throw new Error(`${(error as Error).message}\n${logs}`);
  }
  return spire;
}

export interface SpikeOnSpireOptions {
  readonly keepers?: number;
  readonly threshold?: number;
  readonly nexusEnv?: Readonly<Record<string, string>>;
}

export interface SpikeOnSpire {
  readonly dir: string;
  readonly nexus: ManagedProcess;
  readonly keepers: readonly ManagedProcess[];
  readonly nexusUrl: string;
  readonly nexusHealthPort: number;
  readonly keeperHealthPorts: readonly number[];
  /** The executables, as registered with SPIRE. */
  readonly bin: { readonly nexus: string; readonly keeper: string; readonly spike: string };
  /** Environment for any SPIKE client process: Workload API socket and Nexus URL. */
  clientEnv(extra?: Record<string, string>): Record<string, string>;
  /** Runs a client executable (spike, the interop program, ...) against this Nexus. */
  run(
    binary: string,
    args: readonly string[],
    options?: { timeoutMs?: number; stdin?: string; env?: Record<string, string> },
  ): Promise<RunResult>;
  /** `/ready` on a plain health port: 200, 503, or 0 when nothing answers. */
  nexusReady(): Promise<number>;
  keeperReady(i: number): Promise<number>;
  waitReady(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

/** The SPIKE executables in `distDir`, checked to exist. */
export function spikeBinaries(dist = distDir()) {
  const bin = {
    nexus: join(dist, 'nexus'),
    keeper: join(dist, 'keeper'),
    spike: join(dist, 'spike'),
  };
  for (const path of Object.values(bin)) {
    if (!existsSync(path)) throw new Error(`${path} is missing: run \`bun run build\` first`);
  }
  return bin;
}

/**
 * Starts the Keepers (waiting until each listens), then Nexus (not waiting for it to be ready).
 * Their identities must already be registered (`IDS.nexus` for `bin.nexus`, `IDS.keeper` for
 * `bin.keeper`).
 */
export async function startSpikeOnSpire(
  spire: Spire,
  options: SpikeOnSpireOptions = {},
): Promise<SpikeOnSpire> {
  const bin = spikeBinaries();
  const n = options.keepers ?? 3;
  const t = options.threshold ?? 2;
  const dir = join(spire.dir, 'spike');
  const logDir = join(spire.dir, 'logs');
  mkdirSync(join(dir, 'nexus'), { recursive: true });
  const ports = await Promise.all(Array.from({ length: 2 * n + 2 }, () => freePort()));
  const keeperPorts = ports.slice(0, n);
  const keeperHealthPorts = ports.slice(n, 2 * n);
  const nexusPort = ports[2 * n]!;
  const nexusHealthPort = ports[2 * n + 1]!;
  const nexusUrl = `https://127.0.0.1:${nexusPort}`;
  const baseEnv = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    TMPDIR: dir,
    SPIFFE_ENDPOINT_SOCKET: spire.agentAddress,
    SPIKE_SYSTEM_LOG_LEVEL: 'INFO',
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '20s',
  };
  const keepers = keeperPorts.map((port, i) =>
    managed(
      `keeper-${i + 1}`,
      [bin.keeper],
      {
        ...baseEnv,
        SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${port}`,
        SPIKE_KEEPER_HEALTH_PORT: `127.0.0.1:${keeperHealthPorts[i]}`,
      },
      logDir,
    ),
  );
  const nexus = managed(
    'nexus',
    [bin.nexus],
    {
      ...baseEnv,
      SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${nexusPort}`,
      SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${nexusHealthPort}`,
      SPIKE_NEXUS_DATA_DIR: join(dir, 'nexus'),
      SPIKE_NEXUS_KEEPER_PEERS: keeperPorts.map((p) => `https://127.0.0.1:${p}`).join(','),
      SPIKE_NEXUS_SHAMIR_SHARES: String(n),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: String(t),
      ...options.nexusEnv,
    },
    logDir,
  );
  const clientEnv = (extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? '',
    HOME: dir,
    TMPDIR: dir,
    SPIFFE_ENDPOINT_SOCKET: spire.agentAddress,
    SPIKE_NEXUS_API_URL: nexusUrl,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '20s',
    ...extra,
  });
  const spike: SpikeOnSpire = {
    dir,
    nexus,
    keepers,
    nexusUrl,
    nexusHealthPort,
    keeperHealthPorts,
    bin,
    clientEnv,
    run: (binary, args, runOptions = {}) =>
      run([binary, ...args], {
        env: clientEnv(runOptions.env),
        timeoutMs: runOptions.timeoutMs ?? 60_000,
        ...(runOptions.stdin !== undefined && { stdin: runOptions.stdin }),
      }),
    nexusReady: () => plainStatus(nexusHealthPort, '/ready'),
    keeperReady: (i) => plainStatus(keeperHealthPorts[i - 1]!, '/ready'),
    waitReady: (timeoutMs = 30_000) =>
      waitUntil(async () => (await spike.nexusReady()) === 200, timeoutMs, 'nexus /ready = 200'),
    async close() {
      await Promise.all([nexus, ...keepers].map((p) => p.kill('SIGKILL')));
    },
  };
  for (const k of keepers) k.start();
  await Promise.all(
    keepers.map((k, i) =>
      waitUntil(async () => (await spike.keeperReady(i + 1)) !== 0, 30_000, `${k.name} listening`),
    ),
  );
  nexus.start();
  return spike;
}

/** Copies `binary` into `dir` under `name` (an unregistered path: SPIRE must refuse it). */
export function copyExecutable(binary: string, dir: string, name: string): string {
  const target = join(dir, name);
  copyFileSync(binary, target);
  return target;
}
