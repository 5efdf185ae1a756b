/**
 * The secret-engine routes of the Vault KV v2 API (docs/vault-kv2.md §3, §6): config, data,
 * delete/undelete/destroy, subkeys, metadata and list, over the shared store's Vault view.
 *
 * Each route authorises (§6 table) before it reads the body, so a denied caller learns nothing
 * from body errors; path rules (§3 "Path rules") come first, as they decide the policy path.
 */
import {
  formatGoDurationSeconds,
  invalidPathWarning,
  type KvOperation,
  listChildren,
  VAULT_ERRORS,
  VAULT_WARNINGS,
  type VaultCliVerb,
} from '../../api/vault/index.ts';
import { SpikeError } from '../../core/errors.ts';
import { type PolicyEngine, SECRET_LIST_PATH } from '../../core/policy/engine.ts';
import { isValidSecretPath, type Permission } from '../../core/policy/validate.ts';
import type { KvRead, VaultKv } from '../store/vault-kv.ts';
import {
  casOf,
  dataOf,
  type JsonObject,
  metadataInputOf,
  queryInt,
  readJsonBody,
  settingsOf,
  versionsOf,
} from './request.ts';
import {
  envelopeResponse,
  errorResponse,
  metadataData,
  noContent,
  subkeysOf,
  versionMetadata,
} from './responses.ts';

/** What the routes need. */
export interface KvRouteDeps {
  readonly kv: VaultKv;
  readonly engine: PolicyEngine;
  readonly maxBodyBytes: number;
}

/** One request as the routes see it; `action` and `resource` feed the audit line. */
export interface VaultCtx {
  readonly request: Request;
  /** Upper-case method; `LIST` and GET `?list=true` already folded into `list`. */
  readonly method: string;
  readonly query: URLSearchParams;
  readonly peer: string;
  action: string;
  resource?: string;
}

function denied(): SpikeError {
  return new SpikeError('access_unauthorized', VAULT_ERRORS.permissionDenied);
}

async function authorize(deps: KvRouteDeps, ctx: VaultCtx, path: string, p: Permission) {
  if (!(await deps.engine.checkAccess(ctx.peer, path, [p]))) throw denied();
}

function body(deps: KvRouteDeps, ctx: VaultCtx): Promise<JsonObject> {
  return readJsonBody(ctx.request, deps.maxBodyBytes);
}

function cliVerb(method: string, list: boolean): VaultCliVerb {
  if (list) return 'list';
  if (method === 'GET') return 'get';
  if (method === 'PATCH') return 'patch';
  if (method === 'DELETE') return 'delete';
  return 'put';
}

/** 404 with the invalid-path warning of §3 and `data: null`. */
export function invalidPath(method: string, list: boolean): Response {
  return envelopeResponse(null, {
    status: 404,
    warnings: [invalidPathWarning(cliVerb(method, list))],
  });
}

const unsupported = () => errorResponse(405, VAULT_ERRORS.unsupportedOperation);
const notFound = () => errorResponse(404);

/** `secret/config` (§3): read or write the mount configuration; `super` on spike/system/secret. */
export async function serveConfig(deps: KvRouteDeps, ctx: VaultCtx, list: boolean) {
  const write = ctx.method === 'POST' || ctx.method === 'PUT';
  if (list || (!write && ctx.method !== 'GET')) return unsupported();
  ctx.action = write ? 'write_config' : 'read_config';
  await authorize(deps, ctx, SECRET_LIST_PATH, 'super');
  if (!write) {
    const c = deps.kv.config();
    return envelopeResponse({
      cas_required: c.casRequired,
      delete_version_after: formatGoDurationSeconds(c.deleteVersionAfterMs),
      max_versions: c.maxVersions,
    });
  }
  await deps.kv.configure(settingsOf(await body(deps, ctx)));
  return noContent();
}

/** The secret path of a non-list request, or 400 (§3 "Path rules"). */
function secretPath(ctx: VaultCtx, path: string): string {
  if (!isValidSecretPath(path) || path.endsWith('/')) {
    throw new SpikeError('api_bad_request', VAULT_ERRORS.invalidPath);
  }
  ctx.resource = path;
  return path;
}

/** Routes `/v1/<mount>/<op>/<path>` (§3). `path` undefined = bad percent-encoding. */
export async function serveKv(
  deps: KvRouteDeps,
  ctx: VaultCtx,
  op: KvOperation,
  path: string | undefined,
  list: boolean,
): Promise<Response> {
  if (list) return op === 'metadata' ? serveList(deps, ctx, path) : unsupported();
  if (path === '') return envelopeResponse(null, { status: 404, warnings: [VAULT_WARNINGS.root] });
  if (path === undefined) throw new SpikeError('api_bad_request', VAULT_ERRORS.invalidPath);
  const m = ctx.method;
  switch (op) {
    case 'data':
      if (m === 'GET') return readData(deps, ctx, secretPath(ctx, path));
      if (m === 'POST' || m === 'PUT' || m === 'PATCH') {
        return writeData(deps, ctx, secretPath(ctx, path), m === 'PATCH');
      }
      if (m === 'DELETE') return deleteLatest(deps, ctx, secretPath(ctx, path));
      return unsupported();
    case 'delete':
    case 'undelete':
    case 'destroy':
      if (m !== 'POST' && m !== 'PUT') return unsupported();
      return versionOp(deps, ctx, op, secretPath(ctx, path));
    case 'subkeys':
      return m === 'GET' ? readSubkeys(deps, ctx, secretPath(ctx, path)) : unsupported();
    case 'metadata':
      return serveMetadata(deps, ctx, secretPath(ctx, path));
  }
}

/** A version that is deleted or destroyed: 404 with the full envelope (§3 Read version). */
function goneResponse(read: KvRead, key: 'data' | 'subkeys'): Response {
  const v = read.version;
  if (v === undefined) return notFound();
  return envelopeResponse(
    { [key]: null, metadata: versionMetadata(v, read.meta) },
    { status: 404 },
  );
}

async function readData(deps: KvRouteDeps, ctx: VaultCtx, path: string) {
  ctx.action = 'read';
  await authorize(deps, ctx, path, 'read');
  const read = await deps.kv.read(path, queryInt(ctx.query, 'version'));
  if (read?.version === undefined) return notFound();
  if (read.data === null) return goneResponse(read, 'data');
  return envelopeResponse({ data: read.data, metadata: versionMetadata(read.version, read.meta) });
}

async function readSubkeys(deps: KvRouteDeps, ctx: VaultCtx, path: string) {
  ctx.action = 'read_subkeys';
  await authorize(deps, ctx, path, 'read');
  const version = queryInt(ctx.query, 'version');
  const depth = queryInt(ctx.query, 'depth');
  const read = await deps.kv.read(path, version);
  if (read?.version === undefined) return notFound();
  if (read.data === null) return goneResponse(read, 'subkeys');
  return envelopeResponse({
    subkeys: subkeysOf(read.data, depth),
    metadata: versionMetadata(read.version, read.meta),
  });
}

/** Write (POST/PUT, action `create`) or patch (PATCH) the data: `{data, options.cas}` (§3). */
async function writeData(deps: KvRouteDeps, ctx: VaultCtx, path: string, patch: boolean) {
  ctx.action = patch ? 'patch' : 'create';
  await authorize(deps, ctx, path, 'write');
  const req = await body(deps, ctx);
  const data = dataOf(req);
  const r = patch
    ? await deps.kv.patch(path, data, casOf(req))
    : { kind: 'written' as const, ...(await deps.kv.write(path, data, casOf(req))) };
  if (r.kind === 'absent') return notFound();
  if (r.kind === 'gone') return goneResponse(r.read, 'data');
  return envelopeResponse(versionMetadata(r.version, r.meta));
}

async function deleteLatest(deps: KvRouteDeps, ctx: VaultCtx, path: string) {
  ctx.action = 'delete';
  await authorize(deps, ctx, path, 'write');
  await deps.kv.deleteLatest(path);
  return noContent();
}

async function versionOp(
  deps: KvRouteDeps,
  ctx: VaultCtx,
  op: 'delete' | 'undelete' | 'destroy',
  path: string,
) {
  ctx.action = op;
  await authorize(deps, ctx, path, 'write');
  const missing = op === 'destroy' ? VAULT_ERRORS.noVersionDestroy : VAULT_ERRORS.noVersion;
  const versions = versionsOf(await body(deps, ctx), missing);
  if (op === 'delete') await deps.kv.deleteVersions(path, versions);
  else if (op === 'undelete') await deps.kv.undelete(path, versions);
  else await deps.kv.destroy(path, versions);
  return noContent();
}

async function serveMetadata(deps: KvRouteDeps, ctx: VaultCtx, path: string) {
  const m = ctx.method;
  if (m === 'GET') {
    ctx.action = 'read_metadata';
    await authorize(deps, ctx, path, 'read');
    const meta = await deps.kv.metadata(path);
    return meta === undefined ? notFound() : envelopeResponse(metadataData(meta));
  }
  if (m === 'DELETE') {
    ctx.action = 'delete_metadata';
    await authorize(deps, ctx, path, 'write');
    await deps.kv.deleteMetadata(path);
    return noContent();
  }
  if (m !== 'POST' && m !== 'PUT' && m !== 'PATCH') return unsupported();
  const patch = m === 'PATCH';
  ctx.action = patch ? 'patch_metadata' : 'write_metadata';
  await authorize(deps, ctx, path, 'write');
  const input = metadataInputOf(await body(deps, ctx), patch);
  const r = await deps.kv.writeMetadata(path, input, patch ? 'patch' : 'write');
  if (!r.found) return notFound();
  return r.warnings.length === 0 ? noContent() : envelopeResponse(null, { warnings: r.warnings });
}

/** List (§3): immediate children of a folder; 404 `{"errors":[]}` when there are none. */
async function serveList(deps: KvRouteDeps, ctx: VaultCtx, path: string | undefined) {
  ctx.action = 'list';
  if (path === undefined) throw new SpikeError('api_bad_request', VAULT_ERRORS.invalidPath);
  const bare = path.endsWith('/') ? path.slice(0, -1) : path;
  if (bare !== '' && (!isValidSecretPath(bare) || bare.endsWith('/'))) {
    throw new SpikeError('api_bad_request', VAULT_ERRORS.invalidPath);
  }
  const folder = bare === '' ? '' : `${bare}/`;
  ctx.resource = folder;
  const allowed =
    (await deps.engine.checkAccess(ctx.peer, folder, ['list'])) ||
    (await deps.engine.checkAccess(ctx.peer, SECRET_LIST_PATH, ['list']));
  if (!allowed) throw denied();
  const keys = listChildren(await deps.kv.list(), folder);
  return keys.length === 0 ? notFound() : envelopeResponse({ keys });
}
