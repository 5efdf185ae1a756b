/**
 * The Vault KV v2 view of the secrets store (docs/vault-kv2.md §4): the same per-path records the
 * SPIKE API reads and writes (./secrets.ts), with Vault's notion of "latest", deletion, destroy,
 * check-and-set, per-key metadata and the mount configuration (./mount-config.ts).
 *
 * Values are sealed exactly as SPIKE's (`secretAad(path, version)`); `custom_metadata` is sealed
 * with `secretMetaAad(path)`. Every write is one atomic `updateSecret` plan, so a check-and-set,
 * a patch's read-merge-write and a trim never interleave with another write of the path.
 *
 * Failures are `SpikeError`: `api_bad_request` with Vault's message (CAS, custom_metadata),
 * `state_not_ready` without a root key, `api_internal_error` for storage and decryption faults.
 */
import { VAULT_WARNINGS } from '../../api/vault/errors.ts';
import { validateCustomMetadata } from '../../api/vault/fields.ts';
import type { VersionState } from '../../core/kv/semantics.ts';
import type { EpochClock, RootKeyProvider } from '../../core/ports.ts';
import type { SecretRecord, StoreBackend } from './backend.ts';
import { deleteAfterOf, isGone, type MountConfig } from './kv2-rules.ts';
import type { MountConfigStore } from './mount-config.ts';
import { storageKey, versionUpdate } from './secrets.ts';
import {
  customOf,
  type KvContext,
  type KvMetadata,
  type KvPatchResult,
  type KvRead,
  type KvWriteResult,
  mergePatch,
  metaOf,
  patchVersion,
  readVersion,
  sealCustom,
  writeVersion,
} from './vault-kv-data.ts';

export { createMountConfigStore } from './mount-config.ts';
export type {
  KvMetadata,
  KvRead,
  KvVersion,
} from './vault-kv-data.ts';

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
  configure(input: Partial<MountConfig>): Promise<void>;
  /** `version` 0 = latest. `undefined`: no key; `version` undefined: no such version. */
  read(path: string, version: number): Promise<KvRead | undefined>;
  write(path: string, data: Record<string, unknown>, cas?: number): Promise<KvWriteResult>;
  patch(path: string, patch: Record<string, unknown>, cas?: number): Promise<KvPatchResult>;
  /** Deletes the latest version unless it is already deleted or destroyed (no-op then). */
  deleteLatest(path: string): Promise<void>;
  /** Skips missing, destroyed and already deleted versions. */
  deleteVersions(path: string, versions: readonly number[]): Promise<void>;
  /** Clears (or re-arms, §4.3) `deletion_time`; skips destroyed versions. */
  undelete(path: string, versions: readonly number[]): Promise<void>;
  /** Marks versions destroyed and erases their data. */
  destroy(path: string, versions: readonly number[]): Promise<void>;
  metadata(path: string): Promise<KvMetadata | undefined>;
  /** Returns `found: false` (and changes nothing) for a patch of an absent path. */
  writeMetadata(
    path: string,
    input: KvMetadataInput,
    mode: 'write' | 'patch',
  ): Promise<{ found: boolean; warnings: string[] }>;
  /** Removes every version and the metadata; a no-op for an absent path. */
  deleteMetadata(path: string): Promise<void>;
  /** Every stored path, sorted. */
  list(): Promise<string[]>;
}

export interface VaultKvOptions {
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`. */
  readonly maxVersions: number;
  readonly clock: EpochClock;
  readonly mount: MountConfigStore;
}

/** Applies the version states `select` returns (none: no write), keeping the head. */
async function updateVersions(
  ctx: KvContext,
  path: string,
  select: (record: SecretRecord, now: number) => VersionState[],
): Promise<void> {
  storageKey(ctx.keys);
  await ctx.backend.updateSecret(path, (record) => {
    if (record === undefined) return { write: null, result: undefined };
    const now = ctx.clock();
    return versionUpdate(record, select(record, now), now);
  });
}

/** The existing versions a request names. */
function named(record: SecretRecord, versions: readonly number[]): VersionState[] {
  const wanted = new Set(versions);
  return record.versions.filter((v) => wanted.has(v.version));
}

/** Metadata write or patch (§3): only given fields change; creates the record on write. */
async function writeMetadata(
  ctx: KvContext,
  path: string,
  input: KvMetadataInput,
  mode: 'write' | 'patch',
): Promise<{ found: boolean; warnings: string[] }> {
  const key = storageKey(ctx.keys);
  const warnings: string[] = [];
  if (input.casRequired === false && ctx.mount.get().casRequired) {
    warnings.push(VAULT_WARNINGS.casIgnored);
  }
  const found = await ctx.backend.updateSecret(path, async (record) => {
    if (record === undefined && mode === 'patch') return { write: null, result: false };
    const now = ctx.clock();
    let customMetadata: Uint8Array | null | undefined;
    if (input.customMetadata !== undefined) {
      const base = mode === 'patch' && record !== undefined ? await customOf(key, record) : null;
      const next = mergePatch(base ?? {}, input.customMetadata) as Record<string, string>;
      validateCustomMetadata(next);
      customMetadata = await sealCustom(key, path, next);
    }
    const { maxVersions, casRequired, deleteVersionAfterMs } = input;
    return {
      write: {
        head: {
          createdAt: record?.head.createdAt ?? now,
          updatedAt: now,
          latestVersion: record?.head.latestVersion ?? 0,
          ...(maxVersions === undefined ? {} : { maxVersions }),
          ...(casRequired === undefined ? {} : { casRequired }),
          ...(deleteVersionAfterMs === undefined ? {} : { deleteVersionAfterMs }),
          ...(customMetadata === undefined ? {} : { customMetadata }),
        },
      },
      result: true,
    };
  });
  return { found, warnings: found ? warnings : [] };
}

/** Creates the Vault view over `backend` (same records as `createSecrets`). */
export function createVaultKv(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  options: VaultKvOptions,
): VaultKv {
  const ctx: KvContext = { backend, keys, ...options };
  const { mount } = options;
  return {
    config: () => mount.get(),
    configure: (input) => mount.set({ ...mount.get(), ...input }),
    read: (path, version) => readVersion(ctx, path, version),
    write: (path, data, cas) => writeVersion(ctx, path, data, cas),
    patch: (path, patch, cas) => patchVersion(ctx, path, patch, cas),
    deleteLatest: (path) =>
      updateVersions(ctx, path, (record, now) => {
        const v = record.versions.find((x) => x.version === record.head.latestVersion);
        return v === undefined || isGone(v, now) ? [] : [{ ...v, deletedAt: now }];
      }),
    deleteVersions: (path, versions) =>
      updateVersions(ctx, path, (record, now) =>
        named(record, versions)
          .filter((v) => !isGone(v, now))
          .map((v) => ({ ...v, deletedAt: now })),
      ),
    undelete: (path, versions) =>
      updateVersions(ctx, path, (record, now) => {
        const after = deleteAfterOf(record, mount.get());
        const deletedAt = after === undefined ? null : now + after;
        return named(record, versions)
          .filter((v) => !v.destroyed)
          .map((v) => ({ ...v, deletedAt }));
      }),
    destroy: (path, versions) =>
      updateVersions(ctx, path, (record) =>
        named(record, versions)
          .filter((v) => !v.destroyed)
          .map((v) => ({ ...v, destroyed: true })),
      ),
    async metadata(path) {
      const key = storageKey(keys);
      const read = await backend.readSecret(path);
      return read === undefined ? undefined : metaOf(key, read.record);
    },
    writeMetadata: (path, input, mode) => writeMetadata(ctx, path, input, mode),
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
