/**
 * The routes of the SPIKE v1 API (docs/spike-api.md §4, §8, §9, §12): every path and `action` Nexus
 * and the Keeper serve, with the request struct each decodes, the zero-valued body its errors
 * carry and the response schema of its 200 answer. Servers dispatch on this table and clients
 * build their URLs from it, so a route string is spelled here only.
 *
 * A route is its exact path plus the first `action` query value (absent = `""`); a trailing `/`
 * is another path. Every route is `POST` except the probes (`GET /health`, `GET /ready`).
 *
 * Portable: no runtime APIs.
 */
import type { TObject } from '@sinclair/typebox';
import {
  DecryptResponse,
  EmptyResponse,
  EncryptResponse,
  MetadataResponse,
  PolicyGetResponse,
  PolicyListResponse,
  PolicyPutResponse,
  type RequestName,
  RestoreResponse,
  SecretGetResponse,
  SecretListResponse,
  ShardsResponse,
  VerifyResponse,
  ZERO,
  type ZeroBody,
} from './schemas.ts';

/** The probe paths (§12), `GET` on Nexus and the Keeper. */
export const PROBE_PATHS = Object.freeze({ health: '/health', ready: '/ready' } as const);

/** The `POST` paths of Nexus (§4, §8, §9). */
export const NEXUS_PATHS = Object.freeze({
  secrets: '/v1/store/secrets',
  secretMetadata: '/v1/store/secrets/metadata',
  policy: '/v1/acl/policy',
  encrypt: '/v1/cipher/encrypt',
  decrypt: '/v1/cipher/decrypt',
  recover: '/v1/operator/recover',
  restore: '/v1/operator/restore',
  verify: '/v1/bootstrap/verify',
  watch: '/v1/store/watch',
} as const);

/** The `POST` paths of a Keeper (§9 "Keeper routes"). */
export const KEEPER_PATHS = Object.freeze({
  contribute: '/v1/store/contribute',
  shard: '/v1/store/shard',
} as const);

/** One route of the table. */
export interface RouteSpec {
  readonly path: string;
  /** The `action` query value; `''` = absent. */
  readonly action: string;
  /** The audit `action` name (§12). */
  readonly audit: string;
  /** The request struct decoded from a JSON body. */
  readonly request: RequestName;
  /** The body of an error answer, before `err` (§4). */
  readonly zero: Readonly<ZeroBody>;
  /** The 200 answer's shape (JSON mode). */
  readonly response: TObject;
  /** Served by the lite backend (§4 "Backends"). */
  readonly lite?: boolean;
}

function route(
  path: string,
  action: string,
  audit: string,
  request: RequestName,
  zero: Readonly<ZeroBody>,
  response: TObject,
  lite = false,
): RouteSpec {
  return Object.freeze({ path, action, audit, request, zero, response, ...(lite ? { lite } : {}) });
}

const P = NEXUS_PATHS;

/** Every Nexus route (§4, §8, §9). */
export const NEXUS_ROUTES = Object.freeze({
  secretPut: route(P.secrets, '', 'create', 'secretPut', ZERO.empty, EmptyResponse),
  secretGet: route(P.secrets, 'get', 'read', 'secretGet', ZERO.secretGet, SecretGetResponse),
  secretDelete: route(P.secrets, 'delete', 'delete', 'secretVersions', ZERO.empty, EmptyResponse),
  secretUndelete: route(
    P.secrets,
    'undelete',
    'undelete',
    'secretVersions',
    ZERO.empty,
    EmptyResponse,
  ),
  secretDestroy: route(
    P.secrets,
    'destroy',
    'destroy',
    'secretVersions',
    ZERO.empty,
    EmptyResponse,
  ),
  secretPurge: route(P.secrets, 'purge', 'purge', 'secretPath', ZERO.empty, EmptyResponse),
  secretList: route(P.secrets, 'list', 'list', 'none', ZERO.secretList, SecretListResponse),
  secretMetadata: route(
    P.secretMetadata,
    'get',
    'read_metadata',
    'secretGet',
    ZERO.metadata,
    MetadataResponse,
  ),
  // [Ours, docs/spike-api.md "Watch"]: a Server-Sent Events stream, not a JSON answer.
  watch: route(P.watch, '', 'watch', 'watch', ZERO.empty, EmptyResponse),
  policyPut: route(P.policy, '', 'create', 'policyPut', ZERO.empty, PolicyPutResponse),
  policyGet: route(P.policy, 'get', 'read', 'policyId', ZERO.policyGet, PolicyGetResponse),
  policyDelete: route(P.policy, 'delete', 'delete', 'policyId', ZERO.empty, EmptyResponse),
  policyList: route(P.policy, 'list', 'list', 'policyList', ZERO.policyList, PolicyListResponse),
  encrypt: route(P.encrypt, '', 'encrypt', 'encrypt', ZERO.encrypt, EncryptResponse, true),
  decrypt: route(P.decrypt, '', 'decrypt', 'decrypt', ZERO.decrypt, DecryptResponse, true),
  recover: route(P.recover, '', 'recover', 'none', ZERO.shards, ShardsResponse, true),
  restore: route(P.restore, '', 'restore', 'envelope', ZERO.restore, RestoreResponse, true),
  verify: route(P.verify, '', 'verify', 'verify', ZERO.verify, VerifyResponse, true),
});

/** Every Keeper route (§9 "Keeper routes"). */
export const KEEPER_ROUTES = Object.freeze({
  contribute: route(
    KEEPER_PATHS.contribute,
    '',
    'contribute',
    'envelope',
    ZERO.empty,
    EmptyResponse,
  ),
  shard: route(KEEPER_PATHS.shard, '', 'shard', 'none', ZERO.shards, ShardsResponse),
});

/** The request target of a route: its path, plus `?action=` when it has one. */
export function routeTarget(spec: RouteSpec): string {
  return spec.action === '' ? spec.path : `${spec.path}?action=${spec.action}`;
}

/**
 * The `action` of a request: the first `action` query value (absent = `''`), or `undefined` when
 * a query key spells `action` in another case (`?ACTION=get`): a request means exactly what it
 * says, so a mis-cased key is refused rather than read as "no action" (which would be a write).
 */
export function actionOf(query: URLSearchParams): string | undefined {
  for (const key of query.keys()) {
    if (key !== 'action' && key.toLowerCase() === 'action') return undefined;
  }
  return query.get('action') ?? '';
}

/**
 * The rule a secret path breaks beyond the character rules of §5, or `undefined`: a secret path is
 * a `/`-separated list of names, so no leading or trailing `/`, and no empty, `.` or `..`
 * segment (they would name the same secret in two spellings).
 */
export function secretPathRule(path: string): string | undefined {
  if (path.startsWith('/') || path.endsWith('/')) {
    return 'path must not start or end with "/"';
  }
  for (const segment of path.split('/')) {
    if (segment === '') return 'path must not contain an empty segment ("//")';
    if (segment === '.' || segment === '..') {
      return 'path must not contain a "." or ".." segment';
    }
  }
  return undefined;
}
