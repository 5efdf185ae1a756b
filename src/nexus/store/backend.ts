/**
 * The storage port (docs/architecture.md decision 10): what a backend must do so that the shared
 * secrets and policy layers (secrets.ts, policies.ts) work on it unchanged.
 *
 * A backend stores rows and makes writes atomic; it knows nothing about encryption or the docs/spike-api.md §6
 * rules (src/core/kv/semantics.ts decides those). Data it holds is already sealed: `data`
 * columns are envelopes (docs/spike-api.md §9). The SQLite backend (sqlite.ts) and the in-memory one
 * (memory.ts) implement it, and so does the PostgreSQL one (postgres.ts), with `SELECT … FOR UPDATE`
 * in `updateSecret` where SQLite uses an in-process per-path lock plus `BEGIN IMMEDIATE`.
 *
 * Failures of the underlying database surface as `SpikeError('api_internal_error',
 * 'storage failure')` with no values in message or cause (errors.ts).
 */
import type { VersionState } from '../../core/kv/semantics.ts';
import type { ChangeBounds, ChangeEvent } from './change-log.ts';

/** The per-path record, without version data. */
export interface SecretHead {
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Highest version ever written; the next put writes this + 1. */
  readonly latestVersion: number;
  /** Incremented by the backend on every write of the path. */
  readonly revision: number;
  /** Per-key max versions set through the Vault-compatible API, else `null`. */
  readonly maxVersions: number | null;
  /** Per-key `cas_required` (docs/vault-kv2.md §4.4), else `null`. */
  readonly casRequired: boolean | null;
  /** Per-key `delete_version_after` in milliseconds (docs/vault-kv2.md §4.3), else `null`. */
  readonly deleteVersionAfterMs: number | null;
  /** Sealed `custom_metadata` map (docs/vault-kv2.md §4.5), AAD `secretMetaAad(path)`, else `null`. */
  readonly customMetadata: Uint8Array | null;
  /** Vault's retention floor `oldest_version` (docs/vault-kv2.md §4.2): 0 until the first trim. */
  readonly oldestVersion: number;
}

/** The Vault-only head fields (docs/vault-kv2.md §4.1); a write leaves an absent one as stored. */
export interface SecretHeadVaultWrite {
  readonly maxVersions?: number | null;
  readonly casRequired?: boolean | null;
  readonly deleteVersionAfterMs?: number | null;
  readonly customMetadata?: Uint8Array | null;
  readonly oldestVersion?: number;
}

/** The Vault head fields of a new path, before any write sets them. */
export const EMPTY_VAULT_HEAD = Object.freeze({
  maxVersions: null,
  casRequired: null,
  deleteVersionAfterMs: null,
  customMetadata: null,
  oldestVersion: 0,
}) satisfies Required<SecretHeadVaultWrite>;

/** `base` with the fields `write` sets (absent fields keep `base`'s value). */
export function mergeVaultHead(
  base: Required<SecretHeadVaultWrite>,
  write: SecretHeadVaultWrite,
): Required<SecretHeadVaultWrite> {
  return {
    maxVersions: write.maxVersions === undefined ? base.maxVersions : write.maxVersions,
    casRequired: write.casRequired === undefined ? base.casRequired : write.casRequired,
    deleteVersionAfterMs:
      write.deleteVersionAfterMs === undefined
        ? base.deleteVersionAfterMs
        : write.deleteVersionAfterMs,
    customMetadata: write.customMetadata === undefined ? base.customMetadata : write.customMetadata,
    oldestVersion: write.oldestVersion === undefined ? base.oldestVersion : write.oldestVersion,
  };
}

/** True when `write` sets any Vault head field. */
export function setsVaultHead(write: SecretHeadVaultWrite): boolean {
  return (
    write.maxVersions !== undefined ||
    write.casRequired !== undefined ||
    write.deleteVersionAfterMs !== undefined ||
    write.customMetadata !== undefined ||
    write.oldestVersion !== undefined
  );
}

export interface SecretRecord {
  readonly path: string;
  readonly head: SecretHead;
  /** Kept versions, ascending by number. */
  readonly versions: readonly VersionState[];
}

/** The head fields a write sets; absent Vault-only fields are left as stored. */
interface SecretHeadWrite extends SecretHeadVaultWrite {
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly latestVersion: number;
}

/** Everything one atomic write of a path changes. */
export interface SecretWrite {
  /** New head values; `null` removes the path with all its versions (purge). */
  readonly head: SecretHeadWrite | null;
  /** New versions and their sealed data. */
  readonly insert?: readonly { readonly state: VersionState; readonly data: Uint8Array }[];
  /** New states of existing versions; a state with `destroyed` also erases the data (NULL). */
  readonly update?: readonly VersionState[];
  /** Version numbers to remove from storage (pruning). */
  readonly remove?: readonly number[];
}

/** What an update plan decides: the write to apply (or `null` for none) and the caller's result. */
export interface SecretUpdate<T> {
  readonly write: SecretWrite | null;
  readonly result: T;
}

/** A plan sees the current record (`undefined` for a missing path) and decides the write. */
export type SecretPlan<T> = (
  record: SecretRecord | undefined,
) => SecretUpdate<T> | Promise<SecretUpdate<T>>;

/** A record read together with one version's sealed data. */
export interface SecretRead {
  readonly record: SecretRecord;
  /** `undefined` when no version was picked or it is gone; `null` when it was destroyed. */
  readonly data: Uint8Array | null | undefined;
}

export interface PolicyRow {
  readonly name: string;
  /** Sealed `{spiffeidPattern, pathPattern, permissions}`. */
  readonly data: Uint8Array;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface StoreBackend {
  readonly kind: 'sqlite' | 'memory' | 'postgres';

  /**
   * Reads a path's record and, when `pick` returns a version number, that version's data, as
   * one consistent snapshot. `undefined` for a missing path.
   */
  readSecret(
    path: string,
    pick?: (record: SecretRecord) => number | undefined,
  ): Promise<SecretRead | undefined>;

  /** Every stored path, sorted by code unit (byte order for the ASCII paths of §5). */
  listSecretPaths(): Promise<string[]>;

  /**
   * One atomic read-modify-write of a path: no other write of the path lands between the record
   * `plan` sees and the write it returns. What `plan` throws propagates and nothing is written.
   * A backend may call `plan` again after a conflict, so it must have no side effects.
   */
  updateSecret<T>(path: string, plan: SecretPlan<T>): Promise<T>;

  /** Inserts or replaces a policy's data; keeps `createdAt` of an existing row. */
  upsertPolicy(
    name: string,
    data: Uint8Array,
    now: number,
  ): Promise<{ createdAt: number; updatedAt: number }>;
  readPolicy(name: string): Promise<PolicyRow | undefined>;
  /** All policies sorted by name. */
  listPolicies(): Promise<PolicyRow[]>;
  /** False when there was no such policy. */
  deletePolicy(name: string): Promise<boolean>;

  /** The stored key-check value (docs/spike-api.md §9), or `undefined` before the first key. */
  getKcv(): string | undefined;
  /**
   * Stores the key-check value (plaintext by design); durable on return, or when the returned
   * promise resolves (PostgreSQL).
   */
  setKcv(kcv: string): void | Promise<void>;

  /** A plaintext store setting (e.g. the Vault mount configuration), `undefined` when unset. */
  getSetting(key: string): string | undefined;
  /** Stores a plaintext store setting, durable as `setKcv`. Never pass anything secret. */
  setSetting(key: string, value: string): void | Promise<void>;

  /**
   * The change log (./change-log.ts): up to `limit` entries numbered above `after`, ascending.
   * Every write above appends its entry in its own transaction.
   */
  readChanges(after: number, limit: number): Promise<ChangeEvent[]>;
  /** The log's bounds: the last number assigned and the oldest entry kept. */
  changeBounds(): Promise<ChangeBounds>;
  /** Removes the entries appended before `time` (epoch ms), keeping the last one (the head). */
  pruneChanges(time: number): Promise<void>;
  /** Calls `listener` after every commit that appended entries; returns the unsubscriber. */
  onCommit(listener: () => void): () => void;

  /** Releases the database; later calls fail. */
  close(): Promise<void>;
}
