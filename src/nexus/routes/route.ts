/**
 * What a Nexus route module provides and what the pipeline (src/nexus/app.ts) gives it.
 *
 * A route is three steps the pipeline runs in the order of docs/spike-api.md §3: `decode` reads the
 * request (body under the cap, Go JSON; §3 step 5), `guard` names the check the caller must pass
 * (a policy permission on a path, §7, or a role, §1; §3 step 6), and `handle` validates and
 * executes (§3 steps 7 and 8). The pipeline resolves the caller's identity for the guard, writes
 * the audit line and turns thrown `SpikeError`s into the route's zero-valued error body. Routes
 * never build an error response and never see a status table.
 */
import type { RouteSpec } from '../../api/v1/routes.ts';
import type { GoJsonResult, GoJsonSchema } from '../../core/http/go-json.ts';
import type { PolicyEngine } from '../../core/policy/engine.ts';
import type { Permission } from '../../core/policy/validate.ts';
import type { DerivedKeys } from '../../core/ports.ts';
import type { SpikeRole } from '../../core/spike/roles.ts';
import type { NexusAppDeps } from '../app.ts';

/** The check a caller must pass before `handle` runs. */
export type Guard =
  | { readonly path: string; readonly permission: Permission }
  | { readonly role: SpikeRole }
  /** A permission on some path (watch: its events are then checked one by one). */
  | { readonly somewhere: Permission };

/** What a route sees of the request it serves. */
export interface RouteContext {
  readonly request: Request;
  readonly deps: NexusAppDeps;
  readonly engine: PolicyEngine;
  /** The raw body, at most `SPIKE_HTTP_SERVER_MAX_BODY_BYTES` (§12). */
  body(): Promise<Uint8Array>;
  /** The body decoded as the Go struct `schema` (§3 "Request JSON"). */
  json<S extends GoJsonSchema>(schema: S): Promise<GoJsonResult<S>>;
  /** The derived keys, or `state_not_ready`. */
  keys(): DerivedKeys;
  /** Validates a secret path (§5) and records it as the audited resource. */
  secretPath(path: string): string;
  /** Records the audited resource (a validated name or path, never a value). */
  setResource(resource: string): void;
  /** Records the error code of an answer the route built itself (stream-mode decrypt, §8). */
  setAuditError(code: string): void;
}

/** A route as the pipeline runs it. */
export interface NexusRoute {
  readonly spec: RouteSpec;
  run(ctx: RouteContext, check: (guard: Guard) => Promise<void>): Promise<Response>;
}

/** The three steps of a route, typed by what `decode` gives. */
export interface RouteSteps<R> {
  readonly spec: RouteSpec;
  decode(ctx: RouteContext): Promise<R>;
  guard(request: R): Guard;
  handle(ctx: RouteContext, request: R): Promise<Response>;
}

/** Turns the three steps into a pipeline route: decode → guard → handle. */
export function defineRoute<R>(steps: RouteSteps<R>): NexusRoute {
  return {
    spec: steps.spec,
    async run(ctx, check) {
      const request = await steps.decode(ctx);
      await check(steps.guard(request));
      return steps.handle(ctx, request);
    },
  };
}
