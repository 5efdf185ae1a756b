/**
 * `spike completion bash|zsh|fish`: prints a shell completion script, generated from the
 * command tree (cli/completion.ts) so it always matches the commands and options.
 */
import { defineCommand } from 'citty';
import { completionScript, SHELLS, type Shell } from '../completion.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, writeOut } from '../output.ts';

const completionCommand = defineCommand({
  meta: commandMeta(['completion'], 'Print a shell completion script (bash, zsh or fish)', [
    'source <(spike completion bash)          # bash, e.g. in ~/.bashrc',
    'source <(spike completion zsh)           # zsh, e.g. in ~/.zshrc',
    'spike completion fish | source           # fish',
    'spike completion fish > ~/.config/fish/completions/spike.fish',
  ]),
  args: {
    shell: { type: 'positional', description: 'bash, zsh or fish', required: true },
  },
  async run({ args }) {
    const shell = String(args.shell);
    if (!(SHELLS as readonly string[]).includes(shell)) {
      fail(`Error: Unknown shell '${shell}'. Use one of: ${SHELLS.join(', ')}.`, EXIT.usage);
    }
    writeOut(await completionScript(shell as Shell));
  },
});

export default completionCommand;
