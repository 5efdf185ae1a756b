/**
 * SPIKE roles: which SPIFFE IDs are Nexus, Keepers, Bootstrap and the Pilot operator roles
 * (docs/spike-api.md §1), and the wire-level peer ID re-check (docs/spike-api.md §2).
 *
 * A role is a path under each trust domain of its trust-root variable (`SPIKE_TRUST_ROOT_*`,
 * comma-separated, default `spike.ist`). An ID has the role when it equals `spiffe://td<path>` or
 * starts with `spiffe://td<path>/` (so `/spike/nexus/instance-1` is Nexus, `/spike/nexu` is not).
 * Matching happens only on strictly parsed IDs (docs/spiffe.md §3); anything that fails the parse
 * has no role at all. Any valid ID without a role is a plain workload, governed by policies.
 * Parses are remembered per string (bounded), as role checks run on every request for the same
 * few callers.
 */
import { SpikeError } from '../errors.ts';
import { parseSpiffeId, parseTrustDomain } from '../spiffe/id.ts';

/** The roles of docs/spike-api.md §1. */
export type SpikeRole =
  | 'nexus'
  | 'keeper'
  | 'bootstrap'
  | 'superuser'
  | 'recover'
  | 'restore'
  | 'lite-workload';

/** SPIFFE ID path of each role, under every trust domain of its trust root (docs/spike-api.md §1). */
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

/** `<role path>/`: IDs below a role's path have the role too. */
const ROLE_PREFIXES = Object.freeze(
  Object.fromEntries(SPIKE_ROLES.map((role) => [role, `${ROLE_PATHS[role]}/`])) as Record<
    SpikeRole,
    string
  >,
);

/** The trust domain used when a trust-root variable is unset or empty (docs/spike-api.md §1). */
const DEFAULT_TRUST_ROOT = 'spike.ist';

/** Parse results remembered per string; past this a memo starts over (bounded RAM). */
const MAX_MEMOISED = 4096;
/** Longer strings are parsed every time (no valid SPIFFE ID is longer than 2048 bytes). */
const MAX_MEMOISED_LENGTH = 2048;

type ParsedId = { readonly trustDomain: string; readonly path: string };

// Callers and trust roots are few and fixed, while roles are checked on every request: the strict
// parses run once per distinct string. Failures are remembered as `null`.
const idMemo = new Map<string, ParsedId | null>();
const trustDomainMemo = new Map<string, string | null>();

function memoised<V>(
  memo: Map<string, V | null>,
  key: string,
  parse: (key: string) => V,
): V | null {
  const known = memo.get(key);
  if (known !== undefined) return known;
  let value: V | null;
  try {
    value = parse(key);
  } catch {
    value = null;
  }
  if (key.length <= MAX_MEMOISED_LENGTH) {
    if (memo.size >= MAX_MEMOISED) memo.clear();
    memo.set(key, value);
  }
  return value;
}

/** `parseSpiffeId(id)`'s parts, or `null` when it throws. */
function parsedId(id: string): ParsedId | null {
  if (typeof id !== 'string') return null;
  return memoised(idMemo, id, (value) => {
    const { trustDomain, path } = parseSpiffeId(value);
    return { trustDomain, path };
  });
}

/** `parseTrustDomain(td)`, or `null` when it throws. */
function trustDomainName(td: string): string | null {
  if (typeof td !== 'string') return null;
  return memoised(trustDomainMemo, td, parseTrustDomain);
}

/**
 * How a role's path is matched: `prefix` (the upstream rule, docs/spike-api.md §1 "Role match")
 * also accepts IDs below the path; `exact` accepts the path itself only (what the Keeper uses by
 * default for its callers, docs/architecture.md "Shard custody").
 */
export type RoleMatch = 'exact' | 'prefix';

/**
 * True when `id` has `role` under one of `trustDomains` (docs/spike-api.md §1 "Role match"): the ID
 * equals `spiffe://td<path>` or, with `match` `prefix` (the default), starts with
 * `spiffe://td<path>/`. An invalid ID, or an invalid trust domain entry, never matches.
 */
export function hasRole(
  id: string,
  role: SpikeRole,
  trustDomains: readonly string[],
  match: RoleMatch = 'prefix',
): boolean {
  const parsed = parsedId(id);
  if (parsed === null) return false;
  const path = ROLE_PATHS[role];
  if (parsed.path !== path && (match === 'exact' || !parsed.path.startsWith(ROLE_PREFIXES[role]))) {
    return false;
  }
  for (const td of trustDomains) {
    if (trustDomainName(td) === parsed.trustDomain) return true;
  }
  return false;
}

/**
 * The SPIKE role of `id` given each role's trust roots, or `'workload'` when it has none
 * (docs/spike-api.md §1). Invalid IDs are `'workload'` too: callers reject them earlier (§2 re-check).
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
 * trimmed; empty entries are skipped; unset or empty gives `['spike.ist']` (docs/spike-api.md §1).
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

// docs/spike-api.md §2: trust domain without `_`, path segments from the SPIFFE path alphabet.
const WIRE_PEER_ID = /^spiffe:\/\/[a-zA-Z0-9.-]+(\/[a-zA-Z0-9._-]+)*$/;

/**
 * The peer ID re-check of docs/spike-api.md §2 (`^spiffe://[a-zA-Z0-9.-]+(/[a-zA-Z0-9._-]+)*$`; a
 * failure answers 401). It runs in addition to the strict parse, never instead of it.
 */
export function isWirePeerId(id: string): boolean {
  return typeof id === 'string' && id.length <= 2048 && WIRE_PEER_ID.test(id);
}
