/**
 * Start-up and shut-down steps shared by the two server entry points, src/nexus/main.ts and
 * src/keeper/main.ts (docs/spike-api.md §10, §12; docs/style.md rule 3: only entry points read the
 * environment, open sockets and exit).
 *
 * Both log JSON lines on stdout, route the Workload API client's messages into that log, refuse
 * to start unless their own SVID has their role, and stop on SIGTERM or SIGINT within a bounded
 * time. The pieces that differ (configuration, what a fatal error prints, what stopping wipes)
 * stay in each main file.
 */
import type { ListenAddress } from '../core/config.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { createLogger, type Logger, type LogLevel } from '../core/log.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole } from '../core/spike/roles.ts';
import { describeError } from './describe-error.ts';
import type { HealthServer } from './health.ts';
import { createX509Source, type WorkloadLogger } from './workload/client.ts';

/** How long a stopping process waits for its listeners to close before it exits anyway. */
const STOP_DEADLINE_MS = 5000;

/**
 * The one fatal line for a start-up failure. Start-up steps throw `SpikeError`s with fixed text
 * (docs/style.md: messages never carry secret material), so their message is printed as it is; any
 * other error is reduced to a log-safe identifier (./describe-error.ts).
 */
export function fatalMessage(error: unknown): string {
  return isSpikeError(error) ? error.message : `start-up failed (${describeError(error)})`;
}

/** The process log: JSON lines on stdout (docs/spike-api.md §12 "Logs"). */
export function createStdoutLogger(component: string, level: LogLevel): Logger {
  return createLogger({
    level,
    component,
    sink: (line) => process.stdout.write(`${line}\n`),
  });
}

/** The Workload API client's messages as lines of `log`, tagged `source: workload-api`. */
export function workloadApiLogger(log: Logger): WorkloadLogger {
  const fields = { source: 'workload-api' };
  return {
    debug: (m) => log.debug(m, fields),
    info: (m) => log.info(m, fields),
    warn: (m) => log.warn(m, fields),
    error: (m) => log.error(m, fields),
  };
}

/**
 * Waits for the process's first X.509-SVID and checks that its ID has `role` under
 * `trustDomains` (`SPIKE_TRUST_ROOT_NEXUS` / `SPIKE_TRUST_ROOT_KEEPER`, docs/spike-api.md §1).
 * Returns the ID.
 *
 * @throws SpikeError `workload_api_*` when no SVID arrives (the source's timeout),
 *   `svid_unauthorized` when the ID lacks the role.
 */
async function ownIdWithRole(
  source: X509Source,
  role: 'nexus' | 'keeper',
  trustDomains: readonly string[],
): Promise<string> {
  let ownId: string;
  try {
    ownId = (await source.ready()).svids[0]!.id;
  } catch (error) {
    throw new SpikeError(
      isSpikeError(error) && error.code === 'workload_api_timeout'
        ? 'workload_api_timeout'
        : 'workload_api_error',
      `no X.509-SVID from the Workload API (${describeError(error)})`,
    );
  }
  if (!hasRole(ownId, role, trustDomains)) {
    throw new SpikeError(
      'svid_unauthorized',
      `own SPIFFE ID ${ownId} does not have the ${role} role (SPIKE_TRUST_ROOT_${role.toUpperCase()})`,
    );
  }
  return ownId;
}

/**
 * Starts the process's X.509 source (the Workload API at `address`, else `SPIFFE_ENDPOINT_SOCKET`)
 * with its messages in `log`. `ownId` resolves once the first SVID has `role` (`ownIdWithRole`,
 * same errors); from then on every rotation is logged (`logSvidRotations`). The caller closes
 * `source`.
 */
export function startOwnIdentity(
  role: 'nexus' | 'keeper',
  trustDomains: readonly string[],
  options: { readonly address?: string | undefined; readonly timeoutMs: number },
  log: Logger,
): { source: X509Source; ownId: Promise<string> } {
  const source = createX509Source({
    ...(options.address === undefined ? {} : { address: options.address }),
    timeoutMs: options.timeoutMs,
    logger: workloadApiLogger(log),
  });
  const ownId = ownIdWithRole(source, role, trustDomains).then((id) => {
    logSvidRotations(source, log);
    return id;
  });
  return { source, ownId };
}

/**
 * Logs every change of our own identity (rotation, or withdrawal by the Workload API) at INFO, with
 * the new leaf's serial and expiry; never key material. Returns the unsubscribe function.
 */
function logSvidRotations(source: X509Source, log: Logger): () => void {
  return source.onUpdate((context) => {
    const svid = context?.svids[0];
    if (svid === undefined) {
      log.warn(
        'X.509-SVID withdrawn by the Workload API; refusing new connections until a new one',
      );
      return;
    }
    log.info('X.509-SVID rotated', {
      id: svid.id,
      serial: svid.serial,
      notAfter: svid.notAfter.toISOString(),
    });
  });
}

/** What {@link serveUntilStopped} serves. */
export interface ServeOptions {
  /** Names the variables of a listen failure: `SPIKE_NEXUS_TLS_PORT`, `SPIKE_KEEPER_HEALTH_PORT`. */
  readonly component: 'nexus' | 'keeper';
  readonly server: { listen(port: number, host?: string): Promise<{ readonly port: number }> };
  /** What the health port serves: the app's handler, which answers `/health` and `/ready`. */
  readonly handler: (request: Request) => Promise<Response>;
  readonly tls: ListenAddress;
  /** The plain-HTTP health port; none when undefined. */
  readonly health?: ListenAddress | undefined;
  /** Everything to close on SIGTERM or SIGINT but the health port, which is closed beside it. */
  readonly stop: (signal: 'SIGTERM' | 'SIGINT') => Promise<unknown>;
}

/**
 * Arms the stop signals (`exitOnStopSignal`), then listens on the mTLS port and, when configured,
 * on the plain-HTTP health port (docs/spike-api.md §12). The health module is loaded only then:
 * `node:http` costs about 1.3 MB of resident memory. A port that cannot be bound throws
 * `listenOrFatal`'s error. Returns the bound ports.
 */
export async function serveUntilStopped(
  options: ServeOptions,
): Promise<{ port: number; healthPort: number | null }> {
  const prefix = `SPIKE_${options.component.toUpperCase()}`;
  let health: HealthServer | undefined;
  exitOnStopSignal((signal) => Promise.allSettled([options.stop(signal), health?.close()]));
  const { tls } = options;
  const bound = await listenOrFatal(
    options.server.listen(tls.port, tls.host),
    `${prefix}_TLS_PORT`,
  );
  if (options.health !== undefined) {
    const { startHealthServer } = await import('./health.ts');
    health = await listenOrFatal(
      startHealthServer(options.handler, options.health),
      `${prefix}_HEALTH_PORT`,
    );
  }
  return { port: bound.port, healthPort: health?.port ?? null };
}

/**
 * `listening` (a listener's start), or a `SpikeError('config_invalid')` `cannot listen on
 * <variable> (<code>)` when it fails (e.g. `EADDRINUSE`).
 */
function listenOrFatal<T>(listening: Promise<T>, variable: string): Promise<T> {
  return listening.catch((error: unknown) => {
    throw new SpikeError(
      'config_invalid',
      `cannot listen on ${variable} (${describeError(error)})`,
    );
  });
}

/**
 * On the first SIGTERM or SIGINT, runs `stop` and exits 0 once it settles, or after 5 s at the
 * latest: a peer that will not let go never keeps the process alive. Later signals are ignored.
 */
function exitOnStopSignal(stop: (signal: 'SIGTERM' | 'SIGINT') => Promise<unknown>): void {
  let stopping = false;
  const onSignal = (signal: 'SIGTERM' | 'SIGINT') => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => process.exit(0), STOP_DEADLINE_MS);
    deadline.unref();
    // The executor runs `stop` at once; a synchronous throw becomes a rejection.
    void new Promise((resolve) => resolve(stop(signal)))
      .catch(() => undefined)
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
