/**
 * Shell completion scripts for `spike` (bash, zsh, fish), generated from the command tree
 * (cli/tree.ts) each time `spike completion <shell>` runs, so they cannot drift from the commands
 * they complete: command names (with descriptions in zsh and fish), each command's options, the
 * values of `-f/--format`, of options with `choices` (`run --signal`) and of `completion`, file names for file options, and command names
 * after `spike help`.
 */
import { type AnyCommand, aliasesOf, argsOf, resolveValue, walkTree } from './tree.ts';

/** The shells `spike completion` writes a script for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

interface OptionInfo {
  readonly long: string;
  readonly shorts: readonly string[];
  readonly takesValue: boolean;
  /** Completion of the value: fixed words, or file names. */
  readonly values?: readonly string[] | 'files';
  readonly description: string;
}

interface CommandInfo {
  /** The path joined by spaces, `''` for the root. */
  readonly key: string;
  readonly subcommands: readonly { name: string; description: string }[];
  readonly options: readonly OptionInfo[];
  /** Fixed words for the first positional argument (`completion <shell>`). */
  readonly positionalValues: readonly string[];
}

const FORMATS = ['human', 'json', 'yaml'];

async function describe(command: AnyCommand): Promise<string> {
  const meta = await resolveValue(command.meta);
  return (meta?.description ?? '').split('\n')[0] ?? '';
}

/** What completion needs to know about every command. */
async function collect(): Promise<CommandInfo[]> {
  const tree = await walkTree();
  const infos: CommandInfo[] = [];
  for (const { path, command } of tree) {
    const children = tree.filter(
      (t) => t.path.length === path.length + 1 && path.every((p, i) => t.path[i] === p),
    );
    const subcommands = [];
    for (const child of children) {
      subcommands.push({
        name: child.path[child.path.length - 1] as string,
        description: await describe(child.command),
      });
    }
    const options: OptionInfo[] = [];
    let positionalValues: string[] = [];
    for (const arg of await argsOf(command)) {
      if (arg.type === 'positional') {
        if (path.join(' ') === 'completion' && positionalValues.length === 0) {
          positionalValues = [...SHELLS];
        }
        continue;
      }
      const hint = (arg as { valueHint?: string }).valueHint;
      // `choices` (e.g. the signals of `spike run --signal`) are completed as fixed words.
      const choices = (arg as { choices?: readonly string[] }).choices;
      const values =
        arg.name === 'format'
          ? FORMATS
          : hint === 'file'
            ? ('files' as const)
            : choices !== undefined
              ? choices
              : undefined;
      options.push({
        long: arg.name,
        shorts: aliasesOf(arg).filter((a) => a.length === 1),
        takesValue: arg.type !== 'boolean',
        ...(values === undefined ? {} : { values }),
        description: arg.description ?? '',
      });
    }
    options.push({ long: 'help', shorts: ['h'], takesValue: false, description: 'Show help' });
    infos.push({ key: path.join(' '), subcommands, options, positionalValues });
  }
  return infos;
}

/** Single-quotes `text` for a POSIX shell (and zsh, fish). */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function flags(option: OptionInfo): string[] {
  return [`--${option.long}`, ...option.shorts.map((s) => `-${s}`)];
}

/** The shell functions bash and zsh share: tables of commands, options and option values. */
function tables(infos: readonly CommandInfo[]): string {
  const caseOf = (name: string, rows: string[], fallback: string) =>
    [`${name}() {`, '  case "$1" in', ...rows, `    *) ${fallback} ;;`, '  esac', '}'].join('\n');
  const commands = caseOf(
    '_spike_is_command',
    [`    ${infos.map((i) => quote(i.key)).join('|')}) return 0 ;;`],
    'return 1',
  );
  const subcommands = caseOf(
    '_spike_subcommands',
    infos
      .filter((i) => i.subcommands.length > 0)
      .map(
        (i) => `    ${quote(i.key)}) echo ${quote(i.subcommands.map((s) => s.name).join(' '))} ;;`,
      ),
    'echo',
  );
  const options = caseOf(
    '_spike_options',
    infos.map((i) => `    ${quote(i.key)}) echo ${quote(i.options.flatMap(flags).join(' '))} ;;`),
    'echo',
  );
  const valueRows: string[] = [];
  for (const info of infos) {
    for (const option of info.options) {
      if (option.values === undefined) continue;
      const labels = flags(option).map((f) => quote(`${info.key}|${f}`));
      const words = option.values === 'files' ? '__files__' : option.values.join(' ');
      valueRows.push(`    ${labels.join('|')}) echo ${quote(words)} ;;`);
    }
    if (info.positionalValues.length > 0) {
      valueRows.push(
        `    ${quote(`${info.key}|`)}) echo ${quote(info.positionalValues.join(' '))} ;;`,
      );
    }
  }
  const values = caseOf('_spike_values', valueRows, 'echo');
  const walk = `# Sets _spike_key to the command the words name, _spike_help to 1 after \`spike help\`.
_spike_walk() {
  _spike_key=''
  _spike_help=0
  local word next
  for word in "$@"; do
    [[ $word == -* ]] && continue
    if [[ -z $_spike_key && $_spike_help == 0 && $word == help ]]; then
      _spike_help=1
      continue
    fi
    next="\${_spike_key:+$_spike_key }$word"
    if _spike_is_command "$next"; then _spike_key=$next; else break; fi
  done
}`;
  return [commands, subcommands, options, values, walk].join('\n\n');
}

function bash(infos: readonly CommandInfo[]): string {
  return `# bash completion for spike. Generated by \`spike completion bash\`; load it with
#   source <(spike completion bash)
${tables(infos)}

_spike() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} values
  _spike_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}"
  if ((_spike_help)); then
    COMPREPLY=($(compgen -W "$(_spike_subcommands "$_spike_key")" -- "$cur"))
    return
  fi
  values=$(_spike_values "$_spike_key|$prev")
  if [[ $prev == -* && -n $values ]]; then
    if [[ $values == __files__ ]]; then COMPREPLY=($(compgen -f -- "$cur"))
    else COMPREPLY=($(compgen -W "$values" -- "$cur")); fi
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_spike_options "$_spike_key")" -- "$cur"))
  else
    values=$(_spike_subcommands "$_spike_key")
    [[ -z $values ]] && values=$(_spike_values "$_spike_key|")
    COMPREPLY=($(compgen -W "$values" -- "$cur"))
  fi
}
complete -F _spike spike
`;
}

function zsh(infos: readonly CommandInfo[]): string {
  const described = [
    '_spike_described() {',
    '  case "$1" in',
    ...infos
      .filter((i) => i.subcommands.length > 0)
      .map(
        (i) =>
          `    ${quote(i.key)}) print -rl -- ${i.subcommands
            .map((s) => quote(`${s.name}:${s.description.replace(/:/g, '\\:')}`))
            .join(' ')} ;;`,
      ),
    '  esac',
    '}',
  ].join('\n');
  return `#compdef spike
# zsh completion for spike. Generated by \`spike completion zsh\`; load it with
#   source <(spike completion zsh)
# or save it as _spike in a directory of $fpath.
${tables(infos)}

${described}

_spike() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]} values
  local -a described
  _spike_walk "\${(@)words[2,CURRENT-1]}"
  if [[ $prev == -* && $_spike_help == 0 ]]; then
    values=$(_spike_values "$_spike_key|$prev")
    if [[ $values == __files__ ]]; then _files; return; fi
    if [[ -n $values ]]; then compadd -- \${=values}; return; fi
  fi
  if [[ $cur == -* && $_spike_help == 0 ]]; then
    compadd -- \${=$(_spike_options "$_spike_key")}
    return
  fi
  described=(\${(f)"$(_spike_described "$_spike_key")"})
  if ((\${#described})); then
    _describe 'command' described
  elif [[ $_spike_help == 0 ]]; then
    values=$(_spike_values "$_spike_key|")
    [[ -n $values ]] && compadd -- \${=values}
  fi
}

if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _spike "$@"
else
  compdef _spike spike
fi
`;
}

function fish(infos: readonly CommandInfo[]): string {
  const lines = [
    '# fish completion for spike. Generated by `spike completion fish`; load it with',
    '#   spike completion fish | source',
    `set -g __spike_commands ${infos
      .filter((i) => i.key !== '')
      .map((i) => quote(i.key))
      .join(' ')}`,
    '',
    '# The command the words typed so far name (`help` when after `spike help`).',
    'function __spike_key',
    '    set -l tokens (commandline -opc)',
    '    set -e tokens[1]',
    "    set -l key ''",
    '    for t in $tokens',
    "        if string match -q -- '-*' $t",
    '            continue',
    '        end',
    '        if test -z "$key" -a "$t" = help',
    '            echo help',
    '            return',
    '        end',
    '        set -l next (string trim -- "$key $t")',
    '        if contains -- $next $__spike_commands',
    '            set key $next',
    '        else',
    '            break',
    '        end',
    '    end',
    '    echo $key',
    'end',
    '',
    'function __spike_at',
    '    set -l key (__spike_key)',
    '    test "$key" = "$argv[1]"',
    'end',
    '',
    'complete -c spike -f',
  ];
  const root = infos.find((i) => i.key === '');
  for (const info of infos) {
    const at = `-n ${quote(`__spike_at ${quote(info.key)}`)}`;
    for (const sub of info.subcommands) {
      lines.push(`complete -c spike ${at} -a ${quote(sub.name)} -d ${quote(sub.description)}`);
    }
    for (const option of info.options) {
      const parts = [`complete -c spike ${at} -l ${option.long}`];
      for (const s of option.shorts) parts.push(`-s ${s}`);
      // `-r -F`: a file name follows; `-x`: some other value (no file names offered).
      if (option.values === 'files') parts.push('-r -F');
      else if (option.takesValue) parts.push('-x');
      if (Array.isArray(option.values)) parts.push(`-a ${quote(option.values.join(' '))}`);
      parts.push(`-d ${quote(option.description)}`);
      lines.push(parts.join(' '));
    }
    if (info.positionalValues.length > 0) {
      lines.push(`complete -c spike ${at} -a ${quote(info.positionalValues.join(' '))}`);
    }
  }
  for (const sub of root?.subcommands ?? []) {
    lines.push(
      `complete -c spike -n ${quote('__spike_at help')} -a ${quote(sub.name)} -d ${quote(sub.description)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The completion script for `shell`, generated from the command tree. */
export async function completionScript(shell: Shell): Promise<string> {
  const infos = await collect();
  return shell === 'bash' ? bash(infos) : shell === 'zsh' ? zsh(infos) : fish(infos);
}
