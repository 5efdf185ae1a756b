/**
 * `spike run --secret <path> [--env NAME=key]... [--signal SIG | --restart] -- <cmd> [args]`:
 * starts `cmd` with the keys of one secret in its environment and keeps it in step with the
 * secret (issue 14; docs/agent.md). Without `--env` every key becomes a variable, its name upper
 * cased (non-alphanumerics as `_`); with `--env NAME=key` only the listed keys, under the given
 * names.
 *
 * When the secret changes (a watch event, src/sdk/watch.ts, then a read that finds other
 * values: contents are compared, not versions, so rewriting the same values does nothing), the
 * child is restarted with the new environment (the default, or `--restart`), or sent `--signal`
 * (e.g. SIGHUP for a program that re-reads its secrets itself; its environment stays as it was).
 * Never more than once per change: events that arrive during a restart are folded into one read.
 *
 * The child inherits stdin, stdout and stderr. SIGINT and SIGTERM are forwarded to it; `spike run`
 * then exits with the child's code (128 + signal number when a signal ended it), as it does when
 * the child exits by itself. The identity is this process's own SVID: a workload needs `read` on
 * the path, no SPIKE role.
 */
import { constants } from 'node:os';
import { type Subprocess, spawn } from 'bun';
import { defineCommand } from 'citty';
import { checkSecretPath } from '../args.ts';
import { canonical, follow, type Snapshot } from '../delivery.ts';
import { commandMeta } from '../help.ts';
import { CliExit, EXIT, type ExitCode, fail, writeErr } from '../output.ts';
import { connect, failApi } from '../session.ts';

/** The signals `--signal` accepts. */
const RUN_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGWINCH'];

/** How long a child may take to exit after SIGTERM before it gets SIGKILL (restart, shutdown). */
const STOP_GRACE_MS = 10_000;

/** The `--env` mappings: variable name → secret key. */
function parseEnvMappings(values: readonly string[]): [string, string][] {
  return values.map((pair) => {
    const at = pair.indexOf('=');
    const name = pair.slice(0, at);
    if (at <= 0 || at === pair.length - 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      fail('Error: --env takes NAME=key (a variable name, then the secret key).', EXIT.usage);
    }
    return [name, pair.slice(at + 1)];
  });
}

/** The variables a secret's data gives, by the mappings (all keys when none). */
function variablesOf(
  data: Readonly<Record<string, string>>,
  mappings: readonly [string, string][],
): Record<string, string> {
  const out: Record<string, string> = {};
  if (mappings.length === 0) {
    for (const [key, value] of Object.entries(data)) {
      out[key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')] = value;
    }
    return out;
  }
  for (const [name, key] of mappings) {
    if (!Object.hasOwn(data, key)) throw new Error(`the secret has no key '${key}'`);
    out[name] = data[key] as string;
  }
  return out;
}

function exitCodeOf(child: Subprocess): number {
  if (child.exitCode !== null) return child.exitCode;
  const name = child.signalCode;
  if (name === null) return 0;
  const number = typeof name === 'number' ? name : constants.signals[name as NodeJS.Signals];
  return 128 + (number ?? 0);
}

const say = (message: string) => writeErr(`spike run: ${message}`);

const run = defineCommand({
  meta: commandMeta(
    ['run'],
    "Run a command with a secret's keys in its environment; restart or signal it on change",
    [
      'spike run --secret tenants/acme/db -- ./server --port 8080',
      'spike run --secret tenants/acme/db --env DB_PASS=pass --env DB_USER=user -- ./server',
      'spike run --secret tenants/acme/db --signal SIGHUP -- ./server   # it re-reads itself',
    ],
  ),
  args: {
    secret: {
      type: 'string',
      alias: 's',
      description: 'Secret path whose keys go into the environment',
      valueHint: 'path',
    },
    env: {
      type: 'string',
      alias: 'e',
      description: 'NAME=key: set NAME to the value of key (repeatable; default: every key)',
      valueHint: 'NAME=key',
      repeatable: true,
    },
    signal: {
      type: 'string',
      description: 'Send this signal on change instead of restarting (e.g. SIGHUP)',
      valueHint: 'signal',
      choices: RUN_SIGNALS,
    },
    restart: {
      type: 'boolean',
      description: 'Restart the command on change (the default)',
    },
    command: {
      type: 'positional',
      description: 'The command and its arguments (after --)',
      required: true,
      valueHint: 'cmd [args...]',
      variadic: true,
    },
  },
  async run({ args }) {
    if (args.secret === undefined || args.secret === '') {
      fail('Error: --secret <path> is required.', EXIT.usage);
    }
    const path = checkSecretPath(args.secret);
    const mappings = parseEnvMappings((args.env as unknown as string[] | undefined) ?? []);
    const signal = args.signal?.toUpperCase();
    if (signal !== undefined && !RUN_SIGNALS.includes(signal)) {
      fail(`Error: Unknown signal. Use one of: ${RUN_SIGNALS.join(', ')}.`, EXIT.usage);
    }
    if (signal !== undefined && args.restart === true) {
      fail('Error: --signal and --restart exclude each other.', EXIT.usage);
    }
    const argv = args._;
    const client = await connect();
    const code = await supervise(
      client,
      path,
      mappings,
      signal as NodeJS.Signals | undefined,
      argv,
    );
    await client.close();
    throw new CliExit(code as ExitCode);
  },
});

/** Runs the child and follows the secret until the child ends; returns the exit code. */
async function supervise(
  client: Awaited<ReturnType<typeof connect>>,
  path: string,
  mappings: readonly [string, string][],
  signal: NodeJS.Signals | undefined,
  argv: readonly string[],
): Promise<number> {
  const stop = new AbortController();
  let child: Subprocess | undefined;
  let applied: string | undefined;
  let restarting = false;
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finished = resolve;
  });

  const start = (data: Readonly<Record<string, string>>) => {
    const proc = spawn([...argv], {
      env: { ...process.env, ...variablesOf(data, mappings) },
      stdin: 'inherit',
      stdout: 'inherit',
      stderr: 'inherit',
    });
    child = proc;
    void proc.exited.then(() => {
      if (child === proc && !restarting) finished(exitCodeOf(proc));
    });
  };

  const stopChild = async (proc: Subprocess) => {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    await proc.exited;
    clearTimeout(timer);
  };

  const onRound = async (snapshot: Snapshot, reason: string) => {
    const data = snapshot.get(path);
    if (data === undefined) {
      if (reason === 'start') throw new Error(`secret '${path}' not found`);
      say(`secret ${path} is gone; the command keeps its environment`);
      return;
    }
    const content = canonical(data);
    if (child === undefined) {
      applied = content;
      start(data);
      return;
    }
    if (content === applied) return;
    applied = content;
    if (signal !== undefined) {
      say(`secret ${path} changed: sending ${signal}`);
      child.kill(signal);
      return;
    }
    say(`secret ${path} changed: restarting the command`);
    restarting = true;
    const old = child;
    await stopChild(old);
    restarting = false;
    if (stop.signal.aborted) {
      finished(exitCodeOf(old));
      return;
    }
    start(data);
  };

  const forward = (sig: NodeJS.Signals) => () => {
    stop.abort();
    if (child === undefined) finished(128 + (constants.signals[sig] ?? 0));
    else child.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  const following = follow({
    client,
    paths: [path],
    signal: stop.signal,
    onRound,
    onError: (error) =>
      say(`cannot read the secret (${describe(error)}); waiting for the next change`),
    onReconnect: () => {},
  });
  try {
    const outcome = await Promise.race([
      done.then((code) => ({ code })),
      following.then(
        () => undefined,
        (error: unknown) => ({ error }),
      ),
    ]);
    if (outcome !== undefined && 'error' in outcome) {
      if (child !== undefined) await stopChild(child);
      if (outcome.error instanceof Error && !('code' in outcome.error)) {
        fail(`Error: ${outcome.error.message}.`);
      }
      failApi(outcome.error, 'secret');
    }
    return outcome?.code ?? (await done);
  } finally {
    stop.abort();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export default run;
