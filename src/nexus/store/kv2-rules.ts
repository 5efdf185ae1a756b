/**
 * The KV v2 rules both APIs' writes share (docs/vault-kv2.md §4.2–§4.4), as pure functions over
 * a stored record: the effective `max_versions` and trim with the `oldest_version` floor, the
 * `delete_version_after` deadline of a new version, and check-and-set.
 *
 * Times are epoch milliseconds. A version is deleted once `deletedAt ≤ now`
 * (src/core/kv/semantics.ts `isDeleted`).
 */

import { VAULT_ERRORS } from '../../api/vault/errors.ts';
import { SpikeError } from '../../core/errors.ts';
import { effectiveMaxVersions, type VersionState } from '../../core/kv/semantics.ts';
import type { SecretRecord } from './backend.ts';

/** The mount configuration (`secret/config`, §3), shared by both APIs. */
export interface MountConfig {
  /** 0 = unset (the store default applies). */
  readonly maxVersions: number;
  readonly casRequired: boolean;
  /** Milliseconds; 0 = unset, negative = the feature is disabled for every key. */
  readonly deleteVersionAfterMs: number;
}

/** A mount that was never configured. */
export const DEFAULT_MOUNT_CONFIG: MountConfig = Object.freeze({
  maxVersions: 0,
  casRequired: false,
  deleteVersionAfterMs: 0,
});

/** Effective max versions of a path (§4.2): max(key, mount), else `fallback`. */
export function maxVersionsOf(
  record: SecretRecord | undefined,
  mount: MountConfig,
  fallback: number,
): number {
  return effectiveMaxVersions(record?.head.maxVersions, mount.maxVersions, fallback);
}

/**
 * The `delete_version_after` that applies to a path (§4.3): `undefined` when the mount disables
 * the feature or neither value is set, else the smaller positive of mount and key.
 */
export function deleteAfterOf(
  record: SecretRecord | undefined,
  mount: MountConfig,
): number | undefined {
  if (mount.deleteVersionAfterMs < 0) return undefined;
  const candidates = [mount.deleteVersionAfterMs, record?.head.deleteVersionAfterMs ?? 0].filter(
    (d) => d > 0,
  );
  return candidates.length === 0 ? undefined : Math.min(...candidates);
}

/** What writing a new version changes (both APIs, §4.1 "never reused", §4.2, §4.3). */
export interface NewVersionPlan {
  readonly state: VersionState;
  /** Kept versions the trim erases (data and metadata). */
  readonly remove: number[];
  /** The new `oldest_version` when the write trims, else `undefined` (unchanged). */
  readonly oldestVersion: number | undefined;
}

/**
 * Plans a new version: number `latest + 1`, a scheduled deletion when `delete_version_after`
 * applies, and Vault's trim: when `latest − oldest_version ≥ max`, versions up to `latest − max`
 * go and the floor becomes `latest − max + 1`.
 */
export function planNewVersion(
  record: SecretRecord | undefined,
  mount: MountConfig,
  fallbackMax: number,
  now: number,
): NewVersionPlan {
  const version = (record?.head.latestVersion ?? 0) + 1;
  const after = deleteAfterOf(record, mount);
  const state: VersionState = {
    version,
    createdAt: now,
    deletedAt: after === undefined ? null : now + after,
    destroyed: false,
  };
  const max = maxVersionsOf(record, mount, fallbackMax);
  const oldest = record?.head.oldestVersion ?? 0;
  if (version - oldest < max) return { state, remove: [], oldestVersion: undefined };
  const cut = version - max;
  const remove = (record?.versions ?? []).map((v) => v.version).filter((n) => n <= cut);
  return { state, remove, oldestVersion: cut + 1 };
}

/**
 * Check-and-set (§4.4) for a data write or patch: `cas` must equal `latest` when given, and is
 * mandatory when the mount or the key requires it.
 *
 * @throws SpikeError `api_bad_request` with Vault's message.
 */
export function checkCas(
  record: SecretRecord | undefined,
  mount: MountConfig,
  cas: number | undefined,
): void {
  const required = mount.casRequired || record?.head.casRequired === true;
  if (cas === undefined) {
    if (required) throw new SpikeError('api_bad_request', VAULT_ERRORS.casRequired);
    return;
  }
  if (cas !== (record?.head.latestVersion ?? 0)) {
    throw new SpikeError('api_bad_request', VAULT_ERRORS.casMismatch);
  }
}

/** Vault's "deleted or destroyed" of a version (§3 read: 404 with metadata). */
export function isGone(v: VersionState, now: number): boolean {
  return v.destroyed || (v.deletedAt !== null && v.deletedAt <= now);
}
