/**
 * The in-memory backend (`SPIKE_NEXUS_BACKEND_STORE=memory`): development only, nothing survives
 * the process (docs/architecture.md, "In-memory backend").
 *
 * It keeps sealed envelopes exactly as the SQLite backend does, so both run the same secrets and
 * policy layers and the same tests. Writes to a path are serialised by a per-path lock; a write
 * is applied all at once after its plan resolves, so it is atomic.
 */
import { SpikeError } from '../../core/errors.ts';
import type { VersionState } from '../../core/kv/semantics.ts';
import {
  EMPTY_VAULT_HEAD,
  mergeVaultHead,
  type PolicyRow,
  type SecretHead,
  type SecretPlan,
  type SecretRead,
  type SecretRecord,
  type StoreBackend,
} from './backend.ts';
import { type ChangeEntry, type ChangeEvent, changeOf, policyChange } from './change-log.ts';
import { KeyedLock } from './lock.ts';

interface StoredVersion {
  state: VersionState;
  data: Uint8Array | null;
}

interface StoredSecret {
  head: SecretHead;
  versions: Map<number, StoredVersion>;
}

function snapshot(path: string, s: StoredSecret): SecretRecord {
  const versions = [...s.versions.values()]
    .map((v) => v.state)
    .sort((a, b) => a.version - b.version);
  return { path, head: s.head, versions };
}

const KCV_KEY = 'kcv';

/** Creates an empty in-memory backend. */
export function createMemoryBackend(): StoreBackend {
  const secrets = new Map<string, StoredSecret>();
  const policies = new Map<string, PolicyRow>();
  const lock = new KeyedLock();
  const settings = new Map<string, string>();
  let closed = false;
  // The change log: appended as each change is applied (one synchronous step, so atomic).
  let log: ChangeEvent[] = [];
  let head = 0;
  const listeners = new Set<() => void>();
  const append = (entry: ChangeEntry | undefined) => {
    if (entry === undefined) return;
    head++;
    log.push({ ...entry, seq: head, time: Date.now() });
    queueMicrotask(() => {
      for (const listener of listeners) listener();
    });
  };

  const checkOpen = () => {
    if (closed) throw new SpikeError('api_internal_error', 'storage failure');
  };

  return {
    kind: 'memory',

    async readSecret(path, pick): Promise<SecretRead | undefined> {
      checkOpen();
      const s = secrets.get(path);
      if (s === undefined) return undefined;
      const record = snapshot(path, s);
      const version = pick?.(record);
      if (version === undefined) return { record, data: undefined };
      const v = s.versions.get(version);
      return { record, data: v === undefined ? undefined : v.data };
    },

    async listSecretPaths() {
      checkOpen();
      return [...secrets.keys()].sort();
    },

    updateSecret<T>(path: string, plan: SecretPlan<T>): Promise<T> {
      return lock.run(path, async () => {
        checkOpen();
        const existing = secrets.get(path);
        const { write, result } = await plan(
          existing === undefined ? undefined : snapshot(path, existing),
        );
        checkOpen();
        if (write === null) return result;
        append(changeOf(path, write));
        if (write.head === null) {
          secrets.delete(path);
          return result;
        }
        const head: SecretHead = {
          ...mergeVaultHead(existing?.head ?? EMPTY_VAULT_HEAD, write.head),
          createdAt: write.head.createdAt,
          updatedAt: write.head.updatedAt,
          latestVersion: write.head.latestVersion,
          revision: (existing?.head.revision ?? 0) + 1,
        };
        const versions = new Map(existing?.versions);
        for (const { state, data } of write.insert ?? []) {
          versions.set(state.version, { state, data: data.slice() });
        }
        for (const state of write.update ?? []) {
          const old = versions.get(state.version);
          if (old === undefined) continue;
          versions.set(state.version, { state, data: state.destroyed ? null : old.data });
        }
        for (const n of write.remove ?? []) versions.delete(n);
        secrets.set(path, { head, versions });
        return result;
      });
    },

    async upsertPolicy(name, data, now) {
      checkOpen();
      const createdAt = policies.get(name)?.createdAt ?? now;
      policies.set(name, { name, data: data.slice(), createdAt, updatedAt: now });
      append(policyChange(name));
      return { createdAt, updatedAt: now };
    },

    async readPolicy(name) {
      checkOpen();
      return policies.get(name);
    },

    async listPolicies() {
      checkOpen();
      return [...policies.values()].sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
    },

    async deletePolicy(name) {
      checkOpen();
      const gone = policies.delete(name);
      if (gone) append(policyChange(name));
      return gone;
    },

    async readChanges(after, limit) {
      checkOpen();
      // Numbers are dense from the first kept entry, so the start is found by arithmetic.
      const first = log[0]?.seq ?? head + 1;
      const start = Math.max(0, after + 1 - first);
      return log.slice(start, start + limit);
    },

    async changeBounds() {
      checkOpen();
      return { head, first: log[0]?.seq };
    },

    async pruneChanges(time) {
      checkOpen();
      let drop = 0;
      while (drop < log.length - 1 && log[drop]!.time < time) drop++;
      if (drop > 0) log = log.slice(drop);
    },

    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    getKcv() {
      checkOpen();
      return settings.get(KCV_KEY);
    },

    setKcv(value) {
      checkOpen();
      settings.set(KCV_KEY, value);
    },

    getSetting(key) {
      checkOpen();
      if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
      return settings.get(key);
    },

    setSetting(key, value) {
      checkOpen();
      if (key === KCV_KEY) throw new RangeError('the kcv has its own accessors');
      settings.set(key, value);
    },

    async close() {
      closed = true;
      secrets.clear();
      policies.clear();
      listeners.clear();
      log = [];
    },
  };
}
