/**
 * The policy engine: who may do what on which path (docs/spike-api.md §7).
 *
 * Access for caller `id`, path `p` and wanted permissions `W`:
 * 1. superuser → allowed; lite workload → allowed only for the cipher check
 *    (`spike/system/cipher/exec` wanting at most `execute`), denied everything else, even when a
 *    policy would match;
 * 2. otherwise allowed when any policy's SPIFFE pattern matches somewhere in `id`, its path pattern
 *    matches somewhere in `p` (RE2 search semantics, unanchored), it passes the reserved-path guard
 *    when `p` is reserved, and its permissions include `W` or `super`.
 * There are no deny rules and no ordering.
 *
 * Patterns run on `re2js` (Go RE2 syntax and semantics, linear time: docs/architecture.md decision 9),
 * so a hostile pattern such as `(a+)+$` cannot stall Nexus. Policies are compiled once and held in
 * an in-memory cache keyed by name, filled from the store on first use and updated on every upsert
 * and delete made through the engine, so an access check never reads the database [Ours: upstream
 * decrypts and compiles every policy on every request]. Writes are serialised so the cache ends up
 * in the order the store applied them. On top of the cache, the policies matching each caller and
 * the verdict for each (caller, permissions, path) are remembered, both bounded and dropped on
 * every change to the cache: a workload reading the same path runs no pattern at all.
 *
 * Portable: no runtime APIs. The store is the `PolicyStore` port of src/core/ports.ts.
 */
import type { RE2JS } from 're2js';
import { SpikeError } from '../errors.ts';
import type { Policy, PolicyStore } from '../ports.ts';
import { hasRole, type SpikeRole } from '../spike/roles.ts';
import {
  compileRe2,
  isPermission,
  type Permission,
  type PolicyInput,
  validatePolicyInput,
} from './validate.ts';

/** Reserved system paths (spiffe/spike PR #301), in the order the put rule tries them (§7). */
export const RESERVED_PATHS = Object.freeze([
  'spike/system/acl',
  'spike/system/secret',
  'spike/system/cipher/exec',
] as const);

/** A reserved system path. */
export type ReservedPath = (typeof RESERVED_PATHS)[number];

/** Resource path of the policy routes (§4). */
export const ACL_PATH: ReservedPath = 'spike/system/acl';
/** Resource path of secret listing (§4). */
export const SECRET_LIST_PATH: ReservedPath = 'spike/system/secret';
/** Resource path of the cipher routes (§4). */
export const CIPHER_EXEC_PATH: ReservedPath = 'spike/system/cipher/exec';

/** The literal a deliberate wildcard SPIFFE pattern (e.g. `.*`) must full-match (§7 "Test"). */
export const PROBE_VALUE = 'spike-arbitrary-probe-value';

/** Trust domains per role (`SPIKE_TRUST_ROOT_*`), as `roleOf` in src/core/spike/roles.ts takes them. */
export type TrustRoots = Readonly<Record<SpikeRole, readonly string[]>>;

/** A policy with its patterns compiled and its reserved-path verdicts precomputed. */
export interface CompiledPolicy {
  readonly input: PolicyInput;
  readonly spiffeId: RE2JS;
  readonly path: RE2JS;
  readonly permissions: ReadonlySet<Permission>;
  /** The reserved paths whose guard this policy passes (§7 "Test"). */
  readonly reservedAllowed: ReadonlySet<ReservedPath>;
}

function isReserved(path: string): path is ReservedPath {
  return (RESERVED_PATHS as readonly string[]).includes(path);
}

/** `^(?:pattern)$` full match of RE2, the guard's notion of "matches the whole path". */
function fullMatches(pattern: string, value: string): boolean {
  return compileRe2(`^(?:${pattern})$`, 'pattern').test(value);
}

/**
 * The reserved-path test of §7: the path pattern full-matches `reserved`, and the SPIFFE pattern
 * is anchored (starts with `^`, ends with `$`) or full-matches {@link PROBE_VALUE}.
 */
export function passesReservedGuard(
  policy: Pick<PolicyInput, 'spiffeIdPattern' | 'pathPattern'>,
  reserved: ReservedPath,
): boolean {
  return fullMatches(policy.pathPattern, reserved) && spiffeIdGuardOk(policy.spiffeIdPattern);
}

/** The SPIFFE half of the guard: anchored at both ends, or a deliberate wildcard. */
function spiffeIdGuardOk(pattern: string): boolean {
  return (pattern.startsWith('^') && pattern.endsWith('$')) || fullMatches(pattern, PROBE_VALUE);
}

/**
 * Compiles a policy (after `validatePolicyInput`). Fails only on patterns that do not compile.
 * Stored policies are compiled with this too, without the put-time reserved rule: a policy that
 * fails the guard is then simply ignored for that reserved path.
 */
export function compilePolicy(input: PolicyInput): CompiledPolicy {
  // Compile the bare patterns first: only a pattern that compiles on its own may be wrapped in
  // `^(?:…)$` (wrapping `a)|(b` would otherwise change its meaning instead of failing).
  const spiffeId = compileRe2(input.spiffeIdPattern, 'spiffeidPattern');
  const path = compileRe2(input.pathPattern, 'pathPattern');
  const fullPath = compileRe2(`^(?:${input.pathPattern})$`, 'pathPattern');
  const reservedAllowed = new Set<ReservedPath>();
  if (spiffeIdGuardOk(input.spiffeIdPattern)) {
    for (const reserved of RESERVED_PATHS) {
      if (fullPath.test(reserved)) reservedAllowed.add(reserved);
    }
  }
  return { input, spiffeId, path, permissions: new Set(input.permissions), reservedAllowed };
}

/**
 * The put-time reserved-path rule of §7: when the path pattern matches (unanchored) any reserved
 * path, the policy must pass the guard for the first such path.
 *
 * @throws SpikeError `api_bad_request` [Ours: upstream answers 500].
 */
export function checkReservedOnPut(compiled: CompiledPolicy): void {
  for (const reserved of RESERVED_PATHS) {
    if (!compiled.path.test(reserved)) continue;
    if (compiled.reservedAllowed.has(reserved)) return;
    throw new SpikeError(
      'api_bad_request',
      `invalid pathPattern: a policy on reserved path ${reserved} needs a full-match path pattern and an anchored spiffeidPattern`,
    );
  }
}

/** True when this one policy grants `wanted` on `path` to `callerId` (§7 step 2). */
export function policyAllows(
  compiled: CompiledPolicy,
  callerId: string,
  path: string,
  wanted: readonly Permission[],
): boolean {
  return compiled.spiffeId.test(callerId) && grantsOnPath(compiled, path, wanted);
}

/** `policyAllows` without the SPIFFE pattern, for policies already known to match the caller. */
function grantsOnPath(
  compiled: CompiledPolicy,
  path: string,
  wanted: readonly Permission[],
): boolean {
  if (!compiled.permissions.has('super')) {
    for (const w of wanted) if (!compiled.permissions.has(w)) return false;
  }
  if (isReserved(path) && !compiled.reservedAllowed.has(path)) return false;
  return compiled.path.test(path);
}

/** Callers whose matching policies are remembered; past this the memo starts over (bounded RAM). */
const MAX_MEMOISED_CALLERS = 4096;
/** Policy verdicts remembered (caller, path, permissions); past this the memo starts over. */
const MAX_MEMOISED_VERDICTS = 4096;
/** Verdicts with longer keys are computed every time, never remembered (bounds the memo's RAM). */
const MAX_MEMOISED_KEY = 1024;

/** The verdict memo's key: length-prefixed parts, so no two different inputs share a key. */
function verdictKey(
  callerId: string,
  path: string,
  wanted: readonly Permission[],
): string | undefined {
  if (callerId.length + path.length > MAX_MEMOISED_KEY) return;
  // Only the fixed permission words (no commas) are joined; anything else is never remembered.
  if (!wanted.every(isPermission)) return;
  const w = wanted.join(',');
  return `${callerId.length}:${callerId}${w.length}:${w}${path}`;
}

/** The engine the HTTP layer talks to (§7). */
export interface PolicyEngine {
  /** §7 access check; reads only the cache (loaded from the store on first use). */
  checkAccess(callerId: string, path: string, wanted: readonly Permission[]): Promise<boolean>;
  /**
   * Validates (§5), compiles, applies the reserved-path put rule, stores and caches a policy.
   *
   * @throws SpikeError `api_bad_request` for an invalid policy; store errors pass through.
   */
  upsert(input: PolicyInput): Promise<Policy>;
  /** Deletes from the store, then from the cache. Missing name → `api_not_found` (store). */
  delete(name: string): Promise<void>;
  /** Drops the cache; the next check reloads from the store (e.g. after the root key changes). */
  invalidate(): void;
  /**
   * True when some policy grants `wanted` to `callerId` on some path (superusers: always): who
   * may open a watch stream, whose events are then checked one by one (docs/spike-api.md "Watch").
   */
  grantsSomewhere(callerId: string, wanted: Permission): Promise<boolean>;
}

/** Every stored policy compiled, by name; one whose pattern no longer compiles is left out. */
async function compileAll(store: PolicyStore): Promise<Map<string, CompiledPolicy>> {
  const next = new Map<string, CompiledPolicy>();
  for (const policy of await store.list()) {
    try {
      next.set(policy.name, compilePolicy(policy));
    } catch {
      // A stored pattern that no longer compiles grants nothing (fail closed).
    }
  }
  return next;
}

/**
 * Creates a policy engine over `store` (docs/spike-api.md §7).
 *
 * @param options.trustRoots trust domains per role, for the superuser and lite-workload rules.
 */
export function createPolicyEngine(options: {
  readonly store: PolicyStore;
  readonly trustRoots: TrustRoots;
}): PolicyEngine {
  const { store, trustRoots } = options;
  let cache: Map<string, CompiledPolicy> | undefined;
  let loading: Promise<Map<string, CompiledPolicy>> | undefined;
  // Bumped on every write and invalidation, so a load that raced a write is not installed stale.
  let epoch = 0;
  let writes: Promise<unknown> = Promise.resolve();
  // Caller ID → the cached policies whose SPIFFE pattern matches it. A workload's ID is fixed, so
  // the SPIFFE half of §7 is evaluated once per caller, not once per policy per request; cleared
  // on every change to the cache.
  const byCaller = new Map<string, CompiledPolicy[]>();
  // (caller, wanted, path) → the policy verdict, so a workload reading the same paths again and
  // again does not re-run the path patterns; computed and cleared exactly like `byCaller`.
  const verdicts = new Map<string, boolean>();

  async function load(): Promise<Map<string, CompiledPolicy>> {
    if (cache !== undefined) return cache;
    if (loading === undefined) {
      const started = epoch;
      const attempt = compileAll(store).then((next) => {
        if (epoch === started) cache = next;
        return next;
      });
      loading = attempt;
      const settled = () => {
        if (loading === attempt) loading = undefined;
      };
      attempt.then(settled, settled);
    }
    return loading;
  }

  function serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = writes.then(fn);
    writes = run.catch(() => undefined);
    return run;
  }

  return {
    async checkAccess(callerId, path, wanted) {
      if (hasRole(callerId, 'superuser', trustRoots.superuser)) return true;
      if (hasRole(callerId, 'lite-workload', trustRoots['lite-workload'])) {
        return path === CIPHER_EXEC_PATH && wanted.every((w) => w === 'execute');
      }
      const policies = await load();
      const key = verdictKey(callerId, path, wanted);
      const known = key === undefined || policies !== cache ? undefined : verdicts.get(key);
      if (known !== undefined) return known;
      let mine = byCaller.get(callerId);
      if (mine === undefined) {
        mine = [];
        for (const compiled of policies.values()) {
          if (compiled.spiffeId.test(callerId)) mine.push(compiled);
        }
        // Remember only what was computed from the installed cache, never from a stale load.
        if (policies === cache) {
          if (byCaller.size >= MAX_MEMOISED_CALLERS) byCaller.clear();
          byCaller.set(callerId, mine);
        }
      }
      let verdict = false;
      for (const compiled of mine) {
        if (grantsOnPath(compiled, path, wanted)) {
          verdict = true;
          break;
        }
      }
      if (key !== undefined && policies === cache) {
        if (verdicts.size >= MAX_MEMOISED_VERDICTS) verdicts.clear();
        verdicts.set(key, verdict);
      }
      return verdict;
    },

    async upsert(raw) {
      const input = validatePolicyInput(raw);
      const compiled = compilePolicy(input);
      checkReservedOnPut(compiled);
      return serialise(async () => {
        await load();
        const stored = await store.upsert(input);
        epoch++;
        cache?.set(stored.name, compiled);
        byCaller.clear();
        verdicts.clear();
        return stored;
      });
    },

    delete(name) {
      return serialise(async () => {
        await load();
        await store.delete(name);
        epoch++;
        cache?.delete(name);
        byCaller.clear();
        verdicts.clear();
      });
    },

    async grantsSomewhere(callerId, wanted) {
      if (hasRole(callerId, 'superuser', trustRoots.superuser)) return true;
      if (hasRole(callerId, 'lite-workload', trustRoots['lite-workload'])) return false;
      for (const compiled of (await load()).values()) {
        const grants = compiled.permissions.has('super') || compiled.permissions.has(wanted);
        if (grants && compiled.spiffeId.test(callerId)) return true;
      }
      return false;
    },

    invalidate() {
      epoch++;
      cache = undefined;
      loading = undefined;
      byCaller.clear();
      verdicts.clear();
    },
  };
}
