/**
 * The strict command-line parser of `spike`: it walks the command tree (cli/tree.ts) and then
 * reads the chosen command's words against exactly what that command declares. Anything it does
 * not understand is an error, never a guess: an unknown or misspelt option (with a "did you mean"
 * hint), an option given twice, a value for a flag or none for an option that needs one, and a
 * missing or extra positional argument. cli/main.ts turns an error into exit 2 with the
 * command's usage line, before anything connects to Nexus.
 *
 * What it accepts: `--name value`, `--name=value`, `-x value`, `-x=value`, `-xvalue`, boolean
 * flags without a value (`--yes`, `-y`), `--help`/`-h` anywhere before `--`, and `--` to end the
 * options. An option marked `repeatable` may be given several times (its values form a list). An option's value may start with `-` (`--version -1` gets the version's own message).
 *
 * Error messages never repeat an option's value, nor a word holding `=` (a rejected key=value
 * argument may be a secret).
 */
import {
  type AnyCommand,
  aliasesOf,
  argsOf,
  isRepeatable,
  isRequired,
  isVariadic,
  type NamedArg,
  spike,
  subCommand,
  subCommandNames,
} from './tree.ts';

/** The arguments a command's `run` receives: options and positionals by name, `_` all words. */
type ParsedArgs = { _: string[] } & Record<string, string | string[] | boolean | undefined>;

/** What a command line asks for. */
export type CommandLine =
  | { readonly kind: 'help'; readonly path: string[] }
  | {
      readonly kind: 'run';
      readonly path: string[];
      readonly command: AnyCommand;
      readonly args: ParsedArgs;
      readonly rawArgs: string[];
    }
  | { readonly kind: 'error'; readonly path: string[]; readonly message: string };

const HELP_FLAGS = new Set(['--help', '-h']);

/** How a word is shown in an error: never when it holds `=` (it may be `key=secret`). */
function shown(word: string): string {
  return word.includes('=') ? '(a key=value argument)' : `'${word}'`;
}

/** Optimal string alignment distance (edits, with adjacent transpositions counting one). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1);
      best = Math.min(best, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = best;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

const squash = (name: string) => name.toLowerCase().replace(/[-_]/g, '');

/** The candidate closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    let score = distance(squash(word), squash(candidate));
    if (word.length >= 3 && candidate.startsWith(word)) score = Math.min(score, 1);
    if (score < bestScore) [best, bestScore] = [candidate, score];
  }
  const allowed = Math.max(1, Math.floor(word.length / 3));
  return bestScore <= allowed ? best : undefined;
}

const error = (path: string[], message: string): CommandLine => ({ kind: 'error', path, message });

/** Parses `rawArgs` (the words after `spike`) against the command tree. */
export async function parseCommandLine(rawArgs: readonly string[]): Promise<CommandLine> {
  const end = rawArgs.indexOf('--');
  const help = (end === -1 ? rawArgs : rawArgs.slice(0, end)).some((w) => HELP_FLAGS.has(w));
  const path: string[] = [];
  let command: AnyCommand = spike;
  let i = 0;
  for (;;) {
    // Only the named subcommand is loaded: a command pays only for the modules it uses.
    const names = await subCommandNames(command);
    if (names.length === 0) break;
    const word = rawArgs[i];
    if (word === undefined) {
      if (help || path.length === 0) return { kind: 'help', path };
      return error(path, `Missing command: choose one of ${names.join(', ')}.`);
    }
    if (HELP_FLAGS.has(word)) {
      i++;
      continue;
    }
    const next = names.includes(word) ? await subCommand(command, word) : undefined;
    if (next === undefined) {
      if (help) return { kind: 'help', path };
      if (word.startsWith('-')) {
        return error(path, `Unknown option ${optionKey(word)}: choose a command first.`);
      }
      const hint = closest(word, names);
      return error(
        path,
        `Unknown command ${shown(word)}.${hint === undefined ? '' : ` Did you mean '${hint}'?`}`,
      );
    }
    path.push(word);
    command = next;
    i++;
  }
  if (help) return { kind: 'help', path };
  const words = rawArgs.slice(i);
  const parsed = readWords(words, await argsOf(command));
  if (typeof parsed === 'string') return error(path, parsed);
  return { kind: 'run', path, command, args: parsed, rawArgs: words };
}

/** `--name=value` → `--name`: the part of an option word that may be shown. */
function optionName(word: string): string {
  const at = word.indexOf('=');
  return at === -1 ? word : word.slice(0, at);
}

/** The option an option word names, never its value: `--name=v` → `--name`, `-xv` → `-x`. */
function optionKey(word: string): string {
  return word.startsWith('--') ? optionName(word) : word.slice(0, 2);
}

/** The `--long` and `-x` spellings of an option, for messages. */
function spellings(arg: NamedArg): string {
  const shorts = aliasesOf(arg).filter((a) => a.length === 1);
  return [...shorts.map((a) => `-${a}`), `--${arg.name}`].join('/');
}

/** Reads a leaf command's words; a string is the error message. */
function readWords(words: readonly string[], defs: readonly NamedArg[]): ParsedArgs | string {
  const byName = new Map<string, NamedArg>();
  for (const def of defs) {
    if (def.type === 'positional') continue;
    byName.set(`--${def.name}`, def);
    for (const alias of aliasesOf(def))
      byName.set(alias.length === 1 ? `-${alias}` : `--${alias}`, def);
  }
  const isOption = (word: string) => byName.has(optionName(word)) || HELP_FLAGS.has(word);

  const values: Record<string, string | string[] | boolean> = {};
  const positionals: string[] = [];
  let options = true;
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (!options || word === '-' || !word.startsWith('-')) {
      positionals.push(word);
      continue;
    }
    if (word === '--') {
      options = false;
      continue;
    }
    let key: string;
    let inline: string | undefined;
    if (word.startsWith('--')) {
      key = optionName(word);
      inline = key === word ? undefined : word.slice(key.length + 1);
    } else {
      key = word.slice(0, 2);
      const rest = word.slice(2);
      inline = rest === '' ? undefined : rest.startsWith('=') ? rest.slice(1) : rest;
    }
    const def = byName.get(key);
    if (def === undefined) return unknownOption(key, defs);
    const label = spellings(def);
    if (Object.hasOwn(values, def.name) && !isRepeatable(def)) {
      return `Option ${label} is given more than once.`;
    }
    if (def.type === 'boolean') {
      if (inline !== undefined) return `Option ${label} takes no value.`;
      values[def.name] = true;
      continue;
    }
    if (inline === undefined) {
      const next = words[i + 1];
      if (next === undefined || next === '--' || isOption(next)) {
        return `Option ${label} needs a value.`;
      }
      inline = next;
      i++;
    }
    // A repeatable option (`spike run --env A=a --env B=b`) collects its values in order.
    if (isRepeatable(def)) values[def.name] = [...((values[def.name] as string[]) ?? []), inline];
    else values[def.name] = inline;
  }

  const args = { _: positionals } as ParsedArgs;
  for (const def of defs) {
    if (
      def.type !== 'positional' &&
      def.default !== undefined &&
      !Object.hasOwn(values, def.name)
    ) {
      args[def.name] = def.default as string | boolean;
    }
  }
  Object.assign(args, values);
  const queue = [...positionals];
  for (const def of defs) {
    if (def.type !== 'positional') continue;
    if (queue.length === 0) {
      if (isRequired(def)) return `Missing argument: <${def.name.toUpperCase()}>.`;
      break;
    }
    args[def.name] = queue.shift();
    if (isVariadic(def)) queue.length = 0;
  }
  if (queue.length > 0) {
    return `Unexpected argument${queue.length === 1 ? '' : 's'}: ${queue.map(shown).join(', ')}.`;
  }
  return args;
}

/** The message for an option the command does not have, with a hint when one is likely. */
function unknownOption(key: string, defs: readonly NamedArg[]): string {
  const options = defs.filter((d) => d.type !== 'positional');
  let match: NamedArg | undefined;
  if (key.startsWith('--')) {
    const name = closest(
      key.slice(2),
      options.map((d) => d.name),
    );
    match = options.find((d) => d.name === name);
  } else {
    const named = options.filter((d) => d.name.startsWith(key.slice(1)));
    if (named.length === 1) match = named[0];
  }
  const hint = match === undefined ? '' : ` Did you mean ${spellings(match)}?`;
  const note = key === '-f' ? ' (-f always means --format)' : '';
  return `Unknown option ${key}.${hint}${note}`;
}
