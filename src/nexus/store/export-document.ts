/**
 * The export document (docs/backup.md "The export file"): everything a store holds, in plaintext,
 * as one JSON object. It exists only inside Nexus memory before age encryption (export) and
 * inside the operator's `spike` process after age decryption (import); it is never written to
 * disk by SPIKE.
 *
 * Values keep their exact bytes: a version's `data` and a path's `customMetadata` are the JSON
 * texts that were sealed, not re-serialised objects, so a number a Vault client wrote survives
 * the round trip digit for digit. Times are epoch milliseconds.
 *
 * `parseExportDocument` is the strict reader of an import: every field is checked and a failure
 * names the field (a path or a policy name at most), never a value.
 *
 * Portable: no runtime APIs.
 */
import { utf8 } from '../../core/bytes.ts';
import { SpikeError } from '../../core/errors.ts';
import { PERMISSIONS, type Permission } from '../../core/policy/validate.ts';
import type { MountConfig } from './kv2-rules.ts';

/** The `format` field of every export document. */
export const EXPORT_FORMAT = 'spike-export';
/** The `version` field this Nexus writes and reads. */
export const EXPORT_FORMAT_VERSION = 1;

export interface ExportedVersion {
  readonly version: number;
  readonly createdAt: number;
  /** Deletion time (a future one is a scheduled deletion), `null` when never deleted. */
  readonly deletedAt: number | null;
  readonly destroyed: boolean;
  /** The sealed JSON text of the values; `null` exactly when destroyed. */
  readonly data: string | null;
}

export interface ExportedSecret {
  readonly path: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Highest version ever written (the next write is this + 1). */
  readonly latestVersion: number;
  /** Derived at export time (informational; recomputed by the importing store). */
  readonly currentVersion: number;
  /** Vault's retention floor (docs/vault-kv2.md §4.2), 0 until the first trim. */
  readonly oldestVersion: number;
  readonly maxVersions: number | null;
  readonly casRequired: boolean | null;
  readonly deleteVersionAfterMs: number | null;
  /** The JSON text of Vault `custom_metadata`, `null` when none. */
  readonly customMetadata: string | null;
  /** Kept versions, ascending. */
  readonly versions: readonly ExportedVersion[];
}

export interface ExportedPolicy {
  readonly name: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: readonly Permission[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ExportDocument {
  readonly format: typeof EXPORT_FORMAT;
  readonly version: typeof EXPORT_FORMAT_VERSION;
  readonly exportedAt: number;
  /** The backend the export was taken from (informational). */
  readonly backend: string;
  /** The Vault mount configuration (docs/vault-kv2.md §3). */
  readonly mount: MountConfig;
  /** Sorted by path. */
  readonly secrets: readonly ExportedSecret[];
  /** Sorted by name. */
  readonly policies: readonly ExportedPolicy[];
}

type Obj = Record<string, unknown>;

function bad(message: string): SpikeError {
  return new SpikeError('api_bad_request', `export document: ${message}`);
}

function object(value: unknown, field: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad(`${field} must be an object`);
  }
  return value as Obj;
}

function array(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw bad(`${field} must be an array`);
  return value;
}

function str(value: unknown, field: string): string {
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  return value;
}

function int(value: unknown, field: string, min = 0): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw bad(`${field} must be an integer ≥ ${min}`);
  }
  return value as number;
}

function nullable<T>(value: unknown, read: (v: unknown) => T): T | null {
  return value === null ? null : read(value);
}

function bool(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw bad(`${field} must be a boolean`);
  return value;
}

/** A JSON text that holds an object (values and custom metadata are sealed as such). */
function jsonObjectText(value: unknown, field: string): string {
  const text = str(value, field);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad(`${field} must be the JSON text of an object`);
  }
  object(parsed, field);
  return text;
}

function parseVersion(raw: unknown, at: string): ExportedVersion {
  const v = object(raw, at);
  const destroyed = bool(v.destroyed, `${at}.destroyed`);
  const data = nullable(v.data, (d) => jsonObjectText(d, `${at}.data`));
  if (destroyed !== (data === null)) throw bad(`${at}.data must be null exactly when destroyed`);
  return {
    version: int(v.version, `${at}.version`, 1),
    createdAt: int(v.createdAt, `${at}.createdAt`),
    deletedAt: nullable(v.deletedAt, (d) => int(d, `${at}.deletedAt`)),
    destroyed,
    data,
  };
}

function parseSecret(raw: unknown, index: number): ExportedSecret {
  const s = object(raw, `secrets[${index}]`);
  const path = str(s.path, `secrets[${index}].path`);
  // Paths are validated by the importing store (§5 rules); they may be named in messages.
  const at = `secret ${JSON.stringify(path.slice(0, 256))}`;
  const versions = array(s.versions, `${at} versions`).map((v, i) =>
    parseVersion(v, `${at} versions[${i}]`),
  );
  const latestVersion = int(s.latestVersion, `${at} latestVersion`, 1);
  let previous = 0;
  for (const v of versions) {
    if (v.version <= previous) throw bad(`${at} versions must ascend without repeats`);
    previous = v.version;
  }
  if (previous > latestVersion) throw bad(`${at} latestVersion is below a kept version`);
  return {
    path,
    createdAt: int(s.createdAt, `${at} createdAt`),
    updatedAt: int(s.updatedAt, `${at} updatedAt`),
    latestVersion,
    currentVersion: int(s.currentVersion ?? 0, `${at} currentVersion`),
    oldestVersion: int(s.oldestVersion, `${at} oldestVersion`),
    maxVersions: nullable(s.maxVersions, (m) => int(m, `${at} maxVersions`)),
    casRequired: nullable(s.casRequired, (c) => bool(c, `${at} casRequired`)),
    deleteVersionAfterMs: nullable(s.deleteVersionAfterMs, (d) => {
      if (!Number.isSafeInteger(d)) throw bad(`${at} deleteVersionAfterMs must be an integer`);
      return d as number;
    }),
    customMetadata: nullable(s.customMetadata, (c) => jsonObjectText(c, `${at} customMetadata`)),
    versions,
  };
}

function parsePolicy(raw: unknown, index: number): ExportedPolicy {
  const p = object(raw, `policies[${index}]`);
  const at = `policies[${index}]`;
  const permissions = array(p.permissions, `${at}.permissions`).map((x) => {
    if (typeof x !== 'string' || !PERMISSIONS.includes(x as Permission)) {
      throw bad(`${at}.permissions holds an unknown permission`);
    }
    return x as Permission;
  });
  return {
    name: str(p.name, `${at}.name`),
    spiffeIdPattern: str(p.spiffeIdPattern, `${at}.spiffeIdPattern`),
    pathPattern: str(p.pathPattern, `${at}.pathPattern`),
    permissions,
    createdAt: int(p.createdAt, `${at}.createdAt`),
    updatedAt: int(p.updatedAt, `${at}.updatedAt`),
  };
}

function parseMount(raw: unknown): MountConfig {
  const m = object(raw, 'mount');
  if (!Number.isSafeInteger(m.deleteVersionAfterMs)) {
    throw bad('mount.deleteVersionAfterMs must be an integer');
  }
  return {
    maxVersions: int(m.maxVersions, 'mount.maxVersions'),
    casRequired: bool(m.casRequired, 'mount.casRequired'),
    deleteVersionAfterMs: m.deleteVersionAfterMs as number,
  };
}

/**
 * Reads an export document strictly.
 *
 * @throws SpikeError `api_bad_request` naming the first bad field (never a value).
 */
export function parseExportDocument(bytes: Uint8Array): ExportDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(utf8.decode(bytes));
  } catch {
    throw bad('not JSON');
  }
  const doc = object(raw, 'the document');
  if (doc.format !== EXPORT_FORMAT) throw bad(`format must be "${EXPORT_FORMAT}"`);
  if (doc.version !== EXPORT_FORMAT_VERSION) {
    throw bad(`version must be ${EXPORT_FORMAT_VERSION} (this Nexus reads no other)`);
  }
  const secrets = array(doc.secrets, 'secrets').map(parseSecret);
  const policies = array(doc.policies, 'policies').map(parsePolicy);
  const paths = new Set(secrets.map((s) => s.path));
  if (paths.size !== secrets.length) throw bad('a secret path appears twice');
  if (new Set(policies.map((p) => p.name)).size !== policies.length) {
    throw bad('a policy name appears twice');
  }
  return {
    format: EXPORT_FORMAT,
    version: EXPORT_FORMAT_VERSION,
    exportedAt: int(doc.exportedAt, 'exportedAt'),
    backend: typeof doc.backend === 'string' ? doc.backend.slice(0, 32) : 'unknown',
    mount: parseMount(doc.mount),
    secrets,
    policies,
  };
}
