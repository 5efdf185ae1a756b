/**
 * The Nexus HTTP API: the SPIKE v1 routes behind one small pipeline (docs/spike-api.md §3, §4, §7, §8,
 * §9, §12; docs/architecture.md decision 2; docs/style.md rule 3). The HTTP style is the plain
 * `{ handle(Request): Promise<Response> }` form, as the Keeper's (docs/architecture.md "HTTP style: measured decision (decision 2)").
 *
 * `createNexusApp(deps)` returns an app and opens nothing: the mTLS transport turns each request
 * into a Web `Request` and calls `app.handle(request)`; tests do the same in-process. The peer
 * SPIFFE ID comes only from `deps.peerOf(request)` (the transport's verified certificate, e.g. a
 * WeakMap keyed by the request), never from a header.
 *
 * Processing order (§3; the first failing step answers):
 * 1. `GET /health`, `GET /ready` (§12; not audited: probes would drown the trail and touch nothing);
 * 2. a path under a mounted prefix (`deps.mounts`) goes to that handler, with the verified peer;
 * 3. method ≠ POST → 400;
 * 4. no root key, backend ≠ memory, path not recover/restore → 503 (unknown paths included);
 * 5. exact path + first `action` query value (absent = `""`, a trailing `/` is another path), from
 *    the route table of src/api/v1/routes.ts, and the backend's route set (lite: cipher, recover,
 *    restore, verify; memory: recover and restore → 400 here, before authorisation) → else 400;
 * 6. the route's `decode`: body under `maxBodyBytes`, read incrementally, decoded with Go
 *    `encoding/json` semantics (src/core/http/go-json.ts) → 400;
 * 7. identity and the route's `guard` (peer ID re-checked per §2, roles per §1, policies per §7)
 *    → 401; cipher decrypt authorises before reading its body (§8);
 * 8. the route's `handle`: validation (§5) → 400; execution → 200, 404, 409 (restore), 500.
 *
 * Errors answer the route's zero-valued body plus `err`, with the status from the one table in
 * src/api/v1/errors.ts. The routes live in ./routes/ (secrets, policies, cipher, operator).
 *
 * Audit: exactly one line per request other than the two probes, written before the response is
 * returned, with the caller's SPIFFE ID, route, action, resource (once validated; on a denial, the
 * requested path when it is well formed), outcome
 * (`allowed` = 200, `denied` = 401, `error` = anything else), status, error code and duration; never
 * a value (§12). Mounted handlers are audited the same way (action and resource as they report).
 */
import { probeResponse } from '../api/v1/http.ts';
import { actionOf, NEXUS_PATHS, PROBE_PATHS } from '../api/v1/routes.ts';
import { ZERO } from '../api/v1/schemas.ts';
import { SpikeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { createPolicyEngine, type PolicyEngine, type TrustRoots } from '../core/policy/engine.ts';
import type { Clock, PolicyStore, RootKeyProvider, Secrets } from '../core/ports.ts';
import type { RestoreStatus, ShardEnvelope } from '../core/shamir/shards.ts';
import {
  clip,
  createAuditTrail,
  createGate,
  isExactPath,
  newState,
  RequestContext,
  type RequestState,
} from './pipeline.ts';
import { CIPHER_ROUTES } from './routes/cipher.ts';
import { OPERATOR_ROUTES } from './routes/operator.ts';
import { POLICY_ROUTES } from './routes/policies.ts';
import type { NexusRoute } from './routes/route.ts';
import { SECRET_ROUTES } from './routes/secrets.ts';
import { WATCH_ROUTES } from './routes/watch.ts';
import type { WatchService } from './watch/stream.ts';

/** Storage backends of `SPIKE_NEXUS_BACKEND_STORE` (docs/spike-api.md §10). */
export type NexusBackend = 'sqlite' | 'memory' | 'lite' | 'postgres';

/** The break-glass operations, provided by the key-custody lifecycle (docs/spike-api.md §9). */
export interface NexusOperator {
  /** The current generation's envelopes, one per share. Throws `state_not_ready` without a key. */
  recover(): Promise<readonly ShardEnvelope[]>;
  /**
   * Adds one operator shard (already parsed). Throws `api_bad_request` for a shard that does not
   * fit the collected set and `crypto_cipher_verification_failed` when the combined key fails its
   * check; `state_already_initialized` if a key appeared meanwhile.
   */
  restore(envelope: ShardEnvelope): Promise<RestoreStatus>;
}

/** What a mounted handler learns about the request it serves. */
export interface MountContext {
  /** The transport's verified peer SPIFFE ID (not yet re-checked per §2); `undefined` if none. */
  readonly peerId: string | undefined;
  /** True while Nexus holds its root key (or runs on the memory backend). */
  readonly ready: boolean;
  /** Sets the audit line's `action` and `resource` (names and paths only, never values). */
  audit(fields: { readonly action?: string; readonly resource?: string }): void;
}

/**
 * Another API served by Nexus under a path prefix (e.g. a Vault-compatible API under
 * `/v1/secret/`): every request whose path starts with `prefix` goes to `handle`, whatever its
 * method, after the probes and before any SPIKE rule. The pipeline writes its audit line.
 */
export interface NexusMount {
  /** A path prefix ending in `/`, e.g. `/v1/secret/`. */
  readonly prefix: string;
  handle(request: Request, context: MountContext): Promise<Response>;
}

/** What the Nexus app needs (docs/style.md rule 4: the narrowest useful surface). */
export interface NexusAppDeps {
  readonly secrets: Secrets;
  readonly policies: PolicyStore;
  readonly keys: RootKeyProvider;
  readonly backend: NexusBackend;
  /** Trust domains per role (`SPIKE_TRUST_ROOT_*`, §1). */
  readonly trustRoots: TrustRoots;
  /** `SPIKE_HTTP_SERVER_MAX_BODY_BYTES` (§12). */
  readonly maxBodyBytes: number;
  /** `SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE` (§8). */
  readonly maxCipherBytes: number;
  /** Receives one audit line per request, without the trailing newline (§12). */
  readonly audit: (line: string) => void;
  /** Wall clock for audit times; defaults to `new Date()`. */
  readonly clock?: Clock;
  /** The verified peer SPIFFE ID of a request, from the transport; `undefined` when none. */
  readonly peerOf: (request: Request) => string | undefined;
  /** Recover and restore (§9); absent until the key-custody lifecycle is wired. */
  readonly operator?: NexusOperator;
  /** A shared policy engine (e.g. one the lifecycle invalidates); default: one over `policies`. */
  readonly policyEngine?: PolicyEngine;
  /** Where unexpected faults are reported (error name and code only, never a message or value). */
  readonly logger?: Logger;
  /**
   * The request target exactly as the client sent it (HTTP/2 `:path`), from the transport. A Web
   * `Request` has removed `.` and `..` segments (and `%2e`) from its URL; with this hook Nexus
   * refuses such a request instead of serving the normalised route. Absent: no raw check.
   */
  readonly rawPathOf?: (request: Request) => string | undefined;
  /** APIs served under path prefixes (see `NexusMount`); checked in order. */
  readonly mounts?: readonly NexusMount[];
  /** Watch streams (docs/spike-api.md "Watch"); absent: the watch route answers 400. */
  readonly watch?: WatchService;
}

/** The app `createNexusApp` returns; `handle(request)` serves one request. */
export interface NexusApp {
  handle(request: Request): Promise<Response>;
}

const ALL_ROUTES: readonly NexusRoute[] = [
  ...SECRET_ROUTES,
  ...POLICY_ROUTES,
  ...CIPHER_ROUTES,
  ...OPERATOR_ROUTES,
  ...WATCH_ROUTES,
];
const ROUTE_TABLE: ReadonlyMap<string, NexusRoute> = new Map(
  ALL_ROUTES.map((route) => [`${route.spec.path}?${route.spec.action}`, route]),
);

/**
 * Creates the Nexus app (docs/spike-api.md §3–§9, §12). See the module header for the processing
 * order, error bodies, audit and mounts.
 */
export function createNexusApp(deps: NexusAppDeps): NexusApp {
  const engine =
    deps.policyEngine ?? createPolicyEngine({ store: deps.policies, trustRoots: deps.trustRoots });
  const mounts = deps.mounts ?? [];
  const ready = () => deps.backend === 'memory' || deps.keys.keys() !== undefined;
  const { finish, fail } = createAuditTrail(deps);
  const check = createGate(deps, engine);

  async function dispatch(request: Request, state: RequestState): Promise<Response> {
    const action = actionOf(state.query);
    if (action === undefined) {
      return fail(
        state,
        ZERO.empty,
        new SpikeError('api_bad_request', 'query keys are exact: use "action"'),
      );
    }
    const route = ROUTE_TABLE.get(`${state.path}?${action}`);
    if (route === undefined) {
      return fail(state, ZERO.empty, new SpikeError('api_bad_request', 'unknown route'));
    }
    const { spec } = route;
    state.route = action === '' ? spec.path : `${spec.path}?action=${action}`;
    state.action = spec.audit;
    try {
      if (deps.backend === 'lite' && spec.lite !== true) {
        throw new SpikeError('api_bad_request', 'route not served by the lite backend');
      }
      if (
        deps.backend === 'memory' &&
        (spec.path === NEXUS_PATHS.recover || spec.path === NEXUS_PATHS.restore)
      ) {
        throw new SpikeError('api_bad_request', 'the memory backend has no shards');
      }
      const response = await route.run(new RequestContext(deps, engine, request, state), (guard) =>
        check(request, state, guard),
      );
      return finish(state, response);
    } catch (error) {
      return fail(state, spec.zero, error);
    }
  }

  async function delegate(mount: NexusMount, request: Request, state: RequestState) {
    try {
      const response = await mount.handle(request, {
        peerId: deps.peerOf(request),
        ready: ready(),
        audit(fields) {
          if (fields.action !== undefined) state.action = clip(fields.action, 64);
          if (fields.resource !== undefined) state.resource = clip(fields.resource, 2048);
        },
      });
      state.caller = deps.peerOf(request) ?? '';
      return finish(state, response);
    } catch (error) {
      return fail(state, ZERO.empty, error);
    }
  }

  async function handle(request: Request): Promise<Response> {
    const state = newState(request);
    if (request.method === 'GET') {
      if (state.path === PROBE_PATHS.health || state.path === PROBE_PATHS.ready) {
        return probeResponse(state.path, ready());
      }
    }
    if (!isExactPath(deps, request, state.path)) {
      return fail(
        state,
        ZERO.empty,
        new SpikeError('api_bad_request', 'paths are exact: no "." or ".." segments'),
      );
    }
    for (const mount of mounts) {
      if (state.path.startsWith(mount.prefix)) return delegate(mount, request, state);
    }
    if (request.method !== 'POST') {
      return fail(state, ZERO.empty, new SpikeError('api_bad_request', 'method not allowed'));
    }
    if (!ready() && state.path !== NEXUS_PATHS.recover && state.path !== NEXUS_PATHS.restore) {
      return fail(state, ZERO.empty, new SpikeError('state_not_ready', 'no root key yet'));
    }
    return dispatch(request, state);
  }

  return { handle };
}
