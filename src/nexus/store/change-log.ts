/**
 * The change log's shared rules (issue 14; docs/spike-api.md "Watch"): what one write appends.
 *
 * Every backend appends exactly one entry per write that changes a path (put, delete, undelete,
 * destroy, purge) or a policy, in the write's own transaction, so the log and the data never
 * disagree after a crash (invariant 3). An entry names the path, the version the change touched
 * and its kind; never a value (invariant 2). A Vault metadata write that changes no version
 * (`max_versions`, `custom_metadata`, …) appends nothing: no readable data changed.
 *
 * Sequence numbers are assigned by the backend, strictly increasing in commit order: SQLite and
 * memory have one writer; PostgreSQL takes a counter row last in the writing transaction
 * (./postgres-changes.ts), which orders commits across replicas.
 */
import type { SecretWrite } from './backend.ts';

/** What happened to a path (or, for `policy`, to the named policy). */
export type ChangeKind = 'put' | 'delete' | 'undelete' | 'destroy' | 'purge' | 'policy';

/** One entry before the backend numbers it. */
export interface ChangeEntry {
  readonly path: string;
  /** The version the change touched (the highest one, for several); 0 when none applies. */
  readonly version: number;
  readonly kind: ChangeKind;
}

/** One numbered entry of the log. */
export interface ChangeEvent extends ChangeEntry {
  readonly seq: number;
  /** Epoch milliseconds of the append. */
  readonly time: number;
}

/** The oldest kept entry and the last number ever assigned (0 before any). */
export interface ChangeBounds {
  readonly head: number;
  /** `undefined` when the log holds no entry (empty, or everything pruned). */
  readonly first: number | undefined;
}

/** The entry a secret write appends, or `undefined` for a write that changes no version. */
export function changeOf(path: string, write: SecretWrite): ChangeEntry | undefined {
  if (write.head === null) return { path, version: 0, kind: 'purge' };
  const inserted = write.insert ?? [];
  if (inserted.length > 0) {
    return { path, version: Math.max(...inserted.map((i) => i.state.version)), kind: 'put' };
  }
  const updated = write.update ?? [];
  if (updated.length === 0) return undefined;
  const version = Math.max(...updated.map((s) => s.version));
  if (updated.some((s) => s.destroyed)) return { path, version, kind: 'destroy' };
  if (updated.some((s) => s.deletedAt !== null)) return { path, version, kind: 'delete' };
  return { path, version, kind: 'undelete' };
}

/** The entry a policy write or delete appends: the policy's name as its path. */
export function policyChange(name: string): ChangeEntry {
  return { path: name, version: 0, kind: 'policy' };
}

/** A stored kind read back; a row written by a newer Nexus with another kind is `undefined`. */
export function changeKindOf(value: string): ChangeKind | undefined {
  switch (value) {
    case 'put':
    case 'delete':
    case 'undelete':
    case 'destroy':
    case 'purge':
    case 'policy':
      return value;
    default:
      return undefined;
  }
}
