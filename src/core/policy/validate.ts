/**
 * Field validation of the SPIKE v1 API (docs/spike-api.md §5): secret paths, names, value keys,
 * policy patterns and permissions.
 *
 * The four regular expressions are upstream's exact text, evaluated with RE2 semantics through
 * `re2js` (Go's `regexp.MatchString`: unanchored search; the patterns anchor themselves), so a
 * character class such as `[a-zA-Z0-9-_ ]` means here exactly what it means in Go. Lengths are
 * counted in UTF-8 bytes, as Go's `len(string)` counts them. Policy patterns must in addition
 * compile as RE2 [Ours: upstream accepted them and failed later with a 500].
 *
 * Validation runs after authorisation (§3 step 7); every failure is
 * `SpikeError('api_bad_request')` whose message names the field and never repeats the value.
 * Portable: no runtime APIs.
 */
import { RE2JS } from 're2js';
import { SpikeError } from '../errors.ts';

/** Policy permissions (docs/spike-api.md §5, §7); used by src/core/ports.ts and the SDK. */
export type Permission = 'read' | 'write' | 'list' | 'execute' | 'super';

/** Every permission, in the order of docs/spike-api.md §5. */
export const PERMISSIONS: readonly Permission[] = Object.freeze([
  'read',
  'write',
  'list',
  'execute',
  'super',
]);

/** A policy as written by a client, after validation (docs/spike-api.md §7). */
export interface PolicyInput {
  readonly name: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: readonly Permission[];
}

/** The §5 regular expressions, exact text (Go RE2 syntax). */
export const VALIDATION_PATTERNS = Object.freeze({
  path: String.raw`^[a-zA-Z0-9._\-/()?+*|[\]{}\\]+$`,
  name: '^[a-zA-Z0-9-_ ]+$',
  spiffeid: String.raw`^\^?spiffe://[\\a-zA-Z0-9.\-*()+?\[\]]+(/[\\/a-zA-Z0-9._\-*()+?\[\]]+)*\$?$`,
  pathPattern: String.raw`^[a-zA-Z0-9._\-/^$()?+*|[\]{}\\]+$`,
});

/** Byte limits of docs/spike-api.md §5. */
const LIMITS = Object.freeze({
  secretPathBytes: 500,
  nameBytes: 250,
  pathPatternBytes: 500,
});

const PATH_RE = RE2JS.compile(VALIDATION_PATTERNS.path);
const NAME_RE = RE2JS.compile(VALIDATION_PATTERNS.name);
const SPIFFEID_RE = RE2JS.compile(VALIDATION_PATTERNS.spiffeid);
const PATH_PATTERN_RE = RE2JS.compile(VALIDATION_PATTERNS.pathPattern);

function invalid(field: string, what: string): SpikeError {
  return new SpikeError('api_bad_request', `invalid ${field}: ${what}`);
}

/** Length of `s` in UTF-8 bytes (lone surrogates count 3, as U+FFFD). */
export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else {
        n += 3;
      }
    } else n += 3;
  }
  return n;
}

function lengthWithin(s: string, min: number, max: number): boolean {
  // Cheap bound first: a string of more than 4·max UTF-16 units has more than max bytes.
  if (s.length > max * 4) return false;
  const n = utf8ByteLength(s);
  return n >= min && n <= max;
}

/** True when `path` is a valid secret path: `path` regex, 1–500 bytes (docs/spike-api.md §5). */
export function isValidSecretPath(path: string): boolean {
  return lengthWithin(path, 1, LIMITS.secretPathBytes) && PATH_RE.test(path);
}

/** True when `name` is a valid policy name, policy id or value key: `name` regex, 1–250 bytes. */
export function isValidName(name: string): boolean {
  return lengthWithin(name, 1, LIMITS.nameBytes) && NAME_RE.test(name);
}

/** @throws SpikeError `api_bad_request` unless `path` is a valid secret path (§5). */
export function validateSecretPath(path: string): string {
  if (!isValidSecretPath(path)) {
    throw invalid(
      'path',
      'expected 1-500 bytes of letters, digits and . _ - / ( ) ? + * | [ ] { } \\',
    );
  }
  return path;
}

/**
 * @param field the wire field name used in the message (`name`, `id`, `values`).
 * @throws SpikeError `api_bad_request` unless `value` is a valid name (§5).
 */
export function validateName(value: string, field: string): string {
  if (!isValidName(value)) {
    throw invalid(field, 'expected 1-250 bytes of letters, digits, -, _ and space');
  }
  return value;
}

/** Every key of a secret's `values` map must be a valid name (§5); the values may be anything. */
export function validateValueKeys(values: Readonly<Record<string, string>>): void {
  for (const key of Object.keys(values)) validateName(key, 'values');
}

/**
 * Compiles `pattern` as RE2 (Go syntax).
 *
 * @throws SpikeError `api_bad_request` naming `field` when it does not compile.
 */
export function compileRe2(pattern: string, field: string): RE2JS {
  try {
    return RE2JS.compile(pattern);
  } catch (error) {
    throw new SpikeError('api_bad_request', `invalid ${field}: not a valid RE2 expression`, {
      cause: error,
    });
  }
}

/** @throws SpikeError `api_bad_request` unless the `spiffeid` regex matches and RE2 compiles it. */
export function validateSpiffeIdPattern(pattern: string): string {
  if (!SPIFFEID_RE.test(pattern)) {
    throw invalid('spiffeidPattern', 'expected a spiffe:// pattern');
  }
  compileRe2(pattern, 'spiffeidPattern');
  return pattern;
}

/** @throws SpikeError `api_bad_request` unless the `pathPattern` regex (1–500 bytes) and RE2 accept it. */
export function validatePathPattern(pattern: string): string {
  if (!lengthWithin(pattern, 1, LIMITS.pathPatternBytes) || !PATH_PATTERN_RE.test(pattern)) {
    throw invalid('pathPattern', 'expected 1-500 bytes of path pattern characters');
  }
  compileRe2(pattern, 'pathPattern');
  return pattern;
}

/** True for the five permission names of §5. */
export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

/** @throws SpikeError `api_bad_request` unless the list is non-empty and every entry is known. */
export function validatePermissions(permissions: readonly string[] | null): Permission[] {
  if (permissions === null || permissions.length === 0) {
    throw invalid('permissions', 'at least one permission is required');
  }
  const out: Permission[] = [];
  for (const p of permissions) {
    if (!isPermission(p)) {
      throw invalid('permissions', 'each must be one of read, write, list, execute, super');
    }
    out.push(p);
  }
  return out;
}

/**
 * Validates a policy as sent by a client (`/v1/acl/policy`, docs/spike-api.md §4, §5). The
 * reserved-path rule of §7 is the policy engine's (`compilePolicy`), since it needs the compiled
 * patterns.
 *
 * @throws SpikeError `api_bad_request` naming the first invalid field.
 */
export function validatePolicyInput(raw: {
  readonly name: string;
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
  readonly permissions: readonly string[] | null;
}): PolicyInput {
  return {
    name: validateName(raw.name, 'name'),
    spiffeIdPattern: validateSpiffeIdPattern(raw.spiffeIdPattern),
    pathPattern: validatePathPattern(raw.pathPattern),
    permissions: validatePermissions(raw.permissions),
  };
}
