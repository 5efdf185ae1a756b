/**
 * Keeper configuration from environment variables (docs/spike-api.md §10, §12): the one parser of
 * every variable the Keeper reads, with the rules of src/core/config.ts (an invalid value stops
 * the Keeper with one line naming the variable; an invalid or ≤ 0 duration falls back to its
 * default with a warning).
 *
 * `SPIFFE_ENDPOINT_SOCKET` is read by the Workload API client itself.
 */

import {
  choiceVar,
  durationVar,
  type Env,
  type ListenAddress,
  listenVar,
  logLevelVar,
  type ServerLimits,
  serverLimitsVar,
  trustRootVar,
} from '../core/config.ts';
import type { LogLevel } from '../core/log.ts';
import type { RoleMatch } from '../core/spike/roles.ts';

/** The typed Keeper configuration. */
export interface KeeperConfig {
  /** `SPIKE_KEEPER_TLS_PORT`, default `:8443`. */
  readonly tls: ListenAddress;
  /** `SPIKE_KEEPER_HEALTH_PORT`: plain-HTTP `/health` and `/ready`; unset = off. */
  readonly health?: ListenAddress;
  /** `SPIKE_SYSTEM_LOG_LEVEL`, default WARN. */
  readonly logLevel: LogLevel;
  /** `SPIKE_TRUST_ROOT_{NEXUS,BOOTSTRAP,KEEPER}`, default `spike.ist`. */
  readonly trustRoots: {
    readonly nexus: readonly string[];
    readonly bootstrap: readonly string[];
    readonly keeper: readonly string[];
  };
  /**
   * `SPIKE_KEEPER_ROLE_MATCH`: how caller IDs are matched against the nexus and bootstrap role
   * paths, `exact` (default) or `prefix` (docs/architecture.md "Shard custody").
   */
  readonly roleMatch: RoleMatch;
  /** `SPIKE_SPIFFE_SOURCE_TIMEOUT` in milliseconds, default 30s. */
  readonly spiffeSourceTimeoutMs: number;
  /** `SPIKE_HTTP_SERVER_MAX_CONNECTIONS` and `_MAX_CONCURRENT_STREAMS`. */
  readonly serverLimits: ServerLimits;
  /** Fallbacks taken, one line each, for the caller to log. */
  readonly warnings: readonly string[];
}

/**
 * Parses the Keeper environment.
 *
 * @param env usually `process.env`, passed in by the entry point.
 * @throws SpikeError `config_invalid` with one line naming the variable.
 */
export function parseKeeperConfig(env: Env): KeeperConfig {
  const warnings: string[] = [];
  const health = listenVar(env, 'SPIKE_KEEPER_HEALTH_PORT');
  return {
    tls: listenVar(env, 'SPIKE_KEEPER_TLS_PORT', ':8443'),
    ...(health === undefined ? {} : { health }),
    logLevel: logLevelVar(env),
    trustRoots: {
      nexus: trustRootVar(env, 'SPIKE_TRUST_ROOT_NEXUS'),
      bootstrap: trustRootVar(env, 'SPIKE_TRUST_ROOT_BOOTSTRAP'),
      keeper: trustRootVar(env, 'SPIKE_TRUST_ROOT_KEEPER'),
    },
    roleMatch:
      choiceVar(env, 'SPIKE_KEEPER_ROLE_MATCH', ['EXACT', 'PREFIX'] as const, 'EXACT') === 'EXACT'
        ? 'exact'
        : 'prefix',
    spiffeSourceTimeoutMs: durationVar(env, 'SPIKE_SPIFFE_SOURCE_TIMEOUT', '30s', warnings),
    serverLimits: serverLimitsVar(env),
    warnings,
  };
}
