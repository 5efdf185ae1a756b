/**
 * A real SPIKE deployment on loopback for integration tests: the development identity issuer
 * (src/dev/issuer.ts, in the test process), N Keeper processes (`bun src/keeper/main.ts`) and one
 * Nexus process (`bun src/nexus/main.ts`), all over real mTLS with SVIDs from the issuer.
 *
 * ```ts
 * const cluster = await startCluster({ keepers: 3, threshold: 2 });
 * await cluster.waitReady();                        // Nexus /ready = 200 (plain health port)
 * const pilot = await cluster.client('pilot');      // mTLS client with the superuser SVID
 * await pilot.post('/v1/store/secrets', { path: 'a/b', values: { k: 'v' } });  // {status, json}
 * await cluster.nexus.kill();                       // SIGKILL, waits for the exit
 * await cluster.nexus.start();                      // same ports, same data dir
 * await cluster.keepers[1]!.freeze();               // SIGSTOP; .thaw() = SIGCONT
 * await cluster.close();                            // kills everything, removes the temp dir
 * ```
 *
 * Layout under one temp dir (`cluster.dir`): `sockets/` (Workload API sockets, one per component:
 * `nexus`, `keeper-1..n`, `pilot`, `recover`, `restore`, `workload`), `nexus/data/spike.db` (the
 * Nexus data dir), `logs/<name>.out.log` and `logs/<name>.err.log` (stdout and stderr of every
 * process, appended across restarts; Nexus audit lines go to its stderr). Ports are picked once
 * (free loopback ports) and kept across restarts, so `SPIKE_NEXUS_KEEPER_PEERS` stays valid.
 * Nexus and every Keeper also get a plain-HTTP health port (`SPIKE_*_HEALTH_PORT`) that
 * `nexusReady()` / `keeperReady(i)` poll without mTLS.
 *
 * Roles for `client(role)`: `pilot` (superuser), `recover`, `restore`, `workload` (a plain
 * workload ID), and `nexus`/`keeper-i` should a test need to impersonate a component.
 * Processes still running when the test process exits are killed (SIGKILL).
 *
 * `binaries: { nexus, keeper }` runs those executables (e.g. the compiled `dist/nexus` and
 * `dist/keeper` of `bun run build`) instead of `bun src/...`, from the cluster dir rather than the
 * checkout; pass `PATH` in `nexusEnv`/`keeperEnv` to hide Bun from them.
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Subprocess, spawn } from 'bun';
import { authorizeMatching } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { hasRole } from '../../src/core/spike/roles.ts';
import { type DevIssuer, startDevIssuer } from '../../src/dev/issuer.ts';
import { createMtlsClient, type MtlsClient } from '../../src/runtime/tls/client.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';
import { freePort, plainStatus, waitUntil } from './process.ts';

/** Re-exported for the modules that took it from here (tests/support/spire.ts). */
export { freePort };

const ROOT = join(import.meta.dir, '..', '..');
const TRUST_DOMAIN = 'spike.ist';

/** Every child started by any cluster, killed if the test process exits first. */
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

export interface ClusterOptions {
  /** Number of Keepers (= `SPIKE_NEXUS_SHAMIR_SHARES`); default 3. */
  readonly keepers?: number;
  /** `SPIKE_NEXUS_SHAMIR_THRESHOLD`; default 2. */
  readonly threshold?: number;
  /** Extra or overriding Nexus environment variables. */
  readonly nexusEnv?: Readonly<Record<string, string>>;
  /** Extra or overriding Keeper environment variables. */
  readonly keeperEnv?: Readonly<Record<string, string>>;
  /** `SPIKE_SYSTEM_LOG_LEVEL` of every process; default INFO. */
  readonly logLevel?: string;
  /** Do not start Nexus (call `cluster.nexus.start()` yourself); Keepers are started. */
  readonly deferNexus?: boolean;
  /** Keep the temp dir on `close()` (for debugging). */
  readonly keepDir?: boolean;
  /** Extra identities for `client(name)` / `keeperClient(i, name)`: name → SPIFFE ID. */
  readonly extraWorkloads?: Readonly<Record<string, string>>;
  /**
   * Executables to run instead of `bun src/nexus/main.ts` / `bun src/keeper/main.ts` (absolute
   * paths, e.g. `dist/nexus`); they run with the cluster dir as working directory.
   */
  readonly binaries?: { readonly nexus: string; readonly keeper: string };
}

/** One managed process: same command, environment and ports on every start. */
export interface ManagedProcess {
  readonly name: string;
  /** Current process id, `undefined` when not running. */
  pid(): number | undefined;
  running(): boolean;
  /** Spawns the process; resolves once spawned (not once ready). Returns `performance.now()`. */
  start(): Promise<number>;
  /** SIGKILL (default) or another signal, then waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the process keeps its memory but answers nothing. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Everything written to stdout and stderr so far (all starts). */
  readonly outLog: string;
  readonly errLog: string;
  /** Resolves with the first JSON stdout line of the current start whose `msg` equals `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** An mTLS client talking to Nexus (or a Keeper) with one component's SVID. */
export interface NexusClient {
  readonly mtls: MtlsClient;
  /** POSTs `body` as JSON; returns the status and the parsed JSON answer (or `undefined`). */
  // biome-ignore lint/suspicious/noExplicitAny: tests read and check arbitrary answer shapes
  post(path: string, body: unknown): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

export interface Cluster {
  readonly dir: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly issuer: DevIssuer;
  readonly nexus: ManagedProcess;
  readonly keepers: readonly ManagedProcess[];
  readonly nexusUrl: string;
  readonly keeperUrls: readonly string[];
  readonly nexusHealthPort: number;
  readonly keeperHealthPorts: readonly number[];
  /** Nexus `/ready` over the plain health port: 200, 503, or 0 when it does not answer. */
  nexusReady(): Promise<number>;
  /** Keeper `i` (1-based) `/ready` over its plain health port: 200, 503 or 0. */
  keeperReady(i: number): Promise<number>;
  /** Polls Nexus `/ready` until 200; returns the milliseconds waited. Throws on timeout. */
  waitReady(timeoutMs?: number): Promise<number>;
  /** Polls until `check()` is true; returns the milliseconds waited. Throws on timeout. */
  waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number>;
  /** An mTLS client to Nexus as `role` (`pilot`, `recover`, `restore`, `workload`, ...). */
  client(role: string): Promise<NexusClient>;
  /**
   * An mTLS client to Keeper `i` (1-based) with the Nexus SVID (default), e.g. to read what it
   * holds with `post('/v1/store/shard', {})`.
   */
  keeperClient(i: number, role?: string): Promise<NexusClient>;
  /** Every regular file under the cluster dir (database, WAL, logs ...), sockets excluded. */
  files(): string[];
  close(): Promise<void>;
}

export function managed(
  name: string,
  cmd: string[],
  env: Record<string, string>,
  logDir: string,
  cwd: string = ROOT,
): ManagedProcess {
  const outLog = join(logDir, `${name}.out.log`);
  const errLog = join(logDir, `${name}.err.log`);
  let proc: Subprocess | undefined;
  let startOffset = 0;
  return {
    name,
    outLog,
    errLog,
    pid: () =>
      proc !== undefined && proc.exitCode === null && !proc.killed ? proc.pid : undefined,
    running: () => proc !== undefined && proc.exitCode === null && proc.signalCode === null,
    async start() {
      if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
        throw new Error(`${name} is already running`);
      }
      const out = openSync(outLog, 'a');
      const err = openSync(errLog, 'a');
      startOffset = statSync(outLog).size;
      const startedAt = performance.now();
      try {
        proc = spawn(cmd, { cwd, env, stdin: 'ignore', stdout: out, stderr: err });
      } finally {
        closeSync(out);
        closeSync(err);
      }
      children.add(proc);
      const p = proc;
      void p.exited.then(() => children.delete(p));
      return startedAt;
    },
    async kill(signal = 'SIGKILL') {
      const p = proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
      // A frozen process must be able to act on a catchable signal.
      if (signal !== 'SIGKILL') p.kill('SIGCONT');
      p.kill(signal);
      await p.exited;
    },
    freeze() {
      proc?.kill('SIGSTOP');
    },
    thaw() {
      proc?.kill('SIGCONT');
    },
    async waitForLog(msg, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const text = await Bun.file(outLog).text();
        for (const line of text.slice(startOffset).split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (parsed.msg === msg) return parsed;
          } catch {
            // partial line
          }
        }
        if (proc !== undefined && proc.exitCode !== null) {
          throw new Error(`${name} exited (${proc.exitCode}) before logging "${msg}"`);
        }
        await Bun.sleep(20);
      }
      throw new Error(`${name} did not log "${msg}" within ${timeoutMs} ms`);
    },
  };
}

/**
 * Starts the issuer and the Keepers (waiting until each listens), then Nexus (not waiting for
 * it to be ready: call `waitReady()`).
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const n = options.keepers ?? 3;
  const t = options.threshold ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'spike-cluster-'));
  const socketDir = join(dir, 'sockets');
  const logDir = join(dir, 'logs');
  const nexusDir = join(dir, 'nexus');
  mkdirSync(logDir);
  mkdirSync(nexusDir);
  const issuer = await startDevIssuer({
    dir: socketDir,
    trustDomain: TRUST_DOMAIN,
    keepers: n,
    extraWorkloads: { ...options.extraWorkloads },
    logger: { info() {}, warn() {} },
  });

  const ports = await Promise.all(Array.from({ length: 2 * n + 2 }, () => freePort()));
  const keeperPorts = ports.slice(0, n);
  const keeperHealthPorts = ports.slice(n, 2 * n);
  const nexusPort = ports[2 * n]!;
  const nexusHealthPort = ports[2 * n + 1]!;
  const keeperUrls = keeperPorts.map((p) => `https://127.0.0.1:${p}`);
  const nexusUrl = `https://127.0.0.1:${nexusPort}`;
  const level = options.logLevel ?? 'INFO';
  const binaries = options.binaries;
  const keeperCmd = binaries === undefined ? ['bun', 'src/keeper/main.ts'] : [binaries.keeper];
  const nexusCmd = binaries === undefined ? ['bun', 'src/nexus/main.ts'] : [binaries.nexus];
  const cwd = binaries === undefined ? ROOT : dir;
  const baseEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? dir,
    TMPDIR: dir,
    SPIKE_SYSTEM_LOG_LEVEL: level,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
  };

  const keepers = keeperPorts.map((port, i) =>
    managed(
      `keeper-${i + 1}`,
      keeperCmd,
      {
        ...baseEnv,
        SPIFFE_ENDPOINT_SOCKET: issuer.addressFor(`keeper-${i + 1}`),
        SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${port}`,
        SPIKE_KEEPER_HEALTH_PORT: `127.0.0.1:${keeperHealthPorts[i]}`,
        ...options.keeperEnv,
      },
      logDir,
      cwd,
    ),
  );
  const nexus = managed(
    'nexus',
    nexusCmd,
    {
      ...baseEnv,
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus'),
      SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${nexusPort}`,
      SPIKE_NEXUS_HEALTH_PORT: `127.0.0.1:${nexusHealthPort}`,
      SPIKE_NEXUS_DATA_DIR: nexusDir,
      SPIKE_NEXUS_KEEPER_PEERS: keeperUrls.join(','),
      SPIKE_NEXUS_SHAMIR_SHARES: String(n),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: String(t),
      ...options.nexusEnv,
    },
    logDir,
    cwd,
  );

  const clients = new Set<NexusClient>();

  /** An mTLS client as `role` to `url`, accepting only a server with `serverRole`. */
  async function connect(
    role: string,
    url: string,
    serverRole: 'nexus' | 'keeper',
  ): Promise<NexusClient> {
    const source: X509Source = createX509Source({
      address: issuer.addressFor(role),
      timeoutMs: 10_000,
      logger: { info() {}, warn() {}, error() {} },
    });
    await source.ready();
    const mtls = createMtlsClient({
      source,
      authorizer: authorizeMatching(
        (id) => hasRole(id.toString(), serverRole, [TRUST_DOMAIN]),
        `a ${serverRole} ID`,
      ),
      baseUrl: url,
      timeoutMs: 10_000,
    });
    const client: NexusClient = {
      mtls,
      async post(path, body) {
        const response = await mtls.request(path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = new TextDecoder().decode(response.body);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        return { status: response.status, json };
      },
      async close() {
        clients.delete(client);
        await mtls.close();
        await source.close();
      },
    };
    clients.add(client);
    return client;
  }

  const cluster: Cluster = {
    dir,
    dataDir: join(nexusDir, 'data'),
    logDir,
    issuer,
    nexus,
    keepers,
    nexusUrl,
    keeperUrls,
    nexusHealthPort,
    keeperHealthPorts,
    nexusReady: () => plainStatus(nexusHealthPort, '/ready'),
    keeperReady: (i) => plainStatus(keeperHealthPorts[i - 1]!, '/ready'),
    waitUntil,
    waitReady(timeoutMs = 10_000) {
      return cluster.waitUntil(
        async () => (await cluster.nexusReady()) === 200,
        timeoutMs,
        'nexus /ready = 200',
      );
    },
    client: (role) => connect(role, nexusUrl, 'nexus'),
    keeperClient: (i, role = 'nexus') => connect(role, keeperUrls[i - 1]!, 'keeper'),
    files() {
      const out: string[] = [];
      const walk = (d: string) => {
        for (const entry of readdirSync(d, { withFileTypes: true })) {
          const path = join(d, entry.name);
          if (entry.isDirectory()) walk(path);
          else if (entry.isFile()) out.push(path);
        }
      };
      walk(dir);
      return out;
    },
    async close() {
      for (const client of [...clients]) await client.close().catch(() => undefined);
      for (const p of [nexus, ...keepers]) p.thaw();
      await Promise.all([nexus, ...keepers].map((p) => p.kill('SIGKILL')));
      await issuer.stop();
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };

  await Promise.all(keepers.map((k) => k.start()));
  // A Keeper's health port answers (503 while empty) once its mTLS listener is up.
  await Promise.all(
    keepers.map((k, i) =>
      cluster.waitUntil(async () => (await cluster.keeperReady(i + 1)) !== 0, 10_000, `${k.name}`),
    ),
  );
  if (!options.deferNexus) await nexus.start();
  return cluster;
}

/** One secret to look for on disk: a root key or a shard. */
export interface Needle {
  /** What it is, for the report (never the bytes). */
  readonly label: string;
  readonly bytes: Uint8Array;
}

/** Where a needle was found. */
export interface Finding {
  readonly file: string;
  readonly label: string;
  readonly form: string;
}

/**
 * The encodings a secret could take in a file: raw bytes, hex (both cases), and standard and
 * URL-safe base64 at each of the three byte alignments (only the characters that depend on the
 * secret alone, so an embedding inside a longer base64 text is found too).
 */
function secretForms(bytes: Uint8Array): { form: string; pattern: Uint8Array }[] {
  const text = (s: string) => new TextEncoder().encode(s);
  const hex = Buffer.from(bytes).toString('hex');
  const forms = [
    { form: 'raw', pattern: bytes },
    { form: 'hex', pattern: text(hex) },
    { form: 'HEX', pattern: text(hex.toUpperCase()) },
  ];
  for (let shift = 0; shift < 3; shift++) {
    const padded = new Uint8Array(shift + bytes.length);
    padded.set(bytes, shift);
    const b64 = Buffer.from(padded).toString('base64');
    const first = Math.ceil((8 * shift) / 6);
    const last = Math.floor((8 * (shift + bytes.length) - 6) / 6);
    const inner = b64.slice(first, last + 1);
    forms.push({ form: `base64/${shift}`, pattern: text(inner) });
    const url = inner.replaceAll('+', '-').replaceAll('/', '_');
    if (url !== inner) forms.push({ form: `base64url/${shift}`, pattern: text(url) });
  }
  return forms;
}

/** Scans every file for every needle in every form of `secretForms`. */
export async function scanFiles(
  files: readonly string[],
  needles: readonly Needle[],
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const patterns = needles.flatMap((needle) =>
    secretForms(needle.bytes).map((f) => ({ ...f, label: needle.label })),
  );
  for (const file of files) {
    let content: Buffer;
    try {
      content = Buffer.from(await Bun.file(file).arrayBuffer());
    } catch {
      continue; // removed meanwhile (e.g. a -shm file)
    }
    for (const p of patterns) {
      if (content.indexOf(p.pattern) !== -1) {
        findings.push({ file, label: p.label, form: p.form });
      }
    }
  }
  return findings;
}
