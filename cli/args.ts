/**
 * Argument parsing shared by `spike` commands, with the exact messages of docs/spike-api.md §11. Every
 * failure here is a usage error (exit 2) and happens before anything is sent to Nexus.
 */
import { isValidSecretPath } from '../src/core/policy/validate.ts';
import { EXIT, fail } from './output.ts';

/** `-v/--version N` of `secret get` and `secret metadata get`: an integer ≥ 0 (0 = current). */
export function parseVersion(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  return parseOneVersion(value);
}

function parseOneVersion(raw: string): number {
  const text = raw.trim();
  if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    fail(`Error: Invalid version number: ${raw}`, EXIT.usage);
  }
  const n = Number(text);
  if (n < 0) fail(`Error: Negative version number: ${raw}`, EXIT.usage);
  return n;
}

/**
 * `-v/--versions "0,1,2"` of delete/undelete/destroy. Absent or empty gives `[]`, which Nexus
 * reads as "the current version" and, for undelete when no version is live, "the highest deleted
 * version" (§6): after deleting the only live version, a plain `secret undelete <path>` brings it
 * back (upstream's default `0` would undelete nothing then).
 */
export function parseVersions(value: string | undefined): number[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map(parseOneVersion);
}

/**
 * The `<k=v>…` pairs of `secret put`: split at the first `=`. Any pair without `=` ends the
 * command before anything is written (§11 [Ours]). The message names the pair by its position
 * only: a malformed pair may be a secret (`pass:s3cret`), so it is never
 * echoed.
 */
export function parsePairs(pairs: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [i, pair] of pairs.entries()) {
    const at = pair.indexOf('=');
    if (at === -1) {
      fail(
        `Error: Invalid key-value pair #${i + 1}: it has no '=' (the pair is not shown).`,
        EXIT.usage,
      );
    }
    values[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return values;
}

/** A secret path as §5 allows it (checked locally so a typo costs no round trip). */
export function checkSecretPath(path: string): string {
  if (!isValidSecretPath(path)) fail(`Error: Invalid secret path: ${path}`, EXIT.usage);
  return path;
}
