/**
 * The non-KV endpoints Vault clients need (docs/vault-kv2.md §5): `sys/health`,
 * `sys/seal-status`, `sys/internal/ui/mounts`, `auth/token/lookup-self` and `auth/cert/login`.
 * They reveal no secret data and need no permission beyond a verified SVID.
 */
import { envelopeResponse, errorResponse, jsonResponse } from './responses.ts';

/** What the system endpoints read. */
export interface SystemState {
  readonly initialized: boolean;
  readonly sealed: boolean;
  readonly nowMs: number;
  readonly version: string;
}

/** The opaque label `auth/cert/login` hands out: it grants nothing (§5). */
const CERT_LOGIN_LABEL = 'spike-mtls-certificate-is-the-credential';

function statusFlag(query: URLSearchParams | undefined, name: string, fallback: number): number {
  const raw = query?.get(name);
  const n = raw === null || raw === undefined ? Number.NaN : Number(raw);
  return Number.isInteger(n) && n >= 200 && n <= 599 ? n : fallback;
}

/**
 * `sys/health` (§5), no envelope. The status codes follow Vault's query flags `activecode`,
 * `sealedcode` and `uninitcode` [the Go client sends `sealedcode=299` so that a sealed answer is
 * no error; the spec said the flags are ignored, the client wins]; other flags are ignored.
 */
export function health(state: SystemState, query?: URLSearchParams): Response {
  const status = !state.initialized
    ? statusFlag(query, 'uninitcode', 501)
    : state.sealed
      ? statusFlag(query, 'sealedcode', 503)
      : statusFlag(query, 'activecode', 200);
  return jsonResponse(status, {
    initialized: state.initialized,
    sealed: state.sealed,
    standby: false,
    performance_standby: false,
    server_time_utc: Math.floor(state.nowMs / 1000),
    version: state.version,
  });
}

/** `sys/seal-status`: always 200, the seal state in the body (Vault's shape). */
export function sealStatus(state: SystemState): Response {
  return jsonResponse(200, {
    type: 'shamir',
    initialized: state.initialized,
    sealed: state.sealed,
    t: 0,
    n: 0,
    progress: 0,
    nonce: '',
    version: state.version,
    build_date: '',
    migration: false,
    recovery_seal: false,
    storage_type: 'spike',
  });
}

/** `sys/internal/ui/mounts/<path>`: KV v2 for paths under our mount, else 404 (§5). */
export function uiMounts(mount: string, p: string): Response {
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

/** `auth/token/lookup-self`: the caller's SPIFFE ID as `display_name`; never a token (§5, §6). */
export function lookupSelf(peer: string): Response {
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

/** `auth/cert/login`: a label-only token so cert auth flows work; the certificate decides. */
export function certLogin(peer: string): Response {
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
