/**
 * Helpers for tests that run real processes (the CLI, the compiled executables, `bun` itself)
 * and real listeners on loopback:
 *
 * ```ts
 * const run = await runCommand([exe, '--help'], { cwd, env });    // { code, stdout, stderr }
 * const cli = await runCli(['whoami', '-f', 'json'], { env: { SPIFFE_ENDPOINT_SOCKET } });
 * const port = await freePort();                                  // a free 127.0.0.1 port
 * await waitUntil(async () => (await plainStatus(port, '/ready')) === 200, 10_000, 'ready');
 * ```
 *
 * `runCommand` is the product's own (src/runtime/run-command.ts, used by the build and by
 * `bun run dev`), so tests and tooling collect a child's output the same way.
 */
import net from 'node:net';
import { join } from 'node:path';
import { type CommandResult, runCommand } from '../../src/runtime/run-command.ts';

export { type CommandResult, runCommand };

/** The checkout root. */
export const ROOT = join(import.meta.dir, '..', '..');

/**
 * This process's environment without anything that would steer a SPIKE program: no `SPIKE_*`
 * variable and no `SPIFFE_ENDPOINT_SOCKET`. Add what the test means to set.
 */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('SPIKE_') || key === 'SPIFFE_ENDPOINT_SOCKET') {
      continue;
    }
    env[key] = value;
  }
  return env;
}

/**
 * Runs the CLI from source (`bun cli/main.ts <args>` in the checkout) with {@link cleanEnv} plus
 * `env`, and, when given, `stdin` as its input.
 */
export function runCli(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string>>; stdin?: string } = {},
): Promise<CommandResult> {
  return runCommand([process.execPath, 'cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...cleanEnv(), ...options.env },
    ...(options.stdin === undefined ? {} : { stdin: new Blob([options.stdin]) }),
  });
}

/** A free TCP port on 127.0.0.1 (bound, read and released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** GET `path` on a plain-HTTP loopback port: the status, or 0 when nothing answers. */
export async function plainStatus(port: number, path: string): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      signal: AbortSignal.timeout(1000),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/**
 * Polls `check` until it is true; returns the milliseconds waited.
 * @throws Error naming `what` after `timeoutMs`.
 */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await check()) return performance.now() - start;
    await Bun.sleep(10);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
