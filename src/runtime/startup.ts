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
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { createLogger, type Logger, type LogLevel } from '../core/log.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole } from '../core/spike/roles.ts';
import { describeError } from './describe-error.ts';
import type { WorkloadLogger } from './workload/client.ts';

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
export async function ownIdWithRole(
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
 * Logs every change of our own identity (rotation, or withdrawal by the Workload API) at INFO, with
 * the new leaf's serial and expiry; never key material. Returns the unsubscribe function.
 */
export function logSvidRotations(source: X509Source, log: Logger): () => void {
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

/**
 * `listening` (a listener's start), or a `SpikeError('config_invalid')` `cannot listen on
 * <variable> (<code>)` when it fails (e.g. `EADDRINUSE`).
 */
export function listenOrFatal<T>(listening: Promise<T>, variable: string): Promise<T> {
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
export function exitOnStopSignal(stop: (signal: 'SIGTERM' | 'SIGINT') => Promise<unknown>): void {
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
