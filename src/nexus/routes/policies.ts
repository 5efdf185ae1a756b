/**
 * The policy routes of Nexus (docs/spike-api.md §4 "Policies", §7): put (upsert by name), get,
 * delete and list, each guarded by a permission on the ACL pseudo-path.
 */
import { jsonResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES, type RouteSpec } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { formatGoTime } from '../../core/log.ts';
import { anchoringWarning } from '../../core/policy/anchored.ts';
import { ACL_PATH } from '../../core/policy/engine.ts';
import { type Permission, validateName, validatePolicyInput } from '../../core/policy/validate.ts';
import type { Policy } from '../../core/ports.ts';
import { defineRoute, type NexusRoute, type RouteContext } from './route.ts';

/** The policy 200 body (§4 "Policy object"). */
function policyBody(policy: Policy): Record<string, unknown> {
  return {
    id: '',
    name: policy.name,
    // Upstream's response key, typo included (§4 "Policy object").
    spiffiedPattern: policy.spiffeIdPattern,
    pathPattern: policy.pathPattern,
    permissions: [...policy.permissions],
    createdAt: formatGoTime(policy.createdAt),
    updatedAt: formatGoTime(policy.updatedAt),
  };
}

/**
 * A route on one policy named by the request's `id` (get, delete): `permission` on the ACL
 * path, the name validated and audited, a 200 with the body `run` builds.
 */
function byNameRoute(
  spec: RouteSpec,
  permission: Permission,
  run: (ctx: RouteContext, name: string) => Promise<Record<string, unknown>>,
): NexusRoute {
  return defineRoute({
    spec,
    decode: (ctx) => ctx.json(REQUEST.policyId),
    guard: () => ({ path: ACL_PATH, permission }),
    async handle(ctx, req) {
      ctx.setResource(validateName(req.id, 'id'));
      return jsonResponse(200, await run(ctx, req.id));
    },
  });
}

/** The policy routes. */
export const POLICY_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.policyPut,
    decode: (ctx) => ctx.json(REQUEST.policyPut),
    guard: () => ({ path: ACL_PATH, permission: 'write' }),
    async handle(ctx, req) {
      const input = validatePolicyInput({
        name: req.name,
        spiffeIdPattern: req.spiffeidPattern,
        pathPattern: req.pathPattern,
        permissions: req.permissions,
      });
      ctx.setResource(input.name);
      await ctx.engine.upsert(input);
      // Stored as asked; an unanchored pattern only earns a warning (§7 "Anchoring").
      const warning = anchoringWarning(input);
      return jsonResponse(200, warning === undefined ? {} : { warning });
    },
  }),
  byNameRoute(NEXUS_ROUTES.policyGet, 'read', async (ctx, name) =>
    policyBody(await ctx.deps.policies.get(name)),
  ),
  byNameRoute(NEXUS_ROUTES.policyDelete, 'write', async (ctx, name) => {
    await ctx.engine.delete(name);
    return {};
  }),
  defineRoute({
    spec: NEXUS_ROUTES.policyList,
    decode: (ctx) => ctx.json(REQUEST.policyList),
    guard: () => ({ path: ACL_PATH, permission: 'list' }),
    async handle(ctx, req) {
      let all = await ctx.deps.policies.list();
      // A non-empty SPIFFE filter wins over the path filter; both compare exactly (§4).
      if (req.spiffeidPattern !== '') {
        all = all.filter((p) => p.spiffeIdPattern === req.spiffeidPattern);
      } else if (req.pathPattern !== '') {
        all = all.filter((p) => p.pathPattern === req.pathPattern);
      }
      const policies = all
        .map((p) => ({ id: '', name: p.name }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return jsonResponse(200, { policies });
    },
  }),
];
