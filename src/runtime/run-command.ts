/**
 * Runs a child process to completion and collects its exit code, stdout and stderr: what the
 * build (src/build.ts, `bun build --compile`) and the development launcher (src/dev/up.ts, which
 * drives the `spike` CLI) need, and what the tests that run our executables use too
 * (tests/support/process.ts).
 *
 * Bun only (`Bun.spawn`): these callers are Bun tooling, never the portable core or the SDK.
 * Output is decoded as UTF-8 text; both streams are drained together, so a child that fills one
 * pipe while the other is being read never stalls.
 */

/** How a finished process ended and what it printed. */
export interface CommandResult {
  /** Exit code (a signal-terminated child reports Bun's code for it). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunCommandOptions {
  /** Working directory; default this process's. */
  readonly cwd?: string;
  /** The child's whole environment; default this process's. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Fed to the child's stdin (e.g. `Bun.file(path)` or `new Blob([text])`); none = no stdin. */
  readonly stdin?: Blob;
}

/** Runs `cmd` (program and arguments) and resolves once it has exited and both pipes closed. */
export async function runCommand(
  cmd: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const proc = Bun.spawn([...cmd], {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: { ...options.env } }),
    stdin: options.stdin ?? 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
