/**
 * The `spike` command tree: the root command and its subcommands, each in
 * `cli/commands/<name>.ts` with a citty command as default export, loaded lazily so a command
 * only pays for the modules it uses. The parser (cli/parse.ts), help (cli/usage.ts) and shell
 * completion (cli/completion.ts) all read this one tree, so they cannot drift apart.
 */
import { type ArgDef, type CommandDef, defineCommand } from 'citty';
import pkg from '../package.json' with { type: 'json' };

// biome-ignore lint/suspicious/noExplicitAny: citty's own SubCommandsDef uses CommandDef<any>.
export type AnyCommand = CommandDef<any>;

/** Subcommands by name. Add new ones here. */
const COMMANDS: Record<string, () => Promise<AnyCommand>> = {
  whoami: () => import('./commands/whoami.ts').then((m) => m.default),
  secret: () => import('./commands/secret.ts').then((m) => m.default),
  policy: () => import('./commands/policy.ts').then((m) => m.default),
  cipher: () => import('./commands/cipher.ts').then((m) => m.default),
  operator: () => import('./commands/operator.ts').then((m) => m.default),
  status: () => import('./commands/status.ts').then((m) => m.default),
  run: () => import('./commands/run.ts').then((m) => m.default),
  agent: () => import('./commands/agent.ts').then((m) => m.default),
  help: () => import('./commands/help.ts').then((m) => m.default),
  completion: () => import('./commands/completion.ts').then((m) => m.default),
};

/** The root command, `spike`. */
export const spike = defineCommand({
  meta: {
    name: 'spike',
    version: pkg.version,
    description: 'SPIKE Pilot: manage secrets, policies and keys in SPIKE Nexus over mTLS',
  },
  subCommands: COMMANDS,
});

/** The version `spike --version` prints. */
export const VERSION = pkg.version;

/** Resolves a citty value that may be a promise or a (lazy) function returning one. */
export async function resolveValue<T>(
  value: T | Promise<T> | (() => T | Promise<T>) | undefined,
): Promise<T | undefined> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

/** The subcommands of `command` by name (empty for a leaf command). */
export async function subCommandsOf(command: AnyCommand): Promise<Record<string, AnyCommand>> {
  const subs = await resolveValue(command.subCommands);
  const out: Record<string, AnyCommand> = {};
  for (const [name, sub] of Object.entries(subs ?? {})) {
    const resolved = await resolveValue(sub as AnyCommand | (() => Promise<AnyCommand>));
    if (resolved !== undefined) out[name] = resolved;
  }
  return out;
}

/** The names of `command`'s subcommands, without loading them. */
export async function subCommandNames(command: AnyCommand): Promise<string[]> {
  return Object.keys((await resolveValue(command.subCommands)) ?? {});
}

/** The subcommand `name` of `command`, loading only that one; `undefined` when there is none. */
export async function subCommand(
  command: AnyCommand,
  name: string,
): Promise<AnyCommand | undefined> {
  const subs = (await resolveValue(command.subCommands)) ?? {};
  if (!Object.hasOwn(subs, name)) return undefined;
  return resolveValue(subs[name] as AnyCommand | (() => Promise<AnyCommand>));
}

/** One argument of a command, with its name. */
export type NamedArg = ArgDef & { readonly name: string };

/** The arguments a command declares, in order. */
export async function argsOf(command: AnyCommand): Promise<NamedArg[]> {
  const defs = (await resolveValue(command.args)) ?? {};
  return Object.entries(defs as Record<string, ArgDef>).map(([name, def]) => ({ ...def, name }));
}

/** The aliases of an argument, as a list. */
export function aliasesOf(arg: ArgDef): string[] {
  const alias = (arg as { alias?: string | string[] }).alias;
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

/** True for a positional that takes every remaining word (`secret put`'s pairs). */
export function isVariadic(arg: ArgDef): boolean {
  return (arg as { variadic?: boolean }).variadic === true;
}

/** True for an option that may be given several times (`spike run --env`): a list of values. */
export function isRepeatable(arg: ArgDef): boolean {
  return (arg as { repeatable?: boolean }).repeatable === true;
}

/** True for a positional the command cannot run without. */
export function isRequired(arg: ArgDef): boolean {
  return arg.type === 'positional' && arg.required !== false && arg.default === undefined;
}

/** The command at `path` (e.g. `['secret', 'get']`), or `undefined` when there is none. */
export async function commandAt(path: readonly string[]): Promise<AnyCommand | undefined> {
  let current: AnyCommand = spike;
  for (const name of path) {
    const next = await subCommand(current, name);
    if (next === undefined) return undefined;
    current = next;
  }
  return current;
}

/** Every command of the tree with its path, depth first, the root first. */
export async function walkTree(): Promise<{ path: string[]; command: AnyCommand }[]> {
  const out: { path: string[]; command: AnyCommand }[] = [];
  const visit = async (path: string[], command: AnyCommand) => {
    out.push({ path, command });
    for (const [name, sub] of Object.entries(await subCommandsOf(command))) {
      await visit([...path, name], sub);
    }
  };
  await visit([], spike);
  return out;
}
