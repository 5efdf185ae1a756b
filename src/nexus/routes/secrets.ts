/**
 * The secret routes of Nexus (docs/spike-api.md §4 "Secrets", §6 semantics): put, get, delete,
 * undelete, destroy, purge, list and metadata. Each is guarded by a policy permission on the
 * requested path (§7; list on the list pseudo-path), then validates the path (§5) and runs.
 */
import { jsonResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { formatGoTime } from '../../core/log.ts';
import { SECRET_LIST_PATH } from '../../core/policy/engine.ts';
import { validateValueKeys } from '../../core/policy/validate.ts';
import type { SecretMetadata } from '../../core/ports.ts';
import { defineRoute, type NexusRoute } from './route.ts';

const ok = () => jsonResponse(200, {});

function timeOrNull(time: Date | null): string | null {
  return time === null ? null : formatGoTime(time);
}

/** The metadata 200 body (§4 "Metadata 200 body"); `versions` only when there are any. */
function metadataBody(meta: SecretMetadata): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (meta.versions.length > 0) {
    const versions: Record<string, unknown> = {};
    for (const v of meta.versions) {
      versions[String(v.version)] = {
        createdTime: formatGoTime(v.createdTime),
        version: v.version,
        deletedTime: timeOrNull(v.deletedTime),
      };
    }
    body.versions = versions;
  }
  body.metadata = {
    currentVersion: meta.currentVersion,
    oldestVersion: meta.oldestVersion,
    createdTime: formatGoTime(meta.createdTime),
    updatedTime: formatGoTime(meta.updatedTime),
    maxVersions: meta.maxVersions,
  };
  return body;
}

const versionRoutes = (['delete', 'undelete', 'destroy'] as const).map((action) =>
  defineRoute({
    spec: {
      delete: NEXUS_ROUTES.secretDelete,
      undelete: NEXUS_ROUTES.secretUndelete,
      destroy: NEXUS_ROUTES.secretDestroy,
    }[action],
    decode: (ctx) => ctx.json(REQUEST.secretVersions),
    guard: (req) => ({ path: req.path, permission: 'write' }),
    async handle(ctx, req) {
      await ctx.deps.secrets[action](ctx.secretPath(req.path), req.versions ?? []);
      return ok();
    },
  }),
);

/** The secret routes. */
export const SECRET_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.secretPut,
    decode: (ctx) => ctx.json(REQUEST.secretPut),
    guard: (req) => ({ path: req.path, permission: 'write' }),
    async handle(ctx, req) {
      const path = ctx.secretPath(req.path);
      const values = req.values ?? {};
      validateValueKeys(values);
      await ctx.deps.secrets.put(path, values);
      return ok();
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.secretGet,
    decode: (ctx) => ctx.json(REQUEST.secretGet),
    guard: (req) => ({ path: req.path, permission: 'read' }),
    async handle(ctx, req) {
      const path = ctx.secretPath(req.path);
      // `ifNewerThan` 0 (or absent) asks nothing: every version is ≥ 1.
      const since = req.ifNewerThan > 0 ? req.ifNewerThan : undefined;
      const read = await ctx.deps.secrets.getVersioned(path, req.version, since);
      if (read.data === undefined) {
        return jsonResponse(200, { notModified: true, version: read.version });
      }
      return jsonResponse(200, { data: read.data, version: read.version });
    },
  }),
  ...versionRoutes,
  defineRoute({
    spec: NEXUS_ROUTES.secretPurge,
    decode: (ctx) => ctx.json(REQUEST.secretPath),
    guard: (req) => ({ path: req.path, permission: 'write' }),
    async handle(ctx, req) {
      await ctx.deps.secrets.purge(ctx.secretPath(req.path));
      return ok();
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.secretList,
    decode: (ctx) => ctx.json(REQUEST.none),
    guard: () => ({ path: SECRET_LIST_PATH, permission: 'list' }),
    async handle(ctx) {
      const keys = await ctx.deps.secrets.list();
      return jsonResponse(200, { keys: [...keys] });
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.secretMetadata,
    decode: (ctx) => ctx.json(REQUEST.secretGet),
    guard: (req) => ({ path: req.path, permission: 'read' }),
    async handle(ctx, req) {
      const meta = await ctx.deps.secrets.metadata(ctx.secretPath(req.path), req.version);
      return jsonResponse(200, metadataBody(meta));
    },
  }),
];
