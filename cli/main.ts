#!/usr/bin/env bun
/**
 * `spike`, the SPIKE Pilot CLI (docs/spike-api.md §11). The command tree is in cli/tree.ts, each
 * command in `cli/commands/<name>.ts`; cli/parse.ts reads the command line strictly against it.
 *
 * This file is the only place that exits: commands end in failure through `fail()` (cli/output.ts),
 * anything the parser does not understand is a usage error (exit 2, with the command's usage
 * line, before anything connects to Nexus), and anything unexpected is reported in one line on
 * stderr (exit 1) without a stack trace.
 *
 * From a checkout: `bun cli/main.ts <command>`; installed: `spike <command>` (`package.json` bin).
 */
import { CliExit, EXIT, type ExitCode, writeErr, writeOut } from './output.ts';
import { parseCommandLine } from './parse.ts';
import { VERSION } from './tree.ts';
import { plain, renderHelp, usageLines } from './usage.ts';

/** Runs the CLI on `rawArgs` (without `bun cli/main.ts`) and returns the exit code. */
export async function runCli(rawArgs: readonly string[]): Promise<ExitCode> {
  if (rawArgs.length === 1 && (rawArgs[0] === '--version' || rawArgs[0] === '-v')) {
    writeOut(VERSION);
    return EXIT.ok;
  }
  try {
    const line = await parseCommandLine(rawArgs);
    if (line.kind === 'help') {
      writeOut(plain(await renderHelp(line.path), process.stdout));
      return EXIT.ok;
    }
    if (line.kind === 'error') {
      writeErr(`Error: ${line.message}`);
      writeErr(plain(await usageLines(line.path), process.stderr));
      return EXIT.usage;
    }
    await line.command.run?.({
      rawArgs: line.rawArgs,
      // citty types `args` from each command's declaration; the parser built it from the same.
      args: line.args as never,
      cmd: line.command,
      data: undefined,
    });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CliExit) return error.exitCode;
    writeErr(`Error: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  const code = await runCli(process.argv.slice(2));
  process.exit(code);
}
