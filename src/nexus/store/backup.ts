/**
 * Store-level export and import (docs/backup.md): every path with every kept version and its
 * metadata, every policy, and the Vault mount configuration, read out in plaintext for an export
 * document (./export-document.ts) or written back *as given* — version numbers, creation and
 * deletion times, destroyed state, `latestVersion`, the Vault head fields — on any backend.
 *
 * Consistency: each path is read as one revision (a path that changes between its reads is read
 * again) and written in one atomic write; the store as a whole is not frozen, so an export of a
 * store under writes is consistent per path, not across paths. For a point-in-time image of an
 * SQLite store use the snapshot (./snapshot.ts).
 *
 * Import modes: `empty` refuses (`api_bad_request`) unless the store holds no path and no
 * policy; `replace` first purges every stored path and deletes every policy whose name the
 * document holds, then writes the document's; other paths and policies stay as they are. A
 * destroyed version is written as a version whose data is erased in the same write (the
 * backend's destroy), so no backend needs a "row without data" insert.
 */
import { utf8, zero } from '../../core/bytes.ts';
import { open, policyAad, seal, secretAad, secretMetaAad } from '../../core/crypto/envelope.ts';
import { SpikeError } from '../../core/errors.ts';
import { currentVersion, type VersionState } from '../../core/kv/semantics.ts';
import type { EpochClock, RootKeyProvider } from '../../core/ports.ts';
import type { SecretRecord, StoreBackend } from './backend.ts';
import {
  EXPORT_FORMAT,
  EXPORT_FORMAT_VERSION,
  type ExportDocument,
  type ExportedPolicy,
  type ExportedSecret,
  type ExportedVersion,
} from './export-document.ts';
import { DEFAULT_MOUNT_CONFIG } from './kv2-rules.ts';
import type { MountConfigStore } from './mount-config.ts';
import { createPolicyStore } from './policies.ts';
import { storageKey } from './secrets.ts';

/** How an import treats a store that already holds data (see the module header). */
export type ImportMode = 'empty' | 'replace';

/** What an import wrote. */
export interface ImportSummary {
  readonly secrets: number;
  readonly versions: number;
  readonly policies: number;
}

export interface StoreBackup {
  /** Every path, version and policy in plaintext. Throws `state_not_ready` without a key. */
  dump(): Promise<ExportDocument>;
  /** Writes a (validated) document; see the module header for `mode`. */
  load(document: ExportDocument, mode: ImportMode): Promise<ImportSummary>;
}

/** How often a path that keeps changing is read again before the export gives up. */
const MAX_READ_ATTEMPTS = 5;

async function openText(key: CryptoKey, sealed: Uint8Array, aad: Uint8Array): Promise<string> {
  const plain = await open(key, sealed, aad);
  try {
    return utf8.decode(plain);
  } finally {
    zero(plain);
  }
}

/** The kept versions of one revision of `record`, or `undefined` when the path moved on. */
async function readVersions(
  backend: StoreBackend,
  key: CryptoKey,
  record: SecretRecord,
): Promise<ExportedVersion[] | undefined> {
  const out: ExportedVersion[] = [];
  for (const v of record.versions) {
    const base = {
      version: v.version,
      createdAt: v.createdAt,
      deletedAt: v.deletedAt,
      destroyed: v.destroyed,
    };
    if (v.destroyed) {
      out.push({ ...base, data: null });
      continue;
    }
    const read = await backend.readSecret(record.path, () => v.version);
    if (read === undefined || read.record.head.revision !== record.head.revision) return undefined;
    if (!(read.data instanceof Uint8Array)) return undefined;
    out.push({ ...base, data: await openText(key, read.data, secretAad(record.path, v.version)) });
  }
  return out;
}

async function dumpSecret(
  backend: StoreBackend,
  key: CryptoKey,
  path: string,
  now: number,
): Promise<ExportedSecret | undefined> {
  for (let attempt = 0; attempt < MAX_READ_ATTEMPTS; attempt++) {
    const first = await backend.readSecret(path);
    if (first === undefined) return undefined; // purged since it was listed
    const { record } = first;
    const versions = await readVersions(backend, key, record);
    if (versions === undefined) continue;
    const { head } = record;
    return {
      path,
      createdAt: head.createdAt,
      updatedAt: head.updatedAt,
      latestVersion: head.latestVersion,
      currentVersion: currentVersion(record.versions, now),
      oldestVersion: head.oldestVersion,
      maxVersions: head.maxVersions,
      casRequired: head.casRequired,
      deleteVersionAfterMs: head.deleteVersionAfterMs,
      customMetadata:
        head.customMetadata === null
          ? null
          : await openText(key, head.customMetadata, secretMetaAad(path)),
      versions,
    };
  }
  throw new SpikeError('server_busy', 'a secret kept changing during the export; try again');
}

/** Writes one path as given (after a purge of the stored one in `replace` mode). */
async function loadSecret(
  backend: StoreBackend,
  key: CryptoKey,
  secret: ExportedSecret,
  mode: ImportMode,
): Promise<void> {
  const { path } = secret;
  if (mode === 'replace') {
    await backend.updateSecret(path, (record) => ({
      write: record === undefined ? null : { head: null },
      result: undefined,
    }));
  }
  const insert: { state: VersionState; data: Uint8Array }[] = [];
  const update: VersionState[] = [];
  for (const v of secret.versions) {
    const state = { version: v.version, createdAt: v.createdAt, deletedAt: v.deletedAt };
    const data =
      v.data === null
        ? new Uint8Array(0)
        : await seal(key, utf8.encode(v.data), secretAad(path, v.version));
    insert.push({ state: { ...state, destroyed: false }, data });
    if (v.destroyed) update.push({ ...state, destroyed: true });
  }
  const customMetadata =
    secret.customMetadata === null
      ? null
      : await seal(key, utf8.encode(secret.customMetadata), secretMetaAad(path));
  await backend.updateSecret(path, (record) => {
    if (record !== undefined) {
      throw new SpikeError('api_bad_request', `secret ${path} appeared during the import`);
    }
    return {
      write: {
        head: {
          createdAt: secret.createdAt,
          updatedAt: secret.updatedAt,
          latestVersion: secret.latestVersion,
          maxVersions: secret.maxVersions,
          casRequired: secret.casRequired,
          deleteVersionAfterMs: secret.deleteVersionAfterMs,
          customMetadata,
          oldestVersion: secret.oldestVersion,
        },
        insert,
        update,
      },
      result: undefined,
    };
  });
}

/** Writes one policy with its own creation and update times. */
async function loadPolicy(
  backend: StoreBackend,
  key: CryptoKey,
  policy: ExportedPolicy,
  mode: ImportMode,
): Promise<void> {
  if (mode === 'replace') await backend.deletePolicy(policy.name);
  const content = {
    spiffeIdPattern: policy.spiffeIdPattern,
    pathPattern: policy.pathPattern,
    permissions: [...policy.permissions],
  };
  const plaintext = utf8.encode(JSON.stringify(content));
  let data: Uint8Array;
  try {
    data = await seal(key, plaintext, policyAad(policy.name));
  } finally {
    zero(plaintext);
  }
  // An upsert keeps the creation time of an existing row: the first sets both times to
  // `createdAt`, the second moves `updatedAt` only.
  await backend.upsertPolicy(policy.name, data, policy.createdAt);
  if (policy.updatedAt !== policy.createdAt) {
    await backend.upsertPolicy(policy.name, data, policy.updatedAt);
  }
}

function isDefaultMount(mount: ExportDocument['mount']): boolean {
  return (
    mount.maxVersions === DEFAULT_MOUNT_CONFIG.maxVersions &&
    mount.casRequired === DEFAULT_MOUNT_CONFIG.casRequired &&
    mount.deleteVersionAfterMs === DEFAULT_MOUNT_CONFIG.deleteVersionAfterMs
  );
}

/** Creates the export/import view of a backend; `keys` is consulted on every call. */
export function createStoreBackup(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  mount: MountConfigStore,
  clock: EpochClock,
): StoreBackup {
  return {
    async dump() {
      const key = storageKey(keys);
      const now = clock();
      const secrets: ExportedSecret[] = [];
      for (const path of await backend.listSecretPaths()) {
        const secret = await dumpSecret(backend, key, path, now);
        if (secret !== undefined) secrets.push(secret);
      }
      const policies = (await createPolicyStore(backend, keys, clock).list()).map((p) => ({
        name: p.name,
        spiffeIdPattern: p.spiffeIdPattern,
        pathPattern: p.pathPattern,
        permissions: [...p.permissions],
        createdAt: p.createdAt.getTime(),
        updatedAt: p.updatedAt.getTime(),
      }));
      return {
        format: EXPORT_FORMAT,
        version: EXPORT_FORMAT_VERSION,
        exportedAt: now,
        backend: backend.kind,
        mount: { ...mount.get() },
        secrets,
        policies,
      };
    },

    async load(document, mode) {
      const key = storageKey(keys);
      if (mode === 'empty') {
        const paths = await backend.listSecretPaths();
        const policies = await backend.listPolicies();
        if (paths.length > 0 || policies.length > 0) {
          throw new SpikeError(
            'api_bad_request',
            `the store is not empty (${paths.length} secrets, ${policies.length} policies): import into an empty store, or use --force to replace paths and policies of the same name`,
          );
        }
      }
      if (!isDefaultMount(document.mount)) await mount.set(document.mount);
      let versions = 0;
      for (const secret of document.secrets) {
        await loadSecret(backend, key, secret, mode);
        versions += secret.versions.length;
      }
      for (const policy of document.policies) await loadPolicy(backend, key, policy, mode);
      return {
        secrets: document.secrets.length,
        versions,
        policies: document.policies.length,
      };
    },
  };
}
