/**
 * Request bodies and fields of the Vault KV v2 API (docs/vault-kv2.md §2, §3): JSON bodies under
 * the byte cap, query fields, `options.cas`, `versions`, durations and the metadata fields.
 *
 * Every failure is `SpikeError('api_bad_request')` with Vault's message and never the value; a
 * body over the cap is `too_large` (413).
 */
import { parseVaultDuration, VAULT_ERRORS } from '../../api/vault/index.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import { readBodyCapped } from '../../core/http/body.ts';
import type { KvMetadataInput } from '../store/vault-kv.ts';

/** A JSON object body. */
export type JsonObject = Record<string, unknown>;

/** Thrown (as the message of an `api_bad_request`) when the body passes the cap: 413. */
const BODY_TOO_LARGE = 'request body too large';

/** Deepest nesting accepted in a body: deeper documents are refused before anything uses them. */
const MAX_DEPTH = 64;

function bad(message: string): SpikeError {
  return new SpikeError('api_bad_request', message);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Nesting depth of a parsed JSON value, iteratively (no recursion on hostile input). */
function depthOf(root: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) max = d;
    if (max > MAX_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * Reads a body as a JSON object (§2 "Body"): empty = `{}`; invalid UTF-8 or JSON, a non-object
 * or nesting deeper than 64 → 400 `failed to parse JSON input`.
 */
export async function readJsonBody(request: Request, maxBytes: number): Promise<JsonObject> {
  const bytes = await readBodyCapped(request, maxBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw bad(VAULT_ERRORS.invalidJson);
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad(VAULT_ERRORS.invalidJson);
  }
  if (!isObject(parsed) || depthOf(parsed) > MAX_DEPTH) throw bad(VAULT_ERRORS.invalidJson);
  return parsed;
}

/** True when `error` is the body cap of `readBodyCapped`. */
export function isBodyTooLarge(error: unknown): boolean {
  return (
    isSpikeError(error) && error.code === 'api_bad_request' && error.message === BODY_TOO_LARGE
  );
}

/** A non-negative integer from a JSON number or a digit string; `undefined` when not one. */
function nonNegativeInt(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^[0-9]{1,15}$/.test(v.trim())) return Number(v.trim());
  return undefined;
}

/** A query field (`version`, `depth`): absent or empty = 0, else a non-negative integer. */
export function queryInt(query: URLSearchParams, name: string): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return 0;
  const n = nonNegativeInt(raw);
  if (n === undefined) throw bad(`error parsing ${name}`);
  return n;
}

/** `options.cas` (§4.4): absent → `undefined`; not a non-negative integer → 400. */
export function casOf(body: JsonObject): number | undefined {
  const options = body.options;
  if (options === undefined || options === null) return undefined;
  if (!isObject(options)) throw bad('error parsing options');
  if (!Object.hasOwn(options, 'cas') || options.cas === null) return undefined;
  const cas = nonNegativeInt(options.cas);
  if (cas === undefined) throw bad(VAULT_ERRORS.casParse);
  return cas;
}

/** `data` of a data write (§3): missing or null → `no data provided`; not a map → 400. */
export function dataOf(body: JsonObject): JsonObject {
  const data = body.data;
  if (data === undefined || data === null) throw bad(VAULT_ERRORS.noData);
  if (!isObject(data)) throw bad('error parsing data: expected a map');
  return data;
}

/**
 * `versions` of delete/undelete/destroy: an array of integers, a comma-separated string or one
 * integer (Vault's comma-int slice). None → `missing` (the route's exact message).
 */
export function versionsOf(body: JsonObject, missing: string): number[] {
  const raw = body.versions;
  let items: unknown[];
  if (raw === undefined || raw === null) items = [];
  else if (Array.isArray(raw)) items = raw;
  else if (typeof raw === 'string') items = raw.split(',').filter((s) => s.trim() !== '');
  else items = [raw];
  const out: number[] = [];
  for (const item of items) {
    const n = nonNegativeInt(item);
    if (n === undefined) throw bad('error parsing versions');
    out.push(n);
  }
  if (out.length === 0) throw bad(missing);
  return out;
}

function boolOf(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw bad(`error parsing ${field}`);
}

/** `max_versions`, `cas_required`, `delete_version_after` of config and metadata writes. */
export function settingsOf(body: JsonObject): {
  maxVersions?: number;
  casRequired?: boolean;
  deleteVersionAfterMs?: number;
} {
  const out: { maxVersions?: number; casRequired?: boolean; deleteVersionAfterMs?: number } = {};
  if (body.max_versions !== undefined && body.max_versions !== null) {
    const n = nonNegativeInt(body.max_versions);
    if (n === undefined || n > 0xffffffff) throw bad('error parsing max_versions');
    out.maxVersions = n;
  }
  if (body.cas_required !== undefined && body.cas_required !== null) {
    out.casRequired = boolOf(body.cas_required, 'cas_required');
  }
  if (body.delete_version_after !== undefined && body.delete_version_after !== null) {
    out.deleteVersionAfterMs = parseVaultDuration(
      body.delete_version_after,
      'delete_version_after',
    );
  }
  return out;
}

/**
 * The fields of a metadata write or patch (§3). `custom_metadata` must map strings to strings
 * (in a patch, `null` removes a key).
 */
export function metadataInputOf(body: JsonObject, patch: boolean): KvMetadataInput {
  const input: {
    -readonly [K in keyof KvMetadataInput]: KvMetadataInput[K];
  } = settingsOf(body);
  const cm = body.custom_metadata;
  if (cm !== undefined && (cm !== null || !patch)) {
    if (cm !== null && !isObject(cm)) {
      throw bad(`${VAULT_ERRORS.customMetadata}custom_metadata must be a map of strings`);
    }
    const map: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(cm ?? {})) {
      if (typeof v !== 'string' && !(patch && v === null)) {
        throw bad(`${VAULT_ERRORS.customMetadata}values must be strings`);
      }
      Object.defineProperty(map, k, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    input.customMetadata = map;
  }
  return input;
}
