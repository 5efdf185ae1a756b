/**
 * Output conventions of the `spike` CLI (docs/spike-api.md §11): the `-f/--format` flag
 * (`human|h|plain|p`, `json|j`, `yaml|y`; default human), normal output on stdout, errors on
 * stderr, and the exit codes 0 success, 1 operation failed, 2 usage error, 3 Nexus not ready or
 * unreachable. Commands end in failure through `fail()`, so `cli/main.ts` is the only place that
 * turns an outcome into an exit code.
 */
import YAML from 'yaml';

/** Exit codes (docs/spike-api.md §11). */
export const EXIT = {
  /** Success, also `Operation canceled.` */
  ok: 0,
  /** The operation failed: API error, wrong role, not found, invalid input, no identity. */
  failed: 1,
  /** Usage error: arguments, flags, format. */
  usage: 2,
  /** SPIKE Nexus not ready or unreachable. */
  unavailable: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export type OutputFormat = 'human' | 'json' | 'yaml';

const FORMATS: Readonly<Record<string, OutputFormat>> = {
  human: 'human',
  h: 'human',
  plain: 'human',
  p: 'human',
  json: 'json',
  j: 'json',
  yaml: 'yaml',
  y: 'yaml',
};

/** The citty definition of `-f/--format`, shared by every command that prints data. */
export const formatArg = {
  type: 'string',
  alias: 'f',
  description: 'Output format: human (h, plain, p), json (j) or yaml (y)',
  valueHint: 'format',
  default: 'human',
} as const;

/**
 * Thrown by `fail()` after the message is on stderr; `cli/main.ts` exits with `exitCode`.
 * Throwing (instead of exiting on the spot) lets commands release sockets in `finally` blocks.
 */
export class CliExit extends Error {
  override readonly name = 'CliExit';
  readonly exitCode: ExitCode;

  constructor(exitCode: ExitCode) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
  }
}

/** Writes `message` (one line) to stderr and ends the command with `exitCode` (default 1). */
export function fail(message: string, exitCode: ExitCode = EXIT.failed): never {
  writeErr(message);
  throw new CliExit(exitCode);
}

/** Parses a `-f/--format` value; an unknown one is a usage error (exit 2). */
export function parseFormat(value: string | undefined): OutputFormat {
  const format = FORMATS[(value ?? 'human').toLowerCase()];
  if (format === undefined) {
    fail('Error: Invalid format. Use one of: human (h, plain, p), json (j), yaml (y).', EXIT.usage);
  }
  return format;
}

/** Writes text to stdout, ending with exactly one newline. */
export function writeOut(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Writes text to stderr, ending with exactly one newline. */
export function writeErr(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * Prints `value` in the chosen format: JSON with `jsonIndent` spaces (2 by default), YAML, or the
 * `human` rendering.
 */
export function printValue(
  format: OutputFormat,
  value: unknown,
  human: () => string,
  options: { jsonIndent?: number } = {},
): void {
  switch (format) {
    case 'json':
      writeOut(JSON.stringify(value, null, options.jsonIndent ?? 2));
      return;
    case 'yaml':
      writeOut(YAML.stringify(value));
      return;
    case 'human':
      writeOut(human());
      return;
  }
}

/** Aligned `label: value` lines for human output. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...fields.map(([label]) => label.length)) + 1;
  return fields.map(([label, value]) => `${`${label}:`.padEnd(width + 1)}${value}`).join('\n');
}
