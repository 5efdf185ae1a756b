/**
 * Responses of the Vault KV v2 API (docs/vault-kv2.md §2): `Content-Type` exactly
 * `application/json` (hvac parses error bodies only then), 204 without body or type, and the
 * data and metadata objects of §3 built from the store's view.
 */
import {
  formatGoDurationSeconds,
  formatVaultTime,
  vaultEnvelope,
  vaultErrorBody,
} from '../../api/vault/index.ts';
import type { KvMetadata, KvVersion } from '../store/vault-kv.ts';

const NO_STORE = 'no-store, no-cache, must-revalidate, private';
const JSON_HEADERS = new Headers({ 'Content-Type': 'application/json', 'Cache-Control': NO_STORE });
const EMPTY_HEADERS = new Headers({ 'Cache-Control': NO_STORE });

/** A JSON response with the byte-exact `application/json` type. */
export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** 204, empty body, no Content-Type. */
export function noContent(): Response {
  return new Response(null, { status: 204, headers: EMPTY_HEADERS });
}

/** `{"errors":[…]}` with `status`. */
export function errorResponse(status: number, ...messages: string[]): Response {
  return jsonResponse(status, vaultErrorBody(...messages));
}

/** The success envelope (status 200 unless given, e.g. 404 with warnings or metadata). */
export function envelopeResponse(
  data: unknown,
  options: { status?: number; warnings?: readonly string[]; auth?: unknown } = {},
): Response {
  const body = vaultEnvelope(crypto.randomUUID(), data, options.warnings, options.auth ?? null);
  return jsonResponse(options.status ?? 200, body);
}

/** `data.metadata` of a data read and the `data` of a write (§3). */
export function versionMetadata(v: KvVersion, meta: KvMetadata): Record<string, unknown> {
  return {
    created_time: formatVaultTime(v.createdAt),
    custom_metadata: meta.customMetadata,
    deletion_time: formatVaultTime(v.deletedAt),
    destroyed: v.destroyed,
    version: v.version,
  };
}

/** `data` of `GET secret/metadata/:path` (§3 Read metadata). */
export function metadataData(meta: KvMetadata): Record<string, unknown> {
  const versions: Record<string, unknown> = {};
  for (const v of meta.versions) {
    versions[String(v.version)] = {
      created_time: formatVaultTime(v.createdAt),
      deletion_time: formatVaultTime(v.deletedAt),
      destroyed: v.destroyed,
    };
  }
  return {
    cas_required: meta.casRequired,
    created_time: formatVaultTime(meta.createdAt),
    current_version: meta.currentVersion,
    custom_metadata: meta.customMetadata,
    delete_version_after: formatGoDurationSeconds(meta.deleteVersionAfterMs),
    max_versions: meta.maxVersions,
    oldest_version: meta.oldestVersion,
    updated_time: formatVaultTime(meta.updatedAt),
    versions,
  };
}

/**
 * Subkeys of a version's data (§3 Subkeys): every leaf becomes `null`; maps deeper than `depth`
 * (0 = unlimited) too.
 */
export function subkeysOf(data: Record<string, unknown>, depth: number, level = 1): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    const isMap = typeof v === 'object' && v !== null && !Array.isArray(v);
    const value =
      isMap && (depth === 0 || level < depth)
        ? subkeysOf(v as Record<string, unknown>, depth, level + 1)
        : null;
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
