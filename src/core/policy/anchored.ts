/**
 * Anchoring of policy patterns (docs/spike-api.md §7 "Anchoring"). Patterns match with RE2 search
 * semantics, so a pattern without `^…$` also matches inside longer values: `^secrets/demo` grants
 * `secrets/demo2`, `tenants/demo/db` grants `x/tenants/demo/db`. The CLI refuses such a pattern
 * unless asked (`--allow-unanchored`); Nexus stores it and answers with a warning.
 * Portable: no runtime APIs.
 */

/** The two pattern fields, by their wire names. */
export type PatternField = 'pathPattern' | 'spiffeidPattern';

/**
 * True when `pattern` starts with `^` (optionally after one flag group such as `(?i)`), ends with
 * an unescaped `$`, and has no `|` outside parentheses and character classes (`^a|b$` matches
 * `xb`; write `^(?:a|b)$`).
 */
export function isAnchored(pattern: string): boolean {
  const body = pattern.replace(/^\(\?[a-zA-Z]+\)/, '');
  if (!body.startsWith('^') || !body.endsWith('$')) return false;
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\\') {
      // An escape: the next character is a literal; an escaped final `$` is no anchor.
      if (i === body.length - 2) return false;
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') {
      inClass = true;
      // `[]…]` and `[^]…]` hold a literal `]`.
      if (body[i + 1] === '^') i++;
      if (body[i + 1] === ']') i++;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth <= 0) return false;
  }
  return true;
}

const MATCHES_OTHER: Record<PatternField, string> = {
  pathPattern: 'it also matches other paths',
  spiffeidPattern: 'it also matches other SPIFFE IDs',
};

/** The fields of a policy whose pattern is not anchored, in wire order. */
export function unanchoredFields(policy: {
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
}): PatternField[] {
  const out: PatternField[] = [];
  if (!isAnchored(policy.spiffeIdPattern)) out.push('spiffeidPattern');
  if (!isAnchored(policy.pathPattern)) out.push('pathPattern');
  return out;
}

/** Nexus's warning for a stored policy, or `undefined` when both patterns are anchored. */
export function anchoringWarning(policy: {
  readonly spiffeIdPattern: string;
  readonly pathPattern: string;
}): string | undefined {
  const fields = unanchoredFields(policy);
  if (fields.length === 0) return undefined;
  return fields.map((f) => `${f} is not anchored (^…$): ${MATCHES_OTHER[f]}`).join('; ');
}
