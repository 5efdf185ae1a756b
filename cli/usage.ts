/**
 * Help and usage text of `spike` commands, rendered by citty from the command tree
 * (cli/tree.ts), with the full command name (`spike secret get`) in the header and the usage line.
 */
import { renderUsage } from 'citty';
import { setHelpTarget } from './help.ts';
import { type AnyCommand, commandAt, spike, VERSION } from './tree.ts';

const ANSI = /\u001b\[[0-9;]*m/g;

/** citty colours its usage text; keep escape codes out of pipes and files. */
export function plain(text: string, stream: NodeJS.WriteStream): string {
  return stream.isTTY ? text : text.replace(ANSI, '');
}

/** The full help of the command at `path` (with its examples). */
export async function renderHelp(path: readonly string[]): Promise<string> {
  const command = (await commandAt(path)) ?? spike;
  // A parent that only carries the full name: citty prints `<parent name> <command name>`.
  const parent: AnyCommand | undefined =
    path.length === 0
      ? undefined
      : { meta: { name: ['spike', ...path.slice(0, -1)].join(' '), version: VERSION } };
  setHelpTarget(path);
  try {
    return await renderUsage(command, parent);
  } finally {
    setHelpTarget(undefined);
  }
}

/** The `USAGE …` line of the command at `path`, and where to find more. */
export async function usageLines(path: readonly string[]): Promise<string> {
  const help = await renderHelp(path);
  const line = help
    .split('\n')
    .map((l) => l.replace(ANSI, ''))
    .find((l) => l.startsWith('USAGE'));
  const name = ['spike', ...path].join(' ');
  return `${(line ?? `USAGE ${name}`).trimEnd()}\nRun '${['spike', 'help', ...path].join(' ')}' for options and examples.`;
}
