/**
 * The steps of the Nexus pipeline (src/nexus/app.ts): per-request state, the audit trail (docs/spike-api.md §12),
 * the identity and authorisation gate (§1, §2, §7) and the context a route sees
 * (./routes/route.ts). Nothing here knows a route; app.ts puts the steps in order.
 */
import { errorResponse } from '../api/v1/http.ts';
import { secretPathRule } from '../api/v1/routes.ts';
import { isSpikeError, SpikeError, type SpikeErrorCode } from '../core/errors.ts';
import { readBodyCapped } from '../core/http/body.ts';
import { decodeGoJson, type GoJsonSchema } from '../core/http/go-json.ts';
import { type AuditOutcome, formatAuditLine } from '../core/log.ts';
import type { PolicyEngine } from '../core/policy/engine.ts';
import { isValidSecretPath, validateSecretPath } from '../core/policy/validate.ts';
import type { DerivedKeys } from '../core/ports.ts';
import { isSpiffeId } from '../core/spiffe/id.ts';
import { hasRole, isWirePeerId } from '../core/spike/roles.ts';
import type { NexusAppDeps } from './app.ts';
import type { Guard, RouteContext } from './routes/route.ts';

/** Per-request audit state. */
export interface RequestState {
  readonly start: number;
  readonly trail: string;
  readonly path: string;
  readonly query: URLSearchParams;
  caller: string;
  route: string;
  action: string;
  resource?: string;
  err?: string;
}

/** Peer IDs whose §2 re-check is remembered; past this the memo starts over (bounded RAM). */
const MAX_CHECKED_PEERS = 4096;

function unauthorized(): SpikeError {
  return new SpikeError('access_unauthorized', 'access denied');
}

function outcomeOf(status: number): AuditOutcome {
  if (status === 200) return 'allowed';
  if (status === 401) return 'denied';
  return 'error';
}

/**
 * A random trail id: 32 lowercase hex digits, from a random (version 4) UUID without its dashes
 * (122 random bits; the runtime batches its randomness, so this is far cheaper per request than
 * `getRandomValues` plus hex encoding).
 */
function randomTrail(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

/** Keeps audit fields bounded: they come from the client. */
export function clip(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}

/** A well-formed secret path (§5 characters and length, and the segment rules). */
function isWellFormedPath(path: string): boolean {
  return isValidSecretPath(path) && secretPathRule(path) === undefined;
}

/** False when the transport's raw target has a path other than the (normalised) parsed one. */
export function isExactPath(deps: NexusAppDeps, request: Request, path: string): boolean {
  const raw = deps.rawPathOf?.(request);
  if (raw === undefined) return true;
  const end = raw.indexOf('?');
  return (end === -1 ? raw : raw.slice(0, end)) === path;
}

export function newState(request: Request): RequestState {
  let path = '';
  let query: URLSearchParams;
  try {
    const url = new URL(request.url);
    path = url.pathname;
    query = url.searchParams;
  } catch {
    query = new URLSearchParams(); // an unparsable URL matches no route
  }
  return {
    start: performance.now(),
    trail: randomTrail(),
    path,
    query,
    caller: '',
    route: clip(path, 512),
    action: 'unknown',
  };
}

/** The audit step of the pipeline: one line per answered request (§12). */
export interface AuditTrail {
  /** Writes the audit line of `response` and returns it. */
  finish(state: RequestState, response: Response): Response;
  /** The error answer for `error` with the route's zero-valued body, audited. */
  fail(state: RequestState, zero: Readonly<Record<string, unknown>>, error: unknown): Response;
}

export function createAuditTrail(deps: NexusAppDeps): AuditTrail {
  const clock = deps.clock ?? (() => new Date());

  function finish(state: RequestState, response: Response): Response {
    try {
      deps.audit(
        formatAuditLine({
          time: clock(),
          component: 'nexus',
          trail: state.trail,
          caller: clip(state.caller, 2048),
          route: state.route,
          action: state.action,
          resource: state.resource,
          outcome: outcomeOf(response.status),
          status: response.status,
          err: state.err,
          durationMs: performance.now() - state.start,
        }),
      );
    } catch {
      // A failing audit sink must not turn an answer into a crash; the transport logs sink errors.
    }
    return response;
  }

  function fail(state: RequestState, zero: Readonly<Record<string, unknown>>, error: unknown) {
    let code: SpikeErrorCode | undefined;
    if (isSpikeError(error)) {
      code = error.code;
    } else {
      deps.logger?.error('unexpected fault while serving a request', {
        trail: state.trail,
        error: error instanceof Error ? error.name : typeof error,
      });
    }
    // The rule a 400 broke travels in its own header (src/api/v1/http.ts `REASON_HEADER`).
    const reason = isSpikeError(error) ? error.message : undefined;
    const { response, err } = errorResponse(code ?? 'api_internal_error', zero, reason);
    if (response.status === 500 && code !== undefined && code !== 'crypto_decryption_failed') {
      deps.logger?.error('request failed', { trail: state.trail, code });
    }
    state.err = err;
    return finish(state, response);
  }

  return { finish, fail };
}

/** The identity and authorisation steps: the caller's §2 re-checked ID, then the route's guard. */
export function createGate(
  deps: NexusAppDeps,
  engine: PolicyEngine,
): (request: Request, state: RequestState, guard: Guard) => Promise<void> {
  // Peer IDs that passed the §2 re-check. A workload's ID is fixed, so the check runs once per
  // ID rather than once per request; bounded, it starts over when full.
  const checkedPeers = new Set<string>();

  /** The §2 re-checked peer ID, or 401. */
  function identify(request: Request, state: RequestState): string {
    const id = deps.peerOf(request);
    if (typeof id !== 'string') throw unauthorized();
    state.caller = id;
    if (!checkedPeers.has(id)) {
      if (!isWirePeerId(id) || !isSpiffeId(id)) throw unauthorized();
      if (checkedPeers.size >= MAX_CHECKED_PEERS) checkedPeers.clear();
      checkedPeers.add(id);
    }
    return id;
  }

  /** Identity, then the route's role or policy check (§1, §7). */
  return async function check(request, state, guard) {
    const id = identify(request, state);
    if ('role' in guard) {
      if (!hasRole(id, guard.role, deps.trustRoots[guard.role])) throw unauthorized();
      return;
    }
    if ('somewhere' in guard) {
      if (!(await engine.grantsSomewhere(id, guard.somewhere))) throw unauthorized();
      return;
    }
    if (!(await engine.checkAccess(id, guard.path, [guard.permission]))) {
      // Auditors need to see which path was refused; record it when it is a well-formed path
      // (never arbitrary input), although validation proper comes after authorisation (§3).
      if (state.resource === undefined && isWellFormedPath(guard.path)) {
        state.resource = guard.path;
      }
      throw unauthorized();
    }
  };
}

/**
 * What a route sees of its request (./routes/route.ts). A class, so that serving a request
 * allocates one object rather than a closure per method.
 */
export class RequestContext implements RouteContext {
  readonly deps: NexusAppDeps;
  readonly engine: PolicyEngine;
  readonly request: Request;
  readonly #state: RequestState;

  constructor(deps: NexusAppDeps, engine: PolicyEngine, request: Request, state: RequestState) {
    this.deps = deps;
    this.engine = engine;
    this.request = request;
    this.#state = state;
  }

  body(): Promise<Uint8Array> {
    return readBodyCapped(this.request, this.deps.maxBodyBytes);
  }

  async json<S extends GoJsonSchema>(schema: S) {
    return decodeGoJson(await this.body(), schema);
  }

  keys(): DerivedKeys {
    const keys = this.deps.keys.keys();
    if (keys === undefined) throw new SpikeError('state_not_ready', 'no root key yet');
    return keys;
  }

  secretPath(path: string): string {
    validateSecretPath(path);
    const rule = secretPathRule(path);
    if (rule !== undefined) throw new SpikeError('api_bad_request', rule);
    this.#state.resource = path;
    return path;
  }

  setResource(resource: string): void {
    this.#state.resource = resource;
  }

  setAuditError(code: string): void {
    this.#state.err = code;
  }
}
