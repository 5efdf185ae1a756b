/**
 * `spike help [command…]`: the help of a command, as `spike <command…> --help` prints it
 * (usage, arguments, options, examples). An unknown command is a usage error (exit 2).
 */
import { defineCommand } from 'citty';
import { commandMeta } from '../help.ts';
import { EXIT, fail, writeErr, writeOut } from '../output.ts';
import { closest } from '../parse.ts';
import { spike as root, subCommandsOf } from '../tree.ts';
import { plain, renderHelp, usageLines } from '../usage.ts';

const commandArg = {
  type: 'positional',
  description: 'The command, e.g. secret get',
  required: false,
  valueHint: 'command...',
  variadic: true,
} as const;

const helpCommand = defineCommand({
  meta: commandMeta(['help'], 'Show the help of a command', [
    'spike help',
    'spike help secret',
    'spike help secret delete',
  ]),
  args: { command: commandArg },
  async run({ args }) {
    const path: string[] = [];
    let current = root;
    for (const word of args._) {
      const subs = await subCommandsOf(current);
      const next = subs[word];
      if (next === undefined) {
        const hint = closest(word, Object.keys(subs));
        const where = ['spike', ...path].join(' ');
        writeErr(
          `Error: Unknown command '${word.includes('=') ? '…' : word}' in '${where}'.${hint === undefined ? '' : ` Did you mean '${hint}'?`}`,
        );
        fail(plain(await usageLines(['help']), process.stderr), EXIT.usage);
      }
      path.push(word);
      current = next;
    }
    writeOut(plain(await renderHelp(path), process.stdout));
  },
});

export default helpCommand;
