/**
 * The types of the SDK's surface (src/sdk/client.ts): options, the client interface and the
 * shapes its calls return (docs/spike-api.md §4, §8, §9).
 */
import type { Permission, PolicyInput } from '../core/policy/validate.ts';
import type { Policy, SecretMetadata, SecretVersionInfo } from '../core/ports.ts';
import type { RestoreStatus } from '../core/shamir/restore-collector.ts';
import type { ShardEnvelope } from '../core/shamir/shards.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import type { WorkloadLogger } from '../runtime/workload/client.ts';
import type { WatchEvent, WatchOptions } from './watch.ts';

/** Bounded retry with jittered exponential backoff. */
export interface RetryOptions {
  /** Tries in all, first one included (1 = no retry). Default 5. */
  readonly attempts: number;
  /** First delay in milliseconds. Default 200. */
  readonly initialMs: number;
  /** Largest delay in milliseconds. Default 3000. */
  readonly maxMs: number;
}

/** Options of `createClient`; every one is optional. */
export interface ClientOptions {
  /** Workload API address (`unix:///path` or `tcp://IP:port`); default `SPIFFE_ENDPOINT_SOCKET`. */
  readonly socket?: string;
  /**
   * Nexus URL (`https://host:port`), or several replicas (an array, or one comma-separated
   * string) to fail over between (docs/spike-api.md §10.2); default
   * `SPIKE_NEXUS_API_URL`, else `https://localhost:8553`.
   */
  readonly apiUrl?: string | readonly string[];
  /** Per call, retries excluded; default `SPIKE_HTTP_CLIENT_TIMEOUT` (a Go duration), else 60 s. */
  readonly timeoutMs?: number;
  /** How long to wait for the first SVID; default `SPIKE_SPIFFE_SOURCE_TIMEOUT`, else 30 s. */
  readonly sourceTimeoutMs?: number;
  /** Retry policy (see the module header); `false` or `{ attempts: 1 }` disables retries. */
  readonly retry?: Partial<RetryOptions> | false;
  /**
   * An X.509 source to use instead of opening one on the Workload API. The caller keeps
   * ownership: `close()` does not close it.
   */
  readonly source?: X509Source;
  /** Trust domains whose `/spike/nexus` IDs are accepted; default `SPIKE_TRUST_ROOT_NEXUS`. */
  readonly nexusTrustDomains?: readonly string[];
  /** Where the Workload API connection logs its retries; default the console (warnings only). */
  readonly logger?: WorkloadLogger;
}

/** This client's own identity (its current X.509-SVID), without the private key. */
export interface ClientIdentity {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly expiresAt: Date;
  /** Leaf serial number, lowercase hex; changes on every rotation. */
  readonly serial: string;
  /** Certificates in the SVID chain (leaf plus intermediates). */
  readonly chainLength: number;
  /** The Workload API `hint`, `''` when absent. */
  readonly hint: string;
}

// The shapes the SDK shares with Nexus (src/core/ports.ts, src/core/policy/validate.ts): a policy
// to write and its permissions (docs/spike-api.md §7), a stored policy, a secret's metadata (§4).
export type { Permission, Policy, PolicyInput, SecretMetadata, SecretVersionInfo };

/** One row of `listPolicies` (`id` is always `''` on the wire; the name is the key). */
export interface PolicyListItem {
  readonly id: string;
  readonly name: string;
}

/** JSON-mode cipher text (docs/spike-api.md §8). */
export interface JsonCiphertext {
  readonly version: number;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/**
 * Per-call options of every SDK call. `signal` aborts the call: the request in flight is
 * cancelled, no retry follows, and the call rejects with `signal.reason` (an `AbortError`).
 */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** Options of the JSON-mode cipher calls (docs/spike-api.md §8). */
export interface CipherOptions {
  /** Ignored by Nexus, sent as given. */
  readonly algorithm?: string;
  /**
   * The context (§8 "Context"): a ciphertext made with one decrypts only with the same one.
   * Absent or empty = the shared cipher key (upstream's format, version 1).
   */
  readonly context?: Uint8Array;
}

/** What `replicaStatus` reports of one Nexus URL (`GET /ready`, docs/spike-api.md §12). */
export interface ReplicaStatus {
  readonly url: string;
  /** An answer arrived (over a verified mTLS connection). */
  readonly reachable: boolean;
  /** The answer was 200: this replica holds the root key. */
  readonly ready: boolean;
  /** `ready`, `not_ready` (503), `error` (another status) or `unreachable`. */
  readonly state: 'ready' | 'not_ready' | 'error' | 'unreachable';
  /** The HTTP status, when an answer arrived. */
  readonly status?: number;
  /** Why it was not reached: `net_peer_connection`, or an identity code such as `svid_unauthorized`. */
  readonly error?: string;
  /** The error's message (fixed text), when not reached. */
  readonly message?: string;
}

/** A SPIKE Nexus client. Not thread-bound; calls may run concurrently on the one session. */
export interface SpikeClient {
  /** The Nexus URL this client talks to now: the replica that answered last (else the first). */
  readonly apiUrl: string;
  /** Every Nexus URL of this client, in the configured order. */
  readonly apiUrls: readonly string[];
  /** Our own current SVID. @throws SpikeError `svid_invalid` when the SVIDs were withdrawn. */
  whoami(): ClientIdentity;
  /**
   * `GET /ready` (§12), one try per replica: true when one holds its root key, false when none
   * does but one answered 503. No retry. @throws `net_peer_connection` when none answered
   */
  ready(options?: CallOptions): Promise<boolean>;
  /** `GET /ready` at every replica at once, in the configured order. No retry; never throws. */
  replicaStatus(options?: CallOptions): Promise<ReplicaStatus[]>;

  /**
   * Reads a secret; version 0 or absent = current. With `ifNewerThan: N`, resolves to
   * `undefined` when that version is N or older (Nexus answers `{"notModified":true}` and sends
   * no data), and to `{ data }` otherwise. @throws `api_not_found`
   */
  getSecret(
    path: string,
    options: { version?: number; ifNewerThan: number } & CallOptions,
  ): Promise<{ data: Record<string, string> } | undefined>;
  getSecret(
    path: string,
    options?: { version?: number } & CallOptions,
  ): Promise<{ data: Record<string, string> }>;
  /** Writes a new version (upsert, §6). */
  putSecret(
    path: string,
    values: Readonly<Record<string, string>>,
    options?: CallOptions,
  ): Promise<void>;
  /** Soft-deletes versions; `[]` or absent = current, `0` = current. @throws `api_not_found` */
  deleteSecret(path: string, versions?: readonly number[], options?: CallOptions): Promise<void>;
  /** Restores soft-deleted versions. @throws `api_not_found` when nothing was undeleted */
  undeleteSecret(path: string, versions?: readonly number[], options?: CallOptions): Promise<void>;
  /** Erases the listed versions' data for good (ours, §6). @throws `api_not_found` */
  destroySecret(path: string, versions?: readonly number[], options?: CallOptions): Promise<void>;
  /** Removes the path, every version and its metadata (ours, §6). @throws `api_not_found` */
  purgeSecret(path: string, options?: CallOptions): Promise<void>;
  /** Every secret path, sorted. */
  listSecretKeys(options?: CallOptions): Promise<string[]>;
  /** Versions and metadata of a path. @throws `api_not_found` */
  getSecretMetadata(
    path: string,
    options?: { version?: number } & CallOptions,
  ): Promise<SecretMetadata>;

  /** Creates or replaces a policy (upsert by name, as upstream's `CreatePolicy`). */
  putPolicy(policy: PolicyInput, options?: CallOptions): Promise<void>;
  /** Same as `putPolicy` (upstream's name). */
  createPolicy(policy: PolicyInput, options?: CallOptions): Promise<void>;
  /** @throws `api_not_found` */
  getPolicy(name: string, options?: CallOptions): Promise<Policy>;
  /** All policies by name, or those whose pattern equals the filter exactly (§4). */
  listPolicies(
    filter?: { spiffeIdPattern?: string; pathPattern?: string },
    options?: CallOptions,
  ): Promise<PolicyListItem[]>;
  /** @throws `api_not_found` */
  deletePolicy(name: string, options?: CallOptions): Promise<void>;

  /** Stream-mode encryption: `0x01 ‖ nonce ‖ ciphertext ‖ tag` (§8). */
  encrypt(plaintext: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /** Stream-mode decryption. @throws `crypto_*` codes for a malformed or forged input */
  decrypt(ciphertext: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /** JSON-mode encryption; the result feeds `decryptJson` unchanged. */
  encryptJson(
    plaintext: Uint8Array,
    options?: CipherOptions & CallOptions,
  ): Promise<JsonCiphertext>;
  /** JSON-mode decryption. A forged ciphertext answers 500 (`net_peer_connection`) [U]. */
  decryptJson(input: JsonCiphertext, options?: CipherOptions & CallOptions): Promise<Uint8Array>;

  /** The current recovery shards (recover role, §9). */
  recover(options?: CallOptions): Promise<ShardEnvelope[]>;
  /**
   * Feeds one recovery shard to Nexus (restore role, §9): an envelope or a recovery-file line.
   * @throws SpikeError `api_bad_request` (`invalid shard format`) before any call for a bad line
   */
  restore(shard: ShardEnvelope | string, options?: CallOptions): Promise<RestoreStatus>;
  /**
   * Discards the shards Nexus collected so far (restore role, §9 `?action=reset`) [Ours], e.g.
   * after feeding a shard of another generation.
   */
  resetRestore(options?: CallOptions): Promise<RestoreStatus>;

  /**
   * The whole store (every path, version and policy) as one age file, encrypted by Nexus to an
   * age recipient or under a passphrase (superuser; docs/backup.md §2).
   */
  exportStore(
    to: { readonly recipient: string } | { readonly passphrase: string },
    options?: CallOptions,
  ): Promise<Uint8Array>;
  /**
   * Loads a decrypted export document (superuser; docs/backup.md §3). Without `replace`, a store
   * that holds anything is refused (`api_bad_request`).
   */
  importStore(
    document: Uint8Array,
    options?: { readonly replace?: boolean } & CallOptions,
  ): Promise<ImportSummary>;
  /** An online image of the SQLite database (superuser; docs/backup.md §4). */
  snapshot(options?: CallOptions): Promise<Uint8Array>;

  /**
   * The change events under a path prefix (`''` = everything this identity may read), as an
   * async iterator that resumes by itself across reconnections (src/sdk/watch.ts). Ends cleanly
   * when `options.signal` aborts.
   */
  watch(prefix: string, options?: WatchOptions): AsyncGenerator<WatchEvent, void, undefined>;

  /** Closes the session and, if the client opened it, the Workload API source. */
  close(): Promise<void>;
}

/** What an import wrote (docs/backup.md §3). */
export interface ImportSummary {
  readonly secrets: number;
  readonly versions: number;
  readonly policies: number;
}
