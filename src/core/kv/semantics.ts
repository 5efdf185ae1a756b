/**
 * The rules of versioned key-value secrets (docs/spike-api.md §6), as pure functions.
 *
 * Storage backends keep rows; these functions decide what the rows mean and how an operation
 * changes them: which version is current or oldest, which versions a delete, undelete or destroy
 * touches, which version a read resolves to, and which versions a put prunes. Both backends (and
 * later the Vault-compatible API) share them, so the semantics are written and tested once.
 *
 * Times are epoch milliseconds. A version is *deleted* once its `deletedAt` is set and not in the
 * future (a future time is a scheduled deletion, docs/vault-kv2.md §4.3); it is *live* when it is
 * neither deleted nor destroyed. Version numbers are positive integers; anything else requested
 * by a caller simply matches nothing (§5).
 *
 * Portable: no runtime APIs.
 */

/** Stored state of one version (its data lives elsewhere). */
export interface VersionState {
  readonly version: number;
  readonly createdAt: number;
  /** When the version was (or will be) deleted; `null` when never. */
  readonly deletedAt: number | null;
  /** Data erased for good (§6 Destroy). */
  readonly destroyed: boolean;
}

/** Default of `SPIKE_NEXUS_MAX_SECRET_VERSIONS` (§10). */
export const DEFAULT_MAX_VERSIONS = 10;

/** True once the version's deletion time has come (`deletedAt ≤ now`). */
export function isDeleted(v: VersionState, now: number): boolean {
  return v.deletedAt !== null && v.deletedAt <= now;
}

/** Live: not deleted (as of `now`) and not destroyed (§6). */
export function isLive(v: VersionState, now: number): boolean {
  return !v.destroyed && !isDeleted(v, now);
}

/** `currentVersion`: the highest live version, else 0 (§6). */
export function currentVersion(versions: readonly VersionState[], now: number): number {
  let best = 0;
  for (const v of versions) if (v.version > best && isLive(v, now)) best = v.version;
  return best;
}

/** `oldestVersion`: the lowest live version, else 0 (§6). */
export function oldestVersion(versions: readonly VersionState[], now: number): number {
  let best = 0;
  for (const v of versions) {
    if (isLive(v, now) && (best === 0 || v.version < best)) best = v.version;
  }
  return best;
}

/** The version a put writes: highest version ever written + 1 (§6; never reuses a number). */
export function nextVersion(latestVersion: number): number {
  return latestVersion + 1;
}

/**
 * Effective max versions (docs/vault-kv2.md §4.2): the larger of the key's and the mount's
 * `max_versions`, or the configured default when both are 0 or unset.
 */
export function effectiveMaxVersions(
  keyMax: number | null | undefined,
  mountMax: number | null | undefined,
  fallback: number,
): number {
  const m = Math.max(keyMax ?? 0, mountMax ?? 0);
  return m > 0 ? m : fallback;
}

/** Versions to remove after a put: all but the newest `max` version numbers (§6 Prune). */
export function selectPrune(versions: readonly number[], max: number): number[] {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max versions must be ≥ 1');
  const sorted = [...versions].sort((a, b) => b - a);
  return sorted.slice(max).sort((a, b) => a - b);
}

/** A requested number that can name a version: a safe integer ≥ 0 (0 = current). */
function isVersionNumber(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * The versions named by a delete or destroy request (§6): `[]` = current, each `0` = current.
 * Negative, fractional and (later) unknown numbers match nothing. Sorted, without duplicates;
 * empty when the path has no current version and nothing else was named.
 */
export function resolveTargets(requested: readonly number[], current: number): number[] {
  const list = requested.length === 0 ? [0] : requested;
  const out = new Set<number>();
  for (const n of list) {
    if (!isVersionNumber(n)) continue;
    const v = n === 0 ? current : n;
    if (v > 0) out.add(v);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The version a get or metadata read resolves to (§6 Get): `0` or absent = current. Returns
 * `undefined` (→ `api_not_found`) when current is 0 or the version is missing or not live.
 */
export function selectReadVersion(
  versions: readonly VersionState[],
  requested: number | undefined,
  now: number,
): VersionState | undefined {
  const want =
    requested === undefined || requested === 0 ? currentVersion(versions, now) : requested;
  if (want === 0 || !isVersionNumber(want)) return undefined;
  const v = versions.find((x) => x.version === want);
  return v !== undefined && isLive(v, now) ? v : undefined;
}

/** The existing, not destroyed versions a delete or destroy request names (as `resolveTargets`). */
function namedUndestroyed(
  versions: readonly VersionState[],
  requested: readonly number[],
  now: number,
): VersionState[] {
  const targets = new Set(resolveTargets(requested, currentVersion(versions, now)));
  return versions.filter((v) => targets.has(v.version) && !v.destroyed);
}

/**
 * Delete (§6): sets `deletedAt = now` on the named versions that exist. Destroyed versions are
 * left as they are. Returns the new states of the versions that changed (possibly none: a
 * delete always succeeds once the path exists).
 */
export function planDelete(
  versions: readonly VersionState[],
  requested: readonly number[],
  now: number,
): VersionState[] {
  return namedUndestroyed(versions, requested, now).map((v) => ({ ...v, deletedAt: now }));
}

/**
 * Undelete (§6): `[]` = current, or the highest deleted version that can be undeleted when current
 * is 0; each `0` = current (skipped when current is 0). Clears `deletedAt` on the named versions
 * that are deleted and not destroyed (a destroyed version never comes back). Returns the changed
 * versions; none means the caller answers `api_not_found`.
 */
export function planUndelete(
  versions: readonly VersionState[],
  requested: readonly number[],
  now: number,
): VersionState[] {
  const current = currentVersion(versions, now);
  const restorable = (v: VersionState) => isDeleted(v, now) && !v.destroyed;
  let targets: Set<number>;
  if (requested.length === 0) {
    if (current !== 0) {
      targets = new Set([current]);
    } else {
      let highest = 0;
      for (const v of versions) if (restorable(v) && v.version > highest) highest = v.version;
      targets = new Set(highest === 0 ? [] : [highest]);
    }
  } else {
    targets = new Set(resolveTargets(requested, current));
  }
  const out: VersionState[] = [];
  for (const v of versions) {
    if (targets.has(v.version) && restorable(v)) out.push({ ...v, deletedAt: null });
  }
  return out;
}

/**
 * Destroy (§6, ours): the named versions (as for delete) that exist and are not yet destroyed
 * become destroyed; their data is to be erased by the caller. A destroyed version counts as
 * deleted (docs/vault-kv2.md §4.1), so one that was not deleted gets `deletedAt = now`.
 */
export function planDestroy(
  versions: readonly VersionState[],
  requested: readonly number[],
  now: number,
): VersionState[] {
  return namedUndestroyed(versions, requested, now).map((v) => ({
    ...v,
    destroyed: true,
    deletedAt: isDeleted(v, now) ? v.deletedAt : now,
  }));
}

/** Applies changed version states to a list (by version number), keeping the list's order. */
export function applyChanges(
  versions: readonly VersionState[],
  changes: readonly VersionState[],
): VersionState[] {
  const byVersion = new Map(changes.map((c) => [c.version, c]));
  return versions.map((v) => byVersion.get(v.version) ?? v);
}

/**
 * `updatedTime` after a delete, undelete or destroy: `now` when the operation changed
 * `currentVersion`, else unchanged (§6 "Derived after every operation").
 */
export function updatedTimeAfter(
  before: readonly VersionState[],
  after: readonly VersionState[],
  previous: number,
  now: number,
): number {
  return currentVersion(before, now) === currentVersion(after, now) ? previous : now;
}
