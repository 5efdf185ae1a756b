/**
 * SPIKE roles: which SPIFFE IDs are Nexus, Keepers, Bootstrap and the Pilot operator roles
 * (spike-api.md §1), and the wire-level peer ID re-check (spike-api.md §2).
 *
 * A role is a path under each trust domain of its trust-root variable (`SPIKE_TRUST_ROOT_*`,
 * comma-separated, default `spike.ist`). An ID has the role when it equals `spiffe://td<path>` or
 * starts with `spiffe://td<path>/` (so `/spike/nexus/instance-1` is Nexus, `/spike/nexu` is not).
 * Matching happens only on strictly parsed IDs (spec/spiffe.md §3); anything that fails the parse
 * has no role at all. Any valid ID without a role is a plain workload, governed by policies.
 */
import { SpikeError } from '../errors.ts';
import { parseSpiffeId, parseTrustDomain } from '../spiffe/id.ts';

/** The roles of spike-api.md §1. */
export type SpikeRole =
  | 'nexus'
  | 'keeper'
  | 'bootstrap'
  | 'superuser'
  | 'recover'
  | 'restore'
  | 'lite-workload';

/** SPIFFE ID path of each role, under every trust domain of its trust root (spike-api.md §1). */
export const ROLE_PATHS = {
  nexus: '/spike/nexus',
  keeper: '/spike/keeper',
  bootstrap: '/spike/bootstrap',
  superuser: '/spike/pilot/role/superuser',
  recover: '/spike/pilot/role/recover',
  restore: '/spike/pilot/role/restore',
  'lite-workload': '/spike/workload/role/lite',
} as const satisfies Record<SpikeRole, string>;

/** Every role, in the order `roleOf` tries them (their paths never overlap, so order is moot). */
export const SPIKE_ROLES: readonly SpikeRole[] = Object.freeze(
  Object.keys(ROLE_PATHS) as SpikeRole[],
);

/** The trust domain used when a trust-root variable is unset or empty (spike-api.md §1). */
export const DEFAULT_TRUST_ROOT = 'spike.ist';

/**
 * True when `id` has `role` under one of `trustDomains` (spike-api.md §1 "Role match"): the ID
 * equals `spiffe://td<path>` or starts with `spiffe://td<path>/`. An invalid ID, or an invalid
 * trust domain entry, never matches.
 */
export function hasRole(id: string, role: SpikeRole, trustDomains: readonly string[]): boolean {
  let parsed: { trustDomain: string; path: string };
  try {
    parsed = parseSpiffeId(id);
  } catch {
    return false;
  }
  const path = ROLE_PATHS[role];
  if (parsed.path !== path && !parsed.path.startsWith(`${path}/`)) return false;
  for (const td of trustDomains) {
    let name: string;
    try {
      name = parseTrustDomain(td);
    } catch {
      continue;
    }
    if (name === parsed.trustDomain) return true;
  }
  return false;
}

/**
 * The SPIKE role of `id` given each role's trust roots, or `'workload'` when it has none
 * (spike-api.md §1). Invalid IDs are `'workload'` too: callers reject them earlier (§2 re-check).
 */
export function roleOf(
  id: string,
  trustRoots: Readonly<Record<SpikeRole, readonly string[]>>,
): SpikeRole | 'workload' {
  for (const role of SPIKE_ROLES) {
    if (hasRole(id, role, trustRoots[role])) return role;
  }
  return 'workload';
}

/**
 * Parses a trust-root variable (`SPIKE_TRUST_ROOT_*`): comma-separated trust domain names, each
 * trimmed; empty entries are skipped; unset or empty gives `['spike.ist']` (spike-api.md §1).
 *
 * @throws SpikeError `config_invalid` when an entry is not a valid trust domain name.
 */
export function parseTrustRoots(value: string | undefined): string[] {
  const out: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    try {
      const td = parseTrustDomain(entry);
      if (!out.includes(td)) out.push(td);
    } catch (error) {
      throw new SpikeError('config_invalid', 'trust root entry is not a valid trust domain', {
        cause: error,
      });
    }
  }
  return out.length === 0 ? [DEFAULT_TRUST_ROOT] : out;
}

// spike-api.md §2: trust domain without `_`, path segments from the SPIFFE path alphabet.
const WIRE_PEER_ID = /^spiffe:\/\/[a-zA-Z0-9.-]+(\/[a-zA-Z0-9._-]+)*$/;

/**
 * The peer ID re-check of spike-api.md §2 (`^spiffe://[a-zA-Z0-9.-]+(/[a-zA-Z0-9._-]+)*$`; a
 * failure answers 401). It runs in addition to the strict parse, never instead of it.
 */
export function isWirePeerId(id: string): boolean {
  return typeof id === 'string' && id.length <= 2048 && WIRE_PEER_ID.test(id);
}
