/**
 * Help text with examples for `spike` commands. citty has no examples section: its usage header
 * prints `meta.description`, and the parent's command list prints the same description. So a
 * command's `meta` is resolved lazily: while the help of this very command is being rendered
 * (cli/usage.ts sets the target with {@link setHelpTarget}), the description gains an
 * `Examples:` block; in a parent's list it stays one line.
 */
import type { CommandMeta } from 'citty';

/** The command path whose help is being rendered, if any. */
let helpTarget: readonly string[] | undefined;

/** Marks `path` as the command whose own help is rendered next (`undefined`: none). */
export function setHelpTarget(path: readonly string[] | undefined): void {
  helpTarget = path;
}

function isHelpTarget(path: readonly string[]): boolean {
  return (
    helpTarget !== undefined &&
    helpTarget.length === path.length &&
    path.every((part, i) => helpTarget?.[i] === part)
  );
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
    if (examples.length === 0 || !isHelpTarget(path)) return { name, description };
    const lines = examples.map((line) => {
      if (line.startsWith('#')) return `  ${line}`;
      // An indented line continues the previous command (after a trailing `\\`).
      if (line.startsWith(' ')) return `      ${line.trim()}`;
      return `  $ ${line}`;
    });
    return { name, description: `${description}\n\nExamples:\n${lines.join('\n')}\n` };
  };
}
