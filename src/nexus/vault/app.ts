/**
 * The Vault KV v2 API of Nexus (docs/vault-kv2.md): `createVaultApp(deps)` returns a handler for
 * every request under `/v1/<mount>/`, `/v1/sys/` and `/v1/auth/`; the Nexus pipeline delegates
 * those paths to it with the transport's verified peer SPIFFE ID.
 *
 * Processing order (the first failing step answers):
 * 1. method not GET, LIST, POST, PUT, PATCH or DELETE → 405 `{"errors":[]}`;
 * 2. `sys/health`, `sys/seal-status` (§5; not audited: probes);
 * 3. no root key → 503 `Vault is sealed`;
 * 4. `X-Vault-Wrap-TTL` → 400; `?list=` not a Go bool → 400 `{"errors":[]}`;
 * 5. no verified peer, or one failing the docs/spike-api.md §2 re-check → 403;
 * 6. PATCH without `application/merge-patch+json` → 415;
 * 7. the route (./kv-routes.ts, ./system.ts): path rules, authorisation (§6), body, execution.
 *
 * Token headers are never read: identity is the certificate only (§6). Errors are mapped in one
 * place (`failure`): `api_bad_request` → 400 with the message (always a fixed Vault string),
 * `access_unauthorized` → 403, `api_not_found` → 404, `state_not_ready` → 503, anything else →
 * 500 `internal error` (reported by name only). One audit line per request, as the SPIKE API's
 * (src/core/log.ts `formatAuditLine`), with the caller's SPIFFE ID and never a value.
 */
import {
  DEFAULT_VAULT_MOUNT,
  isVaultRequestPath,
  parseGoBool,
  parseVaultPath,
  patchContentTypeError,
  VAULT_AUDIT_CODE,
  VAULT_ERRORS,
  VAULT_STATUS,
  type VaultErrorKind,
  type VaultPath,
} from '../../api/vault/index.ts';
import { isSpikeError } from '../../core/errors.ts';
import { type AuditOutcome, formatAuditLine, type Logger } from '../../core/log.ts';
import type { PolicyEngine } from '../../core/policy/engine.ts';
import type { RootKeyProvider } from '../../core/ports.ts';
import { isSpiffeId } from '../../core/spiffe/id.ts';
import { isWirePeerId } from '../../core/spike/roles.ts';
import type { VaultKv } from '../store/vault-kv.ts';
import { invalidPath, type KvRouteDeps, serveConfig, serveKv, type VaultCtx } from './kv-routes.ts';
import { isBodyTooLarge } from './request.ts';
import { errorResponse } from './responses.ts';
import { certLogin, health, lookupSelf, type SystemState, sealStatus, uiMounts } from './system.ts';

/** What the Vault API needs (docs/style.md rule 4). */
export interface VaultAppDeps {
  /** The Vault view of the shared store (`NexusStore.vault(keys)`). */
  readonly kv: VaultKv;
  readonly keys: Pick<RootKeyProvider, 'keys'>;
  /** True once the store has a key-check value (`sys/health` 501 before). */
  readonly initialized: () => boolean;
  /** The SPIKE API's policy engine (same policies, same cache). */
  readonly policyEngine: PolicyEngine;
  /** `SPIKE_NEXUS_VAULT_MOUNT`; default `secret`. */
  readonly mount?: string;
  /** `SPIKE_HTTP_SERVER_MAX_BODY_BYTES`. */
  readonly maxBodyBytes: number;
  /** Receives one audit line per request (not for the two probes). */
  readonly audit: (line: string) => void;
  /** Our version for `sys/health`. */
  readonly version?: string;
  readonly clock?: () => Date;
  readonly logger?: Logger;
}

export interface VaultApp {
  /** True when `pathname` belongs to this API (§1). */
  matches(pathname: string): boolean;
  /**
   * Serves one request; `peerId` is the transport's verified peer SPIFFE ID. `method` is the
   * method as received when the transport knows it: Bun's `Request` turns methods it does not
   * know (such as Vault's `LIST`) into `GET`, so only the transport can tell LIST apart.
   */
  handle(request: Request, peerId: string | undefined, method?: string): Promise<Response>;
}

const METHODS = new Set(['GET', 'LIST', 'POST', 'PUT', 'PATCH', 'DELETE']);
const MERGE_PATCH = 'application/merge-patch+json';

function outcomeOf(status: number): AuditOutcome {
  if (status >= 200 && status < 300) return 'allowed';
  return status === 403 ? 'denied' : 'error';
}

/** The audit code of an answered status (`undefined` for successes). */
function auditCodeOf(status: number): string | undefined {
  if (status < 400) return undefined;
  for (const [kind, s] of Object.entries(VAULT_STATUS)) {
    if (s === status) return VAULT_AUDIT_CODE[kind as VaultErrorKind];
  }
  return undefined;
}

function routeName(path: VaultPath, mount: string): string {
  switch (path.kind) {
    case 'config':
      return `/v1/${mount}/config`;
    case 'kv':
      return `/v1/${mount}/${path.op}`;
    case 'invalid':
      return `/v1/${mount}`;
    case 'ui-mounts':
      return '/v1/sys/internal/ui/mounts';
    case 'health':
      return '/v1/sys/health';
    case 'seal-status':
      return '/v1/sys/seal-status';
    case 'lookup-self':
      return '/v1/auth/token/lookup-self';
    case 'cert-login':
      return '/v1/auth/cert/login';
    case 'unknown':
      return '/v1/sys';
  }
}

/** The error kind and message of a thrown error (§2 status table). */
function kindOf(error: unknown): { kind: VaultErrorKind; message: string } {
  if (isBodyTooLarge(error)) return { kind: 'too_large', message: VAULT_ERRORS.tooLarge };
  if (isSpikeError(error)) {
    switch (error.code) {
      case 'api_bad_request':
        return { kind: 'bad_request', message: error.message };
      case 'access_unauthorized':
        return { kind: 'permission_denied', message: VAULT_ERRORS.permissionDenied };
      case 'api_not_found':
        return { kind: 'not_found', message: '' };
      case 'state_not_ready':
        return { kind: 'sealed', message: VAULT_ERRORS.sealed };
      default:
        break;
    }
  }
  return { kind: 'internal', message: VAULT_ERRORS.internal };
}

/** The response to a thrown error; internal faults are logged by name or code only. */
function failure(error: unknown, trail: string, logger: Logger | undefined) {
  const { kind, message } = kindOf(error);
  if (kind === 'internal') {
    logger?.error('unexpected fault while serving a Vault request', {
      trail,
      error: isSpikeError(error) ? error.code : error instanceof Error ? error.name : typeof error,
    });
  }
  const response =
    kind === 'not_found' ? errorResponse(404) : errorResponse(VAULT_STATUS[kind], message);
  return { response, err: VAULT_AUDIT_CODE[kind] };
}

/** Creates the Vault KV v2 handler (see the module header). */
export function createVaultApp(deps: VaultAppDeps): VaultApp {
  const mount = deps.mount ?? DEFAULT_VAULT_MOUNT;
  const clock = deps.clock ?? (() => new Date());
  const routeDeps: KvRouteDeps = {
    kv: deps.kv,
    engine: deps.policyEngine,
    maxBodyBytes: deps.maxBodyBytes,
  };
  const system = (): SystemState => ({
    initialized: deps.initialized(),
    sealed: deps.keys.keys() === undefined,
    nowMs: clock().getTime(),
    version: deps.version ?? '0.0.0',
  });

  /** Steps 3–7 for everything but the probes. */
  async function serve(request: Request, url: URL, path: VaultPath, ctx: VaultCtx) {
    if (deps.keys.keys() === undefined) return errorResponse(503, VAULT_ERRORS.sealed);
    if (request.headers.has('x-vault-wrap-ttl')) return errorResponse(400, VAULT_ERRORS.wrapping);
    let list = ctx.method === 'LIST';
    const listFlag = url.searchParams.get('list');
    if (ctx.method === 'GET' && listFlag !== null) {
      const flag = parseGoBool(listFlag);
      if (flag === undefined) return errorResponse(400);
      list = flag;
    }
    if (!isWirePeerId(ctx.peer) || !isSpiffeId(ctx.peer)) {
      return errorResponse(403, VAULT_ERRORS.permissionDenied);
    }
    if (ctx.method === 'PATCH') {
      const type = request.headers.get('content-type') ?? '';
      if (type.split(';')[0]!.trim().toLowerCase() !== MERGE_PATCH) {
        return errorResponse(415, patchContentTypeError(type));
      }
    }
    switch (path.kind) {
      case 'config':
        return serveConfig(routeDeps, ctx, list);
      case 'kv':
        return serveKv(routeDeps, ctx, path.op, path.path, list);
      case 'invalid':
        return invalidPath(ctx.method, list);
      case 'ui-mounts':
        return uiMounts(mount, path.path);
      case 'lookup-self':
        ctx.action = 'lookup_self';
        return lookupSelf(ctx.peer);
      case 'cert-login':
        ctx.action = 'login';
        return ctx.method === 'POST' || ctx.method === 'PUT'
          ? certLogin(ctx.peer)
          : errorResponse(405, VAULT_ERRORS.unsupportedOperation);
      default:
        return errorResponse(404);
    }
  }

  return {
    matches: (pathname) => isVaultRequestPath(pathname, mount),

    async handle(request, peerId, rawMethod) {
      const start = performance.now();
      const trail = crypto.randomUUID().replaceAll('-', '');
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        return errorResponse(404);
      }
      const path = parseVaultPath(url.pathname, mount) ?? ({ kind: 'unknown' } as const);
      const method = (rawMethod ?? request.method).toUpperCase();
      const ctx: VaultCtx = {
        request,
        method,
        query: url.searchParams,
        peer: peerId ?? '',
        action: 'unknown',
      };
      const finish = (res: Response, err?: string): Response => {
        try {
          deps.audit(
            formatAuditLine({
              time: clock(),
              component: 'nexus',
              trail,
              caller: (peerId ?? '').slice(0, 2048),
              route: routeName(path, mount),
              action: ctx.action,
              resource: ctx.resource?.slice(0, 512),
              outcome: outcomeOf(res.status),
              status: res.status,
              err,
              durationMs: performance.now() - start,
            }),
          );
        } catch {
          // A failing audit sink must not turn an answer into a crash.
        }
        return res;
      };
      if (!METHODS.has(method)) return finish(errorResponse(405), auditCodeOf(405));
      if (path.kind === 'health') return health(system(), url.searchParams);
      if (path.kind === 'seal-status') return sealStatus(system());
      try {
        const response = await serve(request, url, path, ctx);
        return finish(response, auditCodeOf(response.status));
      } catch (error) {
        const { response, err } = failure(error, trail, deps.logger);
        return finish(response, err);
      }
    },
  };
}
