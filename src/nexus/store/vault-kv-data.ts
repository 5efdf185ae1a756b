/**
 * Reading, writing and patching versions in the Vault view (docs/vault-kv2.md §3, §4): decryption of
 * values and `custom_metadata`, the metadata object, and the version write both data writes and
 * patches plan (check-and-set, trim, scheduled deletion). Used by ./vault-kv.ts.
 */
import { utf8, zero } from '../../core/bytes.ts';
import { open, seal, secretAad, secretMetaAad } from '../../core/crypto/envelope.ts';
import { SpikeError } from '../../core/errors.ts';
import type { VersionState } from '../../core/kv/semantics.ts';
import type { EpochClock, RootKeyProvider } from '../../core/ports.ts';
import type { SecretRecord, SecretUpdate, StoreBackend } from './backend.ts';
import { checkCas, isGone, planNewVersion } from './kv2-rules.ts';
import type { MountConfigStore } from './mount-config.ts';
import { storageKey } from './secrets.ts';

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

/** What every operation of the view works with. */
export interface KvContext {
  readonly backend: StoreBackend;
  readonly keys: Pick<RootKeyProvider, 'keys'>;
  readonly clock: EpochClock;
  readonly mount: MountConfigStore;
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS`. */
  readonly maxVersions: number;
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

/** The decrypted `custom_metadata` of a record, `null` when none. */
export async function customOf(key: CryptoKey, record: SecretRecord) {
  const sealed = record.head.customMetadata;
  if (sealed === null) return null;
  const plain = await open(key, sealed, secretMetaAad(record.path));
  try {
    return parseObject(plain) as Record<string, string>;
  } finally {
    zero(plain);
  }
}

/** Seals a `custom_metadata` map; an empty map is stored as none. */
export async function sealCustom(key: CryptoKey, path: string, map: Record<string, string>) {
  if (Object.keys(map).length === 0) return null;
  return seal(key, utf8.encode(JSON.stringify(map)), secretMetaAad(path));
}

/** The metadata object of a record. */
export async function metaOf(key: CryptoKey, record: SecretRecord): Promise<KvMetadata> {
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

/** The plan of one version write (data already merged): number, trim, scheduled deletion. */
async function planWrite(
  ctx: KvContext,
  key: CryptoKey,
  path: string,
  record: SecretRecord | undefined,
  data: Record<string, unknown>,
): Promise<SecretUpdate<VersionState>> {
  const now = ctx.clock();
  const plan = planNewVersion(record, ctx.mount.get(), ctx.maxVersions, now);
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

async function afterWrite(ctx: KvContext, key: CryptoKey, path: string, version: VersionState) {
  const read = await ctx.backend.readSecret(path);
  if (read === undefined) throw new SpikeError('api_internal_error', 'storage conflict');
  return { meta: await metaOf(key, read.record), version };
}

/** `version` 0 = latest. `undefined`: no key; `version` undefined: no such version. */
export async function readVersion(
  ctx: KvContext,
  path: string,
  version: number,
): Promise<KvRead | undefined> {
  const key = storageKey(ctx.keys);
  const now = ctx.clock();
  const target = (record: SecretRecord) =>
    record.versions.find(
      (v) => v.version === (version === 0 ? record.head.latestVersion : version),
    );
  const read = await ctx.backend.readSecret(path, (record) => {
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

/** A data write with check-and-set (§3 Create/update, §4.4). */
export async function writeVersion(
  ctx: KvContext,
  path: string,
  data: Record<string, unknown>,
  cas: number | undefined,
): Promise<KvWriteResult> {
  const key = storageKey(ctx.keys);
  const version = await ctx.backend.updateSecret(path, (record) => {
    checkCas(record, ctx.mount.get(), cas);
    return planWrite(ctx, key, path, record, data);
  });
  return afterWrite(ctx, key, path, version);
}

type PatchOutcome = { kind: 'absent' } | { kind: 'gone' } | { kind: 'written'; v: VersionState };

/** A merge patch onto the latest version, read, merged and written in one atomic plan. */
export async function patchVersion(
  ctx: KvContext,
  path: string,
  patch: Record<string, unknown>,
  cas: number | undefined,
): Promise<KvPatchResult> {
  const key = storageKey(ctx.keys);
  const now = ctx.clock();
  const outcome = await ctx.backend.updateSecret<PatchOutcome>(path, async (record) => {
    if (record === undefined || record.head.latestVersion === 0) {
      return { write: null, result: { kind: 'absent' } };
    }
    checkCas(record, ctx.mount.get(), cas);
    const latest = record.head.latestVersion;
    const v = record.versions.find((x) => x.version === latest);
    if (v === undefined) return { write: null, result: { kind: 'absent' } };
    if (isGone(v, now)) return { write: null, result: { kind: 'gone' } };
    const current = await ctx.backend.readSecret(path, () => latest);
    if (current?.data === undefined || current.data === null) {
      return { write: null, result: { kind: 'gone' } };
    }
    const merged = mergePatch(await openData(key, path, latest, current.data), patch);
    const update = await planWrite(ctx, key, path, record, merged as Record<string, unknown>);
    return { write: update.write, result: { kind: 'written', v: update.result } };
  });
  if (outcome.kind === 'absent') return { kind: 'absent' };
  if (outcome.kind === 'gone') {
    const gone = await readVersion(ctx, path, 0);
    return gone === undefined ? { kind: 'absent' } : { kind: 'gone', read: gone };
  }
  return { kind: 'written', ...(await afterWrite(ctx, key, path, outcome.v)) };
}
