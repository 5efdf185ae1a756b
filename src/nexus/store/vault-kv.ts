/**
 * The Vault KV v2 view of the secrets store (spec/vault-kv2.md §4): the same per-path records the
 * SPIKE API reads and writes (./secrets.ts), with Vault's notion of "latest", deletion, destroy,
 * check-and-set, per-key metadata and the mount configuration.
 *
 * Values are sealed exactly as SPIKE's (`secretAad(path, version)`); `custom_metadata` is sealed
 * with `secretMetaAad(path)`. The mount configuration holds no secret and is kept as a plaintext
 * store setting. Every write is one atomic `updateSecret` plan, so a check-and-set, a patch's
 * read-merge-write and a trim never interleave with another write of the path.
 *
 * Failures are `SpikeError`: `api_bad_request` with Vault's message (CAS, custom_metadata),
 * `state_not_ready` without a root key, `api_internal_error` for storage and decryption faults.
 */

import { VAULT_WARNINGS } from '../../api/vault/errors.ts';
import { validateCustomMetadata } from '../../api/vault/fields.ts';
import { utf8, zero } from '../../core/bytes.ts';
import { open, seal, secretAad, secretMetaAad } from '../../core/crypto/envelope.ts';
import { SpikeError } from '../../core/errors.ts';
import { applyChanges, updatedTimeAfter, type VersionState } from '../../core/kv/semantics.ts';
import type { RootKeyProvider } from '../domain.ts';
import type { SecretRecord, SecretUpdate, StoreBackend } from './backend.ts';
import {
  checkCas,
  DEFAULT_MOUNT_CONFIG,
  deleteAfterOf,
  isGone,
  type MountConfig,
  planNewVersion,
} from './kv2-rules.ts';
import { type Clock, storageKey } from './secrets.ts';

/** One version as Vault shows it. */
export type KvVersion = VersionState;

/** `secret/metadata/:path` (§3 Read metadata); per-key values, 0/false when unset. */
export interface KvMetadata {
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Vault's `current_version`: the highest version ever written. */
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly maxVersions: number;
  readonly casRequired: boolean;
  readonly deleteVersionAfterMs: number;
  readonly customMetadata: Readonly<Record<string, string>> | null;
  readonly versions: readonly KvVersion[];
}

/** A data read: the version (if it exists) and its data (`null` when deleted or destroyed). */
export interface KvRead {
  readonly meta: KvMetadata;
  readonly version: KvVersion | undefined;
  readonly data: Record<string, unknown> | null;
}

export interface KvWriteResult {
  readonly meta: KvMetadata;
  readonly version: KvVersion;
}

/** A patch: written; no key or no such version (`absent`); latest deleted or destroyed. */
export type KvPatchResult =
  | ({ readonly kind: 'written' } & KvWriteResult)
  | { readonly kind: 'absent' }
  | { readonly kind: 'gone'; readonly read: KvRead };

/** Fields of a metadata write; in a patch a `null` custom_metadata value removes that key. */
export interface KvMetadataInput {
  readonly maxVersions?: number;
  readonly casRequired?: boolean;
  readonly deleteVersionAfterMs?: number;
  readonly customMetadata?: Readonly<Record<string, string | null>>;
}

/** The Vault KV v2 operations of §3 over the shared store. */
export interface VaultKv {
  config(): MountConfig;
  configure(input: Partial<MountConfig>): void;
  /** `version` 0 = latest. `undefined`: no key; `version` undefined: no such version. */
  read(path: string, version: number): Promise<KvRead | undefined>;
  write(path: string, data: Record<string, unknown>, cas?: number): Promise<KvWriteResult>;
  patch(path: string, patch: Record<string, unknown>, cas?: number): Promise<KvPatchResult>;
  deleteLatest(path: string): Promise<void>;
  deleteVersions(path: string, versions: readonly number[]): Promise<void>;
  undelete(path: string, versions: readonly number[]): Promise<void>;
  destroy(path: string, versions: readonly number[]): Promise<void>;
  metadata(path: string): Promise<KvMetadata | undefined>;
  /** Returns `found: false` (and changes nothing) for a patch of an absent path. */
  writeMetadata(
    path: string,
    input: KvMetadataInput,
    mode: 'write' | 'patch',
  ): Promise<{ found: boolean; warnings: string[] }>;
  deleteMetadata(path: string): Promise<void>;
  /** Every stored path, sorted. */
  list(): Promise<string[]>;
}

/** The store setting that holds the mount configuration (plaintext JSON). */
export const MOUNT_CONFIG_SETTING = 'vault_mount_config';

/** The mount configuration, read once from the store and written through. */
export interface MountConfigStore {
  get(): MountConfig;
  set(config: MountConfig): void;
}

function parseMountConfig(text: string | undefined): MountConfig {
  if (text === undefined) return DEFAULT_MOUNT_CONFIG;
  try {
    const v = JSON.parse(text) as Partial<Record<keyof MountConfig, unknown>>;
    const int = (x: unknown) => (Number.isSafeInteger(x) ? (x as number) : 0);
    return {
      maxVersions: Math.max(0, int(v.maxVersions)),
      casRequired: v.casRequired === true,
      deleteVersionAfterMs: int(v.deleteVersionAfterMs),
    };
  } catch {
    return DEFAULT_MOUNT_CONFIG;
  }
}

/** Creates the mount configuration store of a backend. */
export function createMountConfigStore(
  backend: Pick<StoreBackend, 'getSetting' | 'setSetting'>,
): MountConfigStore {
  let cached: MountConfig | undefined;
  return {
    get() {
      cached ??= parseMountConfig(backend.getSetting(MOUNT_CONFIG_SETTING));
      return cached;
    },
    set(config) {
      backend.setSetting(MOUNT_CONFIG_SETTING, JSON.stringify(config));
      cached = { ...config };
    },
  };
}

export interface VaultKvOptions {
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`. */
  readonly maxVersions: number;
  readonly clock: Clock;
  readonly mount: MountConfigStore;
}

function parseObject(text: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(text));
  } catch {
    throw new SpikeError('api_internal_error', 'corrupt record');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new SpikeError('api_internal_error', 'corrupt record');
  }
  return v as Record<string, unknown>;
}

/** Sets `key` as an own property (also `__proto__`), never through a setter. */
function defineOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** RFC 7386 JSON merge patch (§3 Patch): `null` removes a key, objects merge, the rest replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const base =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? (target as Record<string, unknown>)
      : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) defineOwn(out, k, v);
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else defineOwn(out, k, mergePatch(out[k], v));
  }
  return out;
}

function versionUpdate(
  record: SecretRecord,
  changes: readonly VersionState[],
  now: number,
): SecretUpdate<void> {
  if (changes.length === 0) return { write: null, result: undefined };
  const after = applyChanges(record.versions, changes);
  return {
    write: {
      head: {
        createdAt: record.head.createdAt,
        updatedAt: updatedTimeAfter(record.versions, after, record.head.updatedAt, now),
        latestVersion: record.head.latestVersion,
      },
      update: changes,
    },
    result: undefined,
  };
}

/** Version numbers a request names, without duplicates, that exist in the record. */
function named(record: SecretRecord, versions: readonly number[]): VersionState[] {
  const wanted = new Set(versions);
  return record.versions.filter((v) => wanted.has(v.version));
}

/** Creates the Vault view over `backend` (same records as `createSecrets`). */
export function createVaultKv(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  options: VaultKvOptions,
): VaultKv {
  const { clock, mount } = options;

  async function customOf(key: CryptoKey, record: SecretRecord) {
    const sealed = record.head.customMetadata;
    if (sealed === null) return null;
    const plain = await open(key, sealed, secretMetaAad(record.path));
    try {
      return parseObject(plain) as Record<string, string>;
    } finally {
      zero(plain);
    }
  }

  async function metaOf(key: CryptoKey, record: SecretRecord): Promise<KvMetadata> {
    const { head } = record;
    return {
      createdAt: head.createdAt,
      updatedAt: head.updatedAt,
      currentVersion: head.latestVersion,
      oldestVersion: head.oldestVersion,
      maxVersions: head.maxVersions ?? 0,
      casRequired: head.casRequired === true,
      deleteVersionAfterMs: head.deleteVersionAfterMs ?? 0,
      customMetadata: await customOf(key, record),
      versions: record.versions,
    };
  }

  async function openData(key: CryptoKey, path: string, version: number, data: Uint8Array) {
    const plain = await open(key, data, secretAad(path, version));
    try {
      return parseObject(plain);
    } finally {
      zero(plain);
    }
  }

  async function sealCustom(key: CryptoKey, path: string, map: Record<string, string>) {
    if (Object.keys(map).length === 0) return null;
    return seal(key, utf8.encode(JSON.stringify(map)), secretMetaAad(path));
  }

  /** One version write (data already merged), with check-and-set; the caller's plan. */
  async function planWrite(
    key: CryptoKey,
    path: string,
    record: SecretRecord | undefined,
    data: Record<string, unknown>,
  ): Promise<SecretUpdate<VersionState>> {
    const now = clock();
    const plan = planNewVersion(record, mount.get(), options.maxVersions, now);
    const plaintext = utf8.encode(JSON.stringify(data));
    try {
      const sealed = await seal(key, plaintext, secretAad(path, plan.state.version));
      return {
        write: {
          head: {
            createdAt: record?.head.createdAt ?? now,
            updatedAt: now,
            latestVersion: plan.state.version,
            ...(plan.oldestVersion === undefined ? {} : { oldestVersion: plan.oldestVersion }),
          },
          insert: [{ state: plan.state, data: sealed }],
          remove: plan.remove,
        },
        result: plan.state,
      };
    } finally {
      zero(plaintext);
    }
  }

  async function afterWrite(key: CryptoKey, path: string, version: VersionState) {
    const read = await backend.readSecret(path);
    if (read === undefined) throw new SpikeError('api_internal_error', 'storage conflict');
    return { meta: await metaOf(key, read.record), version };
  }

  async function read(path: string, version: number): Promise<KvRead | undefined> {
    const key = storageKey(keys);
    const now = clock();
    const target = (record: SecretRecord) =>
      record.versions.find(
        (v) => v.version === (version === 0 ? record.head.latestVersion : version),
      );
    const read = await backend.readSecret(path, (record) => {
      const v = target(record);
      return v === undefined || isGone(v, now) ? undefined : v.version;
    });
    if (read === undefined) return undefined;
    const meta = await metaOf(key, read.record);
    const v = target(read.record);
    if (v === undefined) return { meta, version: undefined, data: null };
    if (isGone(v, now) || read.data === undefined || read.data === null) {
      return { meta, version: v, data: null };
    }
    return { meta, version: v, data: await openData(key, path, v.version, read.data) };
  }

  return {
    config: () => mount.get(),

    configure(input) {
      mount.set({ ...mount.get(), ...input });
    },

    read,

    async write(path, data, cas) {
      const key = storageKey(keys);
      const version = await backend.updateSecret(path, (record) => {
        checkCas(record, mount.get(), cas);
        return planWrite(key, path, record, data);
      });
      return afterWrite(key, path, version);
    },

    async patch(path, patch, cas) {
      const key = storageKey(keys);
      const now = clock();
      type Outcome = { kind: 'absent' } | { kind: 'gone' } | { kind: 'written'; v: VersionState };
      const outcome = await backend.updateSecret<Outcome>(path, async (record) => {
        if (record === undefined || record.head.latestVersion === 0) {
          return { write: null, result: { kind: 'absent' } };
        }
        checkCas(record, mount.get(), cas);
        const latest = record.head.latestVersion;
        const v = record.versions.find((x) => x.version === latest);
        if (v === undefined) return { write: null, result: { kind: 'absent' } };
        if (isGone(v, now)) return { write: null, result: { kind: 'gone' } };
        const current = await backend.readSecret(path, () => latest);
        if (current?.data === undefined || current.data === null) {
          return { write: null, result: { kind: 'gone' } };
        }
        const merged = mergePatch(await openData(key, path, latest, current.data), patch);
        const update = await planWrite(key, path, record, merged as Record<string, unknown>);
        return { write: update.write, result: { kind: 'written', v: update.result } };
      });
      if (outcome.kind === 'absent') return { kind: 'absent' };
      if (outcome.kind === 'gone') {
        const gone = await read(path, 0);
        return gone === undefined ? { kind: 'absent' } : { kind: 'gone', read: gone };
      }
      return { kind: 'written', ...(await afterWrite(key, path, outcome.v)) };
    },

    async deleteLatest(path) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        const now = clock();
        if (record === undefined) return { write: null, result: undefined };
        const v = record.versions.find((x) => x.version === record.head.latestVersion);
        if (v === undefined || isGone(v, now)) return { write: null, result: undefined };
        return versionUpdate(record, [{ ...v, deletedAt: now }], now);
      });
    },

    async deleteVersions(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        const now = clock();
        if (record === undefined) return { write: null, result: undefined };
        const changes = named(record, versions)
          .filter((v) => !isGone(v, now))
          .map((v) => ({ ...v, deletedAt: now }));
        return versionUpdate(record, changes, now);
      });
    },

    async undelete(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        const now = clock();
        if (record === undefined) return { write: null, result: undefined };
        const after = deleteAfterOf(record, mount.get());
        const deletedAt = after === undefined ? null : now + after;
        const changes = named(record, versions)
          .filter((v) => !v.destroyed)
          .map((v) => ({ ...v, deletedAt }));
        return versionUpdate(record, changes, now);
      });
    },

    async destroy(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        const now = clock();
        if (record === undefined) return { write: null, result: undefined };
        const changes = named(record, versions)
          .filter((v) => !v.destroyed)
          .map((v) => ({ ...v, destroyed: true }));
        return versionUpdate(record, changes, now);
      });
    },

    async metadata(path) {
      const key = storageKey(keys);
      const read = await backend.readSecret(path);
      return read === undefined ? undefined : metaOf(key, read.record);
    },

    async writeMetadata(path, input, mode) {
      const key = storageKey(keys);
      const warnings: string[] = [];
      if (input.casRequired === false && mount.get().casRequired) {
        warnings.push(VAULT_WARNINGS.casIgnored);
      }
      const found = await backend.updateSecret(path, async (record) => {
        if (record === undefined && mode === 'patch') return { write: null, result: false };
        const now = clock();
        let customMetadata: Uint8Array | null | undefined;
        if (input.customMetadata !== undefined) {
          const base =
            mode === 'patch' && record !== undefined ? await customOf(key, record) : null;
          const next = mergePatch(base ?? {}, input.customMetadata) as Record<string, string>;
          validateCustomMetadata(next);
          customMetadata = await sealCustom(key, path, next);
        }
        return {
          write: {
            head: {
              createdAt: record?.head.createdAt ?? now,
              updatedAt: now,
              latestVersion: record?.head.latestVersion ?? 0,
              ...(input.maxVersions === undefined ? {} : { maxVersions: input.maxVersions }),
              ...(input.casRequired === undefined ? {} : { casRequired: input.casRequired }),
              ...(input.deleteVersionAfterMs === undefined
                ? {}
                : { deleteVersionAfterMs: input.deleteVersionAfterMs }),
              ...(customMetadata === undefined ? {} : { customMetadata }),
            },
          },
          result: true,
        };
      });
      return { found, warnings: found ? warnings : [] };
    },

    async deleteMetadata(path) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => ({
        write: record === undefined ? null : { head: null },
        result: undefined,
      }));
    },

    async list() {
      storageKey(keys);
      return backend.listSecretPaths();
    },
  };
}
