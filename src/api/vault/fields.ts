/**
 * Request fields of the Vault KV v2 API (docs/vault-kv2.md) with Vault's own rules: durations
 * (§2 "Durations") and `custom_metadata` limits (§4.5). Failures are `SpikeError('api_bad_request')` whose message is
 * the string Vault sends; values are never repeated (keys of `custom_metadata` are, clipped, as
 * Vault does: they are labels, not secrets).
 *
 * Portable: no runtime APIs.
 */
import { parseGoDuration } from '../../core/duration.ts';
import { SpikeError } from '../../core/errors.ts';
import { utf8ByteLength } from '../../core/policy/validate.ts';
import { VAULT_ERRORS } from './errors.ts';

/** Vault's `custom_metadata` limits (§4.5). */
const CUSTOM_METADATA_LIMITS = Object.freeze({ keys: 64, keyBytes: 128, valueBytes: 512 });

const MAX_DURATION_SECONDS = 100 * 365 * 24 * 3600;

/**
 * A duration field: an integer number of seconds (JSON number or digit string) or a Go duration
 * string; returns whole milliseconds (rounded down to seconds, as Vault keeps seconds).
 *
 * @throws SpikeError `api_bad_request` `error parsing <field>` otherwise.
 */
export function parseVaultDuration(value: unknown, field: string): number {
  const bad = () => new SpikeError('api_bad_request', `error parsing ${field}`);
  let seconds: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw bad();
    seconds = value;
  } else if (typeof value === 'string') {
    const s = value.trim();
    if (/^-?[0-9]{1,12}$/.test(s)) seconds = Number(s);
    else {
      try {
        seconds = Math.trunc(parseGoDuration(s) / 1000);
      } catch {
        throw bad();
      }
    }
  } else {
    throw bad();
  }
  if (!Number.isSafeInteger(seconds) || Math.abs(seconds) > MAX_DURATION_SECONDS) throw bad();
  return seconds * 1000;
}

// Go's strutil.Printable: every rune is unicode.IsPrint (letters, marks, numbers, punctuation,
// symbols and the ASCII space).
const UNPRINTABLE = /[\p{C}\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;

function quoted(key: string): string {
  return JSON.stringify(key.length > 128 ? `${key.slice(0, 128)}…` : key);
}

/**
 * Checks a `custom_metadata` map against Vault's limits (§4.5); every problem is reported, joined
 * with `; `, after the prefix `custom_metadata validation failed: `.
 *
 * @throws SpikeError `api_bad_request` with that message.
 */
export function validateCustomMetadata(map: Readonly<Record<string, string>>): void {
  const problems: string[] = [];
  const keys = Object.keys(map);
  const L = CUSTOM_METADATA_LIMITS;
  if (keys.length > L.keys) {
    problems.push(`payload must contain at most ${L.keys} keys, provided ${keys.length}`);
  }
  for (const key of keys) {
    const value = map[key] ?? '';
    const printableKey = !UNPRINTABLE.test(key);
    const shown = printableKey ? quoted(key) : '(unprintable)';
    const kl = utf8ByteLength(key);
    if (kl === 0 || kl > L.keyBytes) {
      problems.push(`length of key ${shown} is ${kl} but must be 0 < len(key) <= ${L.keyBytes}`);
    }
    const vl = utf8ByteLength(value);
    if (vl === 0 || vl > L.valueBytes) {
      problems.push(
        `length of value for key ${shown} is ${vl} but must be 0 < len(value) <= ${L.valueBytes}`,
      );
    }
    if (!printableKey) problems.push('key (…) contains unprintable characters');
    if (UNPRINTABLE.test(value))
      problems.push(`value for key ${shown} contains unprintable characters`);
  }
  if (problems.length > 0) {
    throw new SpikeError('api_bad_request', `${VAULT_ERRORS.customMetadata}${problems.join('; ')}`);
  }
}
