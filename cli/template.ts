/**
 * The template language of `spike agent` (cli/commands/agent.ts; documented in docs/agent.md):
 * text with tags between `{{` and `}}`. A tag holds one action:
 *
 * - `{{ secret "tenants/acme/db" "pass" }}`: the value of key `pass` of the secret's current
 *   version;
 * - `{{ json "tenants/acme/db" }}`: every key of the secret as one JSON object (keys sorted);
 * - `{{ "text" }}`: the text as it is (so `{{ "{{" }}` writes a literal `{{`).
 *
 * Arguments are JSON string literals (double quotes, JSON escapes). Whitespace inside a tag is
 * free; `{{-` and `-}}` trim the whitespace (newlines included) before and after the tag, as in Go
 * templates. Anything else is an error at load time, with the line it is on, so a typo never
 * reaches a rendered file.
 */

/** One piece of a parsed template. */
type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'secret'; readonly path: string; readonly key: string }
  | { readonly kind: 'json'; readonly path: string };

/** A parsed template. */
export interface Template {
  readonly parts: readonly Part[];
  /** The secret paths it reads, each once. */
  readonly paths: readonly string[];
}

/** What rendering reads: the data of each secret path the template names. */
export type SecretData = ReadonlyMap<string, Readonly<Record<string, string>>>;

/** A template that cannot be parsed or rendered; the message names no secret value. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

const TAG = /\{\{(-?)([\s\S]*?)(-?)\}\}/g;
const TOKEN = /\s*("(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)/y;

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Splits a tag's inside into words (identifiers) and JSON strings. */
function tokens(body: string, where: string): { word?: string; text?: string }[] {
  const out: { word?: string; text?: string }[] = [];
  TOKEN.lastIndex = 0;
  let at = 0;
  while (body.slice(at).trim() !== '') {
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(body);
    if (m === null) throw new TemplateError(`${where}: cannot read the tag`);
    const token = m[1] as string;
    if (token.startsWith('"')) {
      try {
        out.push({ text: JSON.parse(token) as string });
      } catch {
        throw new TemplateError(`${where}: bad string literal`);
      }
    } else {
      out.push({ word: token });
    }
    at = TOKEN.lastIndex;
  }
  return out;
}

function action(body: string, where: string): Part {
  const t = tokens(body, where);
  const [head, ...args] = t;
  const strings = args.map((a) => a.text);
  const allStrings = strings.every((s) => s !== undefined);
  if (head?.text !== undefined && args.length === 0) return { kind: 'text', text: head.text };
  if (head?.word === 'secret' && args.length === 2 && allStrings) {
    return { kind: 'secret', path: strings[0] as string, key: strings[1] as string };
  }
  if (head?.word === 'json' && args.length === 1 && allStrings) {
    return { kind: 'json', path: strings[0] as string };
  }
  if (head?.word === 'secret' || head?.word === 'json') {
    const wanted = head.word === 'secret' ? '"path" "key"' : '"path"';
    throw new TemplateError(`${where}: ${head.word} takes ${wanted}`);
  }
  throw new TemplateError(
    `${where}: unknown action${head?.word === undefined ? '' : ` '${head.word}'`} (use secret, json or a "string")`,
  );
}

/**
 * Parses `text`; `name` names the template in errors (`agent.yaml templates[0]`).
 * @throws TemplateError with the line of the first bad tag.
 */
export function parseTemplate(text: string, name: string): Template {
  const parts: Part[] = [];
  const paths = new Set<string>();
  let last = 0;
  let trimNext = false;
  for (const m of text.matchAll(TAG)) {
    const at = m.index;
    const where = `${name} line ${lineOf(text, at)}`;
    let before = text.slice(last, at);
    if (trimNext) before = before.replace(/^\s+/, '');
    if (m[1] === '-') before = before.replace(/\s+$/, '');
    if (before !== '') parts.push({ kind: 'text', text: before });
    const part = action(m[2] as string, where);
    if (part.kind !== 'text') paths.add(part.path);
    parts.push(part);
    trimNext = m[3] === '-';
    last = at + m[0].length;
  }
  let rest = text.slice(last);
  if (trimNext) rest = rest.replace(/^\s+/, '');
  if (rest.includes('{{')) {
    throw new TemplateError(`${name} line ${lineOf(text, last + rest.indexOf('{{'))}: unclosed {{`);
  }
  if (rest !== '') parts.push({ kind: 'text', text: rest });
  return { parts, paths: [...paths] };
}

/**
 * Renders `template` with `data` (every path of `template.paths` must be present).
 * @throws TemplateError naming the path and key that are missing (never a value).
 */
export function renderTemplate(template: Template, data: SecretData): string {
  let out = '';
  for (const part of template.parts) {
    if (part.kind === 'text') {
      out += part.text;
      continue;
    }
    const secret = data.get(part.path);
    if (secret === undefined) throw new TemplateError(`secret '${part.path}' not found`);
    if (part.kind === 'json') {
      const sorted = Object.fromEntries(
        Object.keys(secret)
          .sort()
          .map((k) => [k, secret[k]]),
      );
      out += JSON.stringify(sorted);
      continue;
    }
    if (!Object.hasOwn(secret, part.key)) {
      throw new TemplateError(`secret '${part.path}' has no key '${part.key}'`);
    }
    out += secret[part.key];
  }
  return out;
}
