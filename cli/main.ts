#!/usr/bin/env bun
/**
 * `spike`, the SPIKE Pilot CLI (spec/spike-api.md §11): a citty root command whose subcommands
 * live in `cli/commands/<name>.ts`, each exporting a citty command as its default export. They
 * are loaded lazily, so a command only pays for the modules it uses.
 *
 * This file is the only place that exits: commands end in failure through `fail()` (cli/output.ts),
 * citty's argument errors are usage errors (exit 2), and anything unexpected is reported in one
 * line on stderr (exit 1) without a stack trace.
 *
 * From a checkout: `bun cli/main.ts <command>`; installed: `spike <command>` (`package.json` bin).
 */
import { type CommandDef, defineCommand, renderUsage, runCommand } from 'citty';
import pkg from '../package.json' with { type: 'json' };
import { CliExit, EXIT, type ExitCode, writeErr, writeOut } from './output.ts';

// biome-ignore lint/suspicious/noExplicitAny: citty's own SubCommandsDef uses CommandDef<any>.
type AnyCommand = CommandDef<any>;

/** Subcommands by name. Add new ones here (`secret`, `policy`, `cipher`, `operator`, `status`). */
export const COMMANDS: Record<string, () => Promise<AnyCommand>> = {
  whoami: () => import('./commands/whoami.ts').then((m) => m.default),
  secret: () => import('./commands/secret.ts').then((m) => m.default),
  policy: () => import('./commands/policy.ts').then((m) => m.default),
  cipher: () => import('./commands/cipher.ts').then((m) => m.default),
  operator: () => import('./commands/operator.ts').then((m) => m.default),
  status: () => import('./commands/status.ts').then((m) => m.default),
};

export const spike = defineCommand({
  meta: {
    name: 'spike',
    version: pkg.version,
    description: 'SPIKE Pilot: manage secrets, policies and keys in SPIKE Nexus over mTLS',
  },
  subCommands: COMMANDS,
});

async function resolve<T>(value: T | Promise<T> | (() => T | Promise<T>) | undefined) {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

/** citty colours its usage text; keep escape codes out of pipes and files. */
function plain(text: string, stream: NodeJS.WriteStream): string {
  return stream.isTTY ? text : text.replace(/\u001b\[[0-9;]*m/g, '');
}

/** The command that `rawArgs` names (for help and usage messages), and its parent. */
async function commandFor(rawArgs: readonly string[]): Promise<[AnyCommand, AnyCommand?]> {
  let current: AnyCommand = spike;
  let parent: AnyCommand | undefined;
  for (const token of rawArgs) {
    if (token.startsWith('-')) continue;
    const subCommands = await resolve(current.subCommands);
    const next = subCommands?.[token];
    if (next === undefined) break;
    const resolved: AnyCommand | undefined = await resolve(next);
    if (resolved === undefined) break;
    parent = current;
    current = resolved;
  }
  return [current, parent];
}

/** Runs the CLI on `rawArgs` (without `bun cli/main.ts`) and returns the exit code. */
export async function runCli(rawArgs: readonly string[]): Promise<ExitCode> {
  const args = [...rawArgs];
  if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
    const [command, parent] = await commandFor(args);
    writeOut(plain(await renderUsage(command, parent), process.stdout));
    return EXIT.ok;
  }
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    writeOut(pkg.version);
    return EXIT.ok;
  }
  try {
    await runCommand(spike, { rawArgs: args });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CliExit) return error.exitCode;
    if ((error as { name?: string }).name === 'CLIError') {
      // citty's parse errors: unknown command, missing argument, bad enum value.
      writeErr(plain(`Error: ${(error as Error).message}`, process.stderr));
      const [command, parent] = await commandFor(args);
      writeErr(plain(await renderUsage(command, parent), process.stderr));
      return EXIT.usage;
    }
    writeErr(`Error: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  const code = await runCli(process.argv.slice(2));
  process.exit(code);
}
