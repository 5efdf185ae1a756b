/**
 * The Vault KV v2 API of Nexus (spec/vault-kv2.md): `createVaultApp(deps)` returns a handler for
 * every request under `/v1/<mount>/`, `/v1/sys/` and `/v1/auth/`; the Nexus pipeline delegates
 * those paths to it with the transport's verified peer SPIFFE ID.
 *
 * Processing order (the first failing step answers):
 * 1. method not GET, LIST, POST, PUT, PATCH or DELETE → 405 `{"errors":[]}`;
 * 2. `sys/health`, `sys/seal-status` (§5; not audited: probes);
 * 3. no root key → 503 `Vault is sealed`;
 * 4. `X-Vault-Wrap-TTL` → 400; `?list=` not a Go bool → 400 `{"errors":[]}`;
 * 5. no verified peer, or one failing the spike-api.md §2 re-check → 403;
 * 6. PATCH without `application/merge-patch+json` → 415;
 * 7. the route (./kv-routes.ts): path rules, authorisation (§6), body, execution.
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
import { isSpiffeId } from '../../core/spiffe/id.ts';
import { isWirePeerId } from '../../core/spike/roles.ts';
import type { RootKeyProvider } from '../domain.ts';
import type { VaultKv } from '../store/vault-kv.ts';
import { invalidPath, type KvRouteDeps, serveConfig, serveKv, type VaultCtx } from './kv-routes.ts';
import { isBodyTooLarge } from './request.ts';
import { envelopeResponse, errorResponse, jsonResponse } from './responses.ts';

/** What the Vault API needs (STYLE.md rule 4). */
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
/** The opaque label `auth/cert/login` hands out: it grants nothing (§5). */
const CERT_LOGIN_LABEL = 'spike-mtls-certificate-is-the-credential';

function outcomeOf(status: number): AuditOutcome {
  if (status >= 200 && status < 300) return 'allowed';
  return status === 403 ? 'denied' : 'error';
}

function kindOfStatus(status: number): VaultErrorKind | undefined {
  for (const [kind, s] of Object.entries(VAULT_STATUS))
    if (s === status) return kind as VaultErrorKind;
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

/** Creates the Vault KV v2 handler (see the module header). */
export function createVaultApp(deps: VaultAppDeps): VaultApp {
  const mount = deps.mount ?? DEFAULT_VAULT_MOUNT;
  const clock = deps.clock ?? (() => new Date());
  const routeDeps: KvRouteDeps = {
    kv: deps.kv,
    engine: deps.policyEngine,
    maxBodyBytes: deps.maxBodyBytes,
  };

  /**
   * `sys/health` (§5). The status codes follow Vault's query flags `activecode`, `sealedcode` and
   * `uninitcode` [the Go client sends `sealedcode=299` so that a sealed answer is no error; the
   * spec said the flags are ignored, the client wins]; other flags are ignored.
   */
  function healthBody(query?: URLSearchParams): { status: number; body: Record<string, unknown> } {
    const initialized = deps.initialized();
    const sealed = deps.keys.keys() === undefined;
    const code = (name: string, fallback: number) => {
      const raw = query?.get(name);
      const n = raw === null || raw === undefined ? Number.NaN : Number(raw);
      return Number.isInteger(n) && n >= 200 && n <= 599 ? n : fallback;
    };
    return {
      status: !initialized
        ? code('uninitcode', 501)
        : sealed
          ? code('sealedcode', 503)
          : code('activecode', 200),
      body: {
        initialized,
        sealed,
        standby: false,
        performance_standby: false,
        server_time_utc: Math.floor(clock().getTime() / 1000),
        version: deps.version ?? '0.0.0',
      },
    };
  }

  function sealStatus(): Response {
    const { body } = healthBody();
    return jsonResponse(200, {
      type: 'shamir',
      initialized: body.initialized,
      sealed: body.sealed,
      t: 0,
      n: 0,
      progress: 0,
      nonce: '',
      version: body.version,
      build_date: '',
      migration: false,
      recovery_seal: false,
      storage_type: 'spike',
    });
  }

  function failure(error: unknown, trail: string): { response: Response; err: string } {
    let kind: VaultErrorKind = 'internal';
    let message: string = VAULT_ERRORS.internal;
    if (isBodyTooLarge(error)) {
      kind = 'too_large';
      message = VAULT_ERRORS.tooLarge;
    } else if (isSpikeError(error)) {
      if (error.code === 'api_bad_request') {
        kind = 'bad_request';
        message = error.message;
      } else if (error.code === 'access_unauthorized') {
        kind = 'permission_denied';
        message = VAULT_ERRORS.permissionDenied;
      } else if (error.code === 'api_not_found') kind = 'not_found';
      else if (error.code === 'state_not_ready') {
        kind = 'sealed';
        message = VAULT_ERRORS.sealed;
      }
    }
    if (kind === 'internal') {
      deps.logger?.error('unexpected fault while serving a Vault request', {
        trail,
        error: isSpikeError(error)
          ? error.code
          : error instanceof Error
            ? error.name
            : typeof error,
      });
    }
    const response =
      kind === 'not_found' ? errorResponse(404) : errorResponse(VAULT_STATUS[kind], message);
    return { response, err: VAULT_AUDIT_CODE[kind] };
  }

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
        return uiMounts(path.path);
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

  function uiMounts(p: string): Response {
    if (p !== mount && !p.startsWith(`${mount}/`)) return errorResponse(404);
    return envelopeResponse({
      path: `${mount}/`,
      type: 'kv',
      description: '',
      options: { version: '2' },
      config: {},
      local: false,
      seal_wrap: false,
      external_entropy_access: false,
    });
  }

  function lookupSelf(peer: string): Response {
    return envelopeResponse({
      accessor: '',
      creation_ttl: 0,
      display_name: peer,
      entity_id: '',
      expire_time: null,
      explicit_max_ttl: 0,
      id: '',
      meta: null,
      num_uses: 0,
      orphan: true,
      path: 'auth/cert/login',
      policies: ['default'],
      renewable: false,
      ttl: 0,
      type: 'service',
    });
  }

  function certLogin(peer: string): Response {
    return envelopeResponse(null, {
      auth: {
        client_token: CERT_LOGIN_LABEL,
        accessor: '',
        policies: ['default'],
        token_policies: ['default'],
        metadata: { spiffe_id: peer },
        lease_duration: 0,
        renewable: false,
        entity_id: '',
        token_type: 'service',
        orphan: true,
      },
    });
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
      if (!METHODS.has(method)) return finish(errorResponse(405));
      if (path.kind === 'health') {
        const { status, body } = healthBody(url.searchParams);
        return jsonResponse(status, body);
      }
      if (path.kind === 'seal-status') return sealStatus();
      let err: string | undefined;
      let response: Response;
      try {
        response = await serve(request, url, path, ctx);
        if (response.status >= 400) {
          const kind = kindOfStatus(response.status);
          if (kind !== undefined) err = VAULT_AUDIT_CODE[kind];
        }
      } catch (error) {
        ({ response, err } = failure(error, trail));
      }
      return finish(response, err);

      function finish(res: Response, code?: string): Response {
        try {
          deps.audit(
            formatAuditLine({
              time: clock(),
              component: 'nexus',
              trail,
              caller: (peerId ?? '').slice(0, 2048),
              route: routeName(path, mount),
              action: ctx.action ?? 'unknown',
              resource: ctx.resource?.slice(0, 512),
              outcome: outcomeOf(res.status),
              status: res.status,
              err: code,
              durationMs: performance.now() - start,
            }),
          );
        } catch {
          // A failing audit sink must not turn an answer into a crash.
        }
        return res;
      }
    },
  };
}
