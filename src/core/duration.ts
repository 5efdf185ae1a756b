/**
 * Go duration strings (`time.ParseDuration`): `30s`, `1m30s`, `1.5h`, `250ms`, `0`.
 *
 * SPIKE's configuration uses Go durations (for example `SPIKE_SPIFFE_SOURCE_TIMEOUT=30s`), so
 * existing deployments keep their values. A duration is an optional sign and a sequence of
 * decimal numbers, each with an optional fraction and a unit: `ns`, `us` (or `µs`, `μs`), `ms`,
 * `s`, `m`, `h`. A bare `0` is allowed; any other number needs a unit.
 */
import { SpikeError } from './errors.ts';

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /^([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go duration string into milliseconds (possibly fractional, possibly negative).
 *
 * @throws SpikeError `config_invalid` for anything `time.ParseDuration` would reject; the message
 *   does not repeat the value.
 */
export function parseGoDuration(value: string): number {
  if (typeof value !== 'string') throw new TypeError('duration must be a string');
  const bad = () => new SpikeError('config_invalid', 'invalid duration (expected e.g. 30s, 1m30s)');
  let s = value;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s.length === 0) throw bad();
  let total = 0;
  while (s.length > 0) {
    const m = PART.exec(s);
    if (m === null) throw bad();
    const whole = m[1] ?? '';
    const frac = m[2];
    // A number needs at least one digit on one side of the dot (`.s` and `s` are invalid).
    if (whole.length === 0 && (frac === undefined || frac.length === 0)) throw bad();
    const n = Number(`${whole.length > 0 ? whole : '0'}.${frac ?? '0'}`);
    total += n * UNIT_MS[m[3]!]!;
    s = s.slice(m[0].length);
  }
  // Go's limit: about 290 years in nanoseconds.
  if (total > 9_223_372_036_854) throw bad();
  return sign * total;
}
