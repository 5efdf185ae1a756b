/**
 * The ports: the interfaces at which Nexus's layers meet, declared once. The HTTP
 * layer asks storage and keys for what these describe; src/nexus/store and
 * src/nexus/root-key implement them; the policy engine and the SDK reuse the shapes.
 *
 * Semantics are those of docs/spike-api.md §6 (secrets), §7 (policies) and §9 (keys).
 * Implementations throw `SpikeError` with wire codes: `api_not_found` for missing paths, versions
 * and policies, `api_bad_request` for invalid input, `api_internal_error` for storage faults and
 * failed decryption (with a fixed message). Nothing here knows an HTTP status (docs/style.md rule 6).
 *
 * Portable: types only, no runtime APIs.
 */
import type { PolicyInput } from './policy/validate.ts';

/** Wall-clock time as a `Date` (audit and log timestamps). */
export type Clock = () => Date;

/** Wall-clock time in epoch milliseconds (stored timestamps). */
export type EpochClock = () => number;

/** Purpose keys derived from the root key with HKDF-SHA-256 (docs/spike-api.md §9). */
export interface DerivedKeys {
  /** AES-256-GCM, data at rest (`spike/v1/storage`). */
  readonly storage: CryptoKey;
  /** AES-256-GCM, encryption as a service (`spike/v1/cipher`). */
  readonly cipher: CryptoKey;
  /**
   * The same cipher key bytes as an HKDF key: the base of the per-context keys of
   * `/v1/cipher/*` (docs/spike-api.md §8 "Context").
   */
  readonly cipherContext: CryptoKey;
  /** AES-256-GCM, `/v1/bootstrap/verify` (`spike/v1/bootstrap-verify`). */
  readonly bootstrapVerify: CryptoKey;
  /** Key-check value: 32 lowercase hex characters (`spike/v1/key-check`). */
  readonly kcv: string;
}

/**
 * Where Nexus gets its root key (docs/architecture.md, "The flows that matter"). The memory backend
 * holds a random key from the start; the SQLite backend is not ready until the Keepers (or an
 * operator restore) supply one.
 */
export interface RootKeyProvider {
  /** The derived keys, or `undefined` while Nexus is not ready (`503 state_not_ready`). */
  keys(): DerivedKeys | undefined;
}

/** One kept version of a secret (docs/spike-api.md §4 "Metadata 200 body"). */
export interface SecretVersionInfo {
  readonly version: number;
  readonly createdTime: Date;
  /** `null` while the version is live. */
  readonly deletedTime: Date | null;
  /**
   * True once `destroy` erased the version's data for good. The store always sets it; the wire
   * does not carry it, so the SDK leaves it out.
   */
  readonly destroyed?: boolean;
}

/** A secret's metadata (docs/spike-api.md §4 "Metadata 200 body", §6). */
export interface SecretMetadata {
  /** All kept versions, deleted and destroyed ones included, ascending by version. */
  readonly versions: readonly SecretVersionInfo[];
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly createdTime: Date;
  readonly updatedTime: Date;
  readonly maxVersions: number;
}

/** Versioned key-value secrets (docs/spike-api.md §6). */
export interface Secrets {
  /** Upsert: writes version = highest ever written + 1, prunes to max versions; returns it. */
  put(path: string, values: Readonly<Record<string, string>>): Promise<{ version: number }>;
  /** Version 0 or absent = current. Missing path, version or non-live version → `api_not_found`. */
  get(path: string, version?: number): Promise<Record<string, string>>;
  /**
   * `get` with the version read. With `ifNewerThan`, a version ≤ it is answered without data
   * (nothing decrypted): the conditional read of docs/spike-api.md "Watch".
   */
  getVersioned(
    path: string,
    version?: number,
    ifNewerThan?: number,
  ): Promise<{ version: number; data?: Record<string, string> }>;
  /** `[]` = current; `0` = current. Missing path → `api_not_found`. */
  delete(path: string, versions: readonly number[]): Promise<void>;
  /** Missing path, or nothing undeleted → `api_not_found`. */
  undelete(path: string, versions: readonly number[]): Promise<void>;
  /** Erase the listed versions' data for good. Missing path → `api_not_found`. */
  destroy(path: string, versions: readonly number[]): Promise<void>;
  /** Remove the path with all versions and metadata. Missing path → `api_not_found`. */
  purge(path: string): Promise<void>;
  /** Every path with metadata, sorted. */
  list(): Promise<string[]>;
  /** Same 404 rules as `get` for the requested version. */
  metadata(path: string, version?: number): Promise<SecretMetadata>;
}

/** A stored policy (docs/spike-api.md §7). */
export interface Policy extends PolicyInput {
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * Stored policies (encrypted at rest). Validation and compilation live in the policy engine
 * (src/core/policy/engine.ts), which reads and writes through this port.
 */
export interface PolicyStore {
  /** Upsert by name; keeps `createdAt` of an existing policy. */
  upsert(policy: PolicyInput): Promise<Policy>;
  /** Missing name → `api_not_found`. */
  get(name: string): Promise<Policy>;
  /** All policies, sorted by name. */
  list(): Promise<Policy[]>;
  /** Missing name → `api_not_found`. */
  delete(name: string): Promise<void>;
}
