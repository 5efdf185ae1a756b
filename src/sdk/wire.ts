/**
 * Reading Nexus answers and checking call arguments in the SDK. A 200 body that is not what the
 * route answers is `api_internal_error` (./errors.ts `malformedResponse`); a programmer mistake
 * in an argument is a `TypeError` / `RangeError` (docs/style.md rule 8).
 */
import { fromBase64 } from '../core/bytes.ts';

/** What the readers need of an answer (the mTLS client's and the edge client's alike). */
interface Answer {
  readonly body: Uint8Array;
}

import { malformedResponse } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// Response readers: a 200 body that is not what the route answers is `api_internal_error`.

export type Json = Record<string, unknown>;

export function readObject(response: Answer): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(response.body));
  } catch {
    throw malformedResponse('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformedResponse('not a JSON object');
  }
  const obj = parsed as Json;
  if (typeof obj.err === 'string' && obj.err !== '') {
    // docs/spike-api.md §3: never a success, whatever the status.
    throw malformedResponse('an error code on a success status');
  }
  return obj;
}

export function stringMap(value: unknown, what: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformedResponse(what);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw malformedResponse(what);
    out[k] = v;
  }
  return out;
}

export function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw malformedResponse(what);
  }
  return value as string[];
}

export function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw malformedResponse(what);
  return value;
}

// RFC 3339 with an optional fraction of any length (Go writes up to nanoseconds).
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

export function time(value: unknown, what: string): Date {
  const m = typeof value === 'string' ? RFC3339.exec(value) : null;
  if (m === null) throw malformedResponse(what);
  const fraction = m[2] === undefined ? '' : `.${m[2].slice(0, 3).padEnd(3, '0')}`;
  const date = new Date(`${m[1]}${fraction}${m[3]}`);
  if (Number.isNaN(date.getTime())) throw malformedResponse(what);
  return date;
}

export function bytes(value: unknown, what: string): Uint8Array {
  if (value === null) return new Uint8Array(0);
  if (typeof value !== 'string') throw malformedResponse(what);
  try {
    return fromBase64(value);
  } catch {
    throw malformedResponse(what);
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks: programmer mistakes are TypeError / RangeError (docs/style.md rule 8). Content
// rules (path syntax, names, patterns) are Nexus's to judge (§5): it answers 400.

export function checkString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string`);
}

export function checkVersion(version: number | undefined): void {
  if (version !== undefined && !Number.isSafeInteger(version)) {
    throw new RangeError('version must be an integer');
  }
}

export function checkVersions(versions: readonly number[]): number[] {
  if (!Array.isArray(versions)) throw new TypeError('versions must be an array of integers');
  for (const v of versions) {
    if (!Number.isSafeInteger(v)) throw new RangeError('versions must be integers');
  }
  return [...versions];
}

export function checkValues(values: Readonly<Record<string, string>>): Record<string, string> {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new TypeError('values must be an object of strings');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (typeof v !== 'string') throw new TypeError('values must be an object of strings');
    out[k] = v;
  }
  return out;
}

export function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}
