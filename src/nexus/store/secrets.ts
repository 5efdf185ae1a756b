/**
 * Versioned KV secrets (docs/spike-api.md §6) over any storage backend, with encryption at rest (§9).
 *
 * Every version's values are serialised as a JSON object and sealed under the HKDF storage key
 * with associated data `spike/v1/secret ‖ 0 ‖ path ‖ 0 ‖ version`, so a ciphertext moved to
 * another path or version fails to open. Which versions an operation touches is decided by the
 * pure rules of src/core/kv/semantics.ts; the backend only makes each write atomic.
 *
 * Without a root key every operation throws `state_not_ready`. Missing paths and versions throw
 * `api_not_found`; failed decryption throws `api_internal_error` "decryption failed".
 */
import { utf8, zero } from '../../core/bytes.ts';
import { open, seal, secretAad } from '../../core/crypto/envelope.ts';
import { SpikeError } from '../../core/errors.ts';
import {
  applyChanges,
  currentVersion,
  isDeleted,
  oldestVersion,
  planDelete,
  planDestroy,
  planUndelete,
  selectReadVersion,
  updatedTimeAfter,
  type VersionState,
} from '../../core/kv/semantics.ts';
import type { EpochClock, RootKeyProvider, SecretMetadata, Secrets } from '../../core/ports.ts';
import type { SecretRecord, SecretUpdate, StoreBackend } from './backend.ts';
import { checkCas, type MountConfig, maxVersionsOf, planNewVersion } from './kv2-rules.ts';

export interface SecretsOptions {
  /** `SPIKE_NEXUS_MAX_SECRET_VERSIONS` (≥ 1). */
  readonly maxVersions: number;
  readonly clock: EpochClock;
  /** The Vault mount configuration (docs/vault-kv2.md §4.2, §4.3), which SPIKE writes honour too. */
  readonly mount: () => MountConfig;
}

const notFound = () => new SpikeError('api_not_found', 'secret not found');

/** The storage key, or `state_not_ready` while Nexus has no root key. */
export function storageKey(keys: Pick<RootKeyProvider, 'keys'>): CryptoKey {
  const k = keys.keys();
  if (k === undefined) throw new SpikeError('state_not_ready', 'root key not available');
  return k.storage;
}

/** Turns decrypted JSON back into values; non-string values (Vault writes) become JSON text. */
function decodeValues(plaintext: Uint8Array): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(plaintext));
  } catch {
    throw new SpikeError('api_internal_error', 'corrupt record');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SpikeError('api_internal_error', 'corrupt record');
  }
  const obj = parsed as Record<string, unknown>;
  if (Object.values(obj).every((v) => typeof v === 'string')) return obj as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    Object.defineProperty(out, k, {
      value: typeof v === 'string' ? v : JSON.stringify(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * The write of a delete, undelete or destroy, or none when nothing changed (also the Vault view's,
 * ./vault-kv.ts).
 */
export function versionUpdate(
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

/** A SPIKE put: the next version, sealed (docs/spike-api.md §6, docs/vault-kv2.md §4.1–4.4). */
async function putVersion(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  options: SecretsOptions,
  path: string,
  values: Readonly<Record<string, string>>,
): Promise<{ version: number }> {
  const key = storageKey(keys);
  const plaintext = utf8.encode(JSON.stringify(values));
  try {
    return await backend.updateSecret(path, async (record) => {
      // A SPIKE put carries no check-and-set: refused where `cas_required` holds (mount or
      // key), as a Vault write without `cas` is (docs/vault-kv2.md §4.4).
      checkCas(record, options.mount(), undefined);
      const now = options.clock();
      // One rule for both APIs (docs/vault-kv2.md §4.1–4.3): number, trim, scheduled deletion.
      const plan = planNewVersion(record, options.mount(), options.maxVersions, now);
      const { version } = plan.state;
      const data = await seal(key, plaintext, secretAad(path, version));
      return {
        write: {
          head: {
            createdAt: record?.head.createdAt ?? now,
            updatedAt: now,
            latestVersion: version,
            ...(plan.oldestVersion === undefined ? {} : { oldestVersion: plan.oldestVersion }),
          },
          insert: [{ state: plan.state, data }],
          remove: plan.remove,
        },
        result: { version },
      };
    });
  } finally {
    zero(plaintext);
  }
}

/**
 * Creates the `Secrets` of docs/spike-api.md §6 on a backend. `keys` is consulted on every call, so
 * the same object starts working once the root key is installed.
 */
export function createSecrets(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  options: SecretsOptions,
): Secrets {
  const { clock } = options;
  const maxFor = (record: SecretRecord | undefined) =>
    maxVersionsOf(record, options.mount(), options.maxVersions);

  async function readVersion(path: string, version?: number, ifNewerThan?: number) {
    const key = storageKey(keys);
    const now = clock();
    const pick = (record: SecretRecord) =>
      selectReadVersion(record.versions, version, now)?.version;
    const read = await backend.readSecret(path, pick);
    if (read === undefined) throw notFound();
    const chosen = pick(read.record);
    if (chosen === undefined || read.data === undefined || read.data === null) throw notFound();
    if (ifNewerThan !== undefined && chosen <= ifNewerThan) return { version: chosen };
    const plaintext = await open(key, read.data, secretAad(path, chosen));
    try {
      return { version: chosen, data: decodeValues(plaintext) };
    } finally {
      zero(plaintext);
    }
  }

  return {
    put: (path, values) => putVersion(backend, keys, options, path, values),

    async get(path, version) {
      return (await readVersion(path, version, undefined)).data!;
    },

    getVersioned: readVersion,

    async delete(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        if (record === undefined) throw notFound();
        const now = clock();
        return versionUpdate(record, planDelete(record.versions, versions, now), now);
      });
    },

    async undelete(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        if (record === undefined) throw notFound();
        const now = clock();
        const changes = planUndelete(record.versions, versions, now);
        if (changes.length === 0) throw notFound();
        return versionUpdate(record, changes, now);
      });
    },

    async destroy(path, versions) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        if (record === undefined) throw notFound();
        const now = clock();
        return versionUpdate(record, planDestroy(record.versions, versions, now), now);
      });
    },

    async purge(path) {
      storageKey(keys);
      await backend.updateSecret(path, (record) => {
        if (record === undefined) throw notFound();
        return { write: { head: null }, result: undefined };
      });
    },

    async list() {
      storageKey(keys);
      return backend.listSecretPaths();
    },

    async metadata(path, version): Promise<SecretMetadata> {
      storageKey(keys);
      const now = clock();
      const read = await backend.readSecret(path);
      if (read === undefined) throw notFound();
      const { head, versions } = read.record;
      if (selectReadVersion(versions, version, now) === undefined) throw notFound();
      return {
        versions: versions.map((v) => ({
          version: v.version,
          createdTime: new Date(v.createdAt),
          deletedTime: isDeleted(v, now) ? new Date(v.deletedAt!) : null,
          destroyed: v.destroyed,
        })),
        currentVersion: currentVersion(versions, now),
        oldestVersion: oldestVersion(versions, now),
        createdTime: new Date(head.createdAt),
        updatedTime: new Date(head.updatedAt),
        maxVersions: maxFor(read.record),
      };
    },
  };
}
