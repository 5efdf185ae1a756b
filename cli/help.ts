/**
 * Help text with examples for `spike` commands. citty has no examples section: its usage header
 * prints `meta.description`, and the parent's command list prints the same description. So a
 * command's `meta` is resolved lazily: when the command line names this very command (the help
 * being rendered is its own), the description gains an `Examples:` block; in a parent's list it
 * stays one line.
 */
import type { CommandMeta } from 'citty';

/** True when the non-flag words of the command line start with `path`. */
function namesCommand(path: readonly string[], argv: readonly string[]): boolean {
  const words = argv.filter((token) => !token.startsWith('-'));
  return path.every((part, i) => words[i] === part);
}

/**
 * A citty `meta` for the command at `path` (e.g. `['secret', 'get']`): `description` in lists,
 * plus `examples` in the command's own help: shell lines (shown after `$ `), `#` comments, and
 * indented continuation lines.
 */
export function commandMeta(
  path: readonly string[],
  description: string,
  examples: readonly string[],
): () => CommandMeta {
  const name = path[path.length - 1] ?? 'spike';
  return () => {
    if (examples.length === 0 || !namesCommand(path, process.argv.slice(2))) {
      return { name, description };
    }
    const lines = examples.map((line) => {
      if (line.startsWith('#')) return `  ${line}`;
      // An indented line continues the previous command (after a trailing `\\`).
      if (line.startsWith(' ')) return `      ${line.trim()}`;
      return `  $ ${line}`;
    });
    return { name, description: `${description}\n\nExamples:\n${lines.join('\n')}\n` };
  };
}
