/**
 * The `spike` CLI refuses what it does not understand, through the real entry point as a process
 * (`bun cli/main.ts …`). A table holds one valid invocation of every command; the test checks
 * that the table covers the command tree exactly, then derives from each row: an unknown option,
 * a misspelt option (with its "did you mean" hint), a missing and an extra positional argument,
 * each exit 2 with the command's usage line. Every process runs with a Workload API socket that
 * does not exist: a command that got as far as connecting would exit 1 ("no Workload API
 * socket"), so exit 2 also shows the refusal came first.
 *
 * Also: destructive commands without a terminal and without `--yes` (exit 2, nothing on stdout),
 * rejected key=value arguments never echoed, one meaning for `-f`, `spike help <command>`, and
 * `spike completion bash|zsh|fish` generated from the same tree (the bash script is run).
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aliasesOf, argsOf, isVariadic, walkTree } from '../cli/tree.ts';
import { type CommandResult, ROOT, runCli } from './support/process.ts';

// Many short processes on a shared machine: generous bounds, never a tight timeout.
setDefaultTimeout(180_000);

let dir: string;
let env: Record<string, string>;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-cli-strict-'));
  env = {
    HOME: dir,
    NO_COLOR: '1',
    SPIFFE_ENDPOINT_SOCKET: `unix://${path.join(dir, 'no-agent.sock')}`,
    SPIKE_NEXUS_API_URL: 'https://127.0.0.1:9',
  };
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Stdin is never a terminal here (empty unless given), as in a script or a CI job. */
const spike = (args: string[], stdin = ''): Promise<CommandResult> => runCli(args, { env, stdin });

/** Runs `jobs` at most `limit` at a time (the machine is shared). */
async function pool<T, R>(items: readonly T[], limit: number, job: (item: T) => Promise<R>) {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await job(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}

/** One valid invocation of every leaf command: its path and the positionals it needs. */
const TABLE: Record<string, string[]> = {
  whoami: [],
  'secret put': ['tenants/acme/db', 'user=app'],
  'secret get': ['tenants/acme/db'],
  'secret list': [],
  'secret delete': ['tenants/acme/db'],
  'secret undelete': ['tenants/acme/db'],
  'secret destroy': ['tenants/acme/db'],
  'secret purge': ['tenants/acme/db'],
  'secret metadata get': ['tenants/acme/db'],
  'secret watch': ['tenants/acme/'],
  'policy create': [],
  'policy apply': [],
  'policy list': [],
  'policy get': ['db-access'],
  'policy delete': ['db-access'],
  'cipher encrypt': [],
  'cipher decrypt': [],
  'operator recover': [],
  'operator restore': [],
  'operator export': [],
  'operator import': ['spike.age'],
  'operator snapshot': [],
  status: [],
  run: ['true'],
  agent: [],
  help: [],
  completion: ['bash'],
};

interface Row {
  readonly path: string[];
  readonly positionals: string[];
  readonly longs: string[];
  readonly required: number;
  /** How many positionals the command takes (without a variadic one). */
  readonly slots: number;
  readonly variadic: boolean;
}

let rows: Row[] = [];
let groups: string[][] = [];

beforeAll(async () => {
  const tree = await walkTree();
  rows = [];
  groups = [];
  for (const { path: p, command } of tree) {
    if (command.subCommands !== undefined) {
      groups.push(p);
      continue;
    }
    const args = await argsOf(command);
    const positional = args.filter((a) => a.type === 'positional');
    rows.push({
      path: p,
      positionals: TABLE[p.join(' ')] ?? [],
      longs: args.filter((a) => a.type !== 'positional').map((a) => a.name),
      required: positional.filter((a) => a.required !== false).length,
      slots: positional.length,
      variadic: positional.some(isVariadic),
    });
  }
});

function expectUsage(run: CommandResult, p: readonly string[], message: string | RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  const [first, usage, more] = run.stderr.split('\n');
  if (typeof message === 'string') expect(first).toBe(`Error: ${message}`);
  else expect(first).toMatch(message);
  expect(usage).toStartWith(`USAGE ${['spike', ...p].join(' ')}`);
  expect(more).toBe(`Run '${['spike', 'help', ...p].join(' ')}' for options and examples.`);
}

/** `--versions` → `--vresions`: two letters swapped, as a hurried hand types it. */
function misspell(name: string): string {
  return `${name[0]}${name[2]}${name[1]}${name.slice(3)}`;
}

describe('every command refuses what it does not understand (exit 2, usage line)', () => {
  it('the table covers every command of the tree', () => {
    expect(rows.map((r) => r.path.join(' ')).sort()).toEqual(Object.keys(TABLE).sort());
  });

  it('an unknown option', async () => {
    const runs = await pool(rows, 4, (r) => spike([...r.path, ...r.positionals, '--bogus']));
    for (const [i, run] of runs.entries()) {
      expectUsage(run, rows[i]!.path, 'Unknown option --bogus.');
    }
  });

  it('a misspelt option, with a hint', async () => {
    const cases = rows.flatMap((r) =>
      r.longs
        // `--allow-unanchored` swaps two equal letters: no misspelling.
        .filter((l) => l.length >= 4 && misspell(l) !== l)
        .map((long) => ({ r, long })),
    );
    expect(cases.length).toBeGreaterThan(20);
    const runs = await pool(cases, 4, ({ r, long }) =>
      spike([...r.path, ...r.positionals, `--${misspell(long)}=1`]),
    );
    for (const [i, run] of runs.entries()) {
      const { r, long } = cases[i]!;
      expectUsage(
        run,
        r.path,
        new RegExp(
          `^Error: Unknown option --${misspell(long)}\\. Did you mean (-\\w/)?--${long}\\?$`,
        ),
      );
    }
  });

  it('a missing positional argument', async () => {
    const cases = rows.filter((r) => r.required > 0);
    expect(cases.length).toBeGreaterThanOrEqual(8);
    const runs = await pool(cases, 4, (r) => spike([...r.path, ...r.positionals.slice(0, -1)]));
    for (const [i, run] of runs.entries()) {
      expectUsage(run, cases[i]!.path, /^Error: Missing argument: <[A-Z]+>\.$/);
    }
  });

  it('an extra positional argument', async () => {
    const cases = rows.filter((r) => !r.variadic);
    const runs = await pool(cases, 4, (r) => {
      const optional = Array.from({ length: r.slots - r.positionals.length }, () => 'x');
      return spike([...r.path, ...r.positionals, ...optional, 'extra', 'more']);
    });
    for (const [i, run] of runs.entries()) {
      expectUsage(run, cases[i]!.path, "Unexpected arguments: 'extra', 'more'.");
    }
  });

  it('groups: an unknown or missing command, with a hint', async () => {
    const misspelt = await pool(groups, 4, (g) => spike([...g, 'lsit']));
    for (const [i, run] of misspelt.entries()) {
      expectUsage(run, groups[i]!, /^Error: Unknown command 'lsit'\./);
    }
    const [secert, none, flagFirst] = await Promise.all([
      spike(['secert', 'list']),
      spike(['policy']),
      spike(['secret', '--format', 'json', 'list']),
    ]);
    expectUsage(secert, [], "Unknown command 'secert'. Did you mean 'secret'?");
    expectUsage(none, ['policy'], /^Error: Missing command: choose one of create, apply/);
    expectUsage(flagFirst, ['secret'], 'Unknown option --format: choose a command first.');
  });

  it("the issue's reports: --version on delete, --verison on get, list with arguments", async () => {
    const [version, verison, list, twice, noValue, flagValue, camel] = await Promise.all([
      spike(['secret', 'delete', 'secrets/v', '--version', '1']),
      spike(['secret', 'get', 'secrets/v', '--verison=1']),
      spike(['secret', 'list', 'a', 'b', 'c']),
      spike(['secret', 'get', 'p', '-f', 'json', '--format', 'yaml']),
      spike(['secret', 'get', 'p', '--version']),
      spike(['secret', 'purge', 'p', '--yes=no']),
      spike(['policy', 'list', '--pathPattern', 'x']),
    ]);
    expectUsage(
      version,
      ['secret', 'delete'],
      'Unknown option --version. Did you mean -v/--versions?',
    );
    expectUsage(verison, ['secret', 'get'], 'Unknown option --verison. Did you mean -v/--version?');
    expectUsage(list, ['secret', 'list'], "Unexpected arguments: 'a', 'b', 'c'.");
    expectUsage(twice, ['secret', 'get'], 'Option -f/--format is given more than once.');
    expectUsage(noValue, ['secret', 'get'], 'Option -v/--version needs a value.');
    expectUsage(flagValue, ['secret', 'purge'], 'Option -y/--yes takes no value.');
    expectUsage(
      camel,
      ['policy', 'list'],
      'Unknown option --pathPattern. Did you mean --path-pattern?',
    );
  });

  it('valid command lines get past the parser (they fail later, at the missing socket)', async () => {
    const [get, dashValue, afterDashDash] = await Promise.all([
      spike(['secret', 'get', 'p', 'key', '-v2', '-f=json']),
      spike(['secret', 'put', 'p', 'a=1', '--', '--not-an-option=2']),
      spike(['secret', 'delete', 'p', '--versions=3']),
    ]);
    for (const run of [get, dashValue, afterDashDash]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('no Workload API socket');
    }
    // A negative version is a value, refused by the version's own rule.
    const negative = await spike(['secret', 'get', 'p', '--version', '-1']);
    expect([negative.code, negative.stderr]).toEqual([2, 'Error: Negative version number: -1\n']);
  });
});

describe('destructive commands without a terminal need --yes', () => {
  it('destroy, purge, policy delete and delete of several versions: exit 2 before connecting', async () => {
    const refused = await Promise.all([
      spike(['secret', 'destroy', 'p'], 'y\n'),
      spike(['secret', 'destroy', 'p', '-v', '1,2']),
      spike(['secret', 'purge', 'p'], 'y\n'),
      spike(['policy', 'delete', 'db-access'], ''),
      spike(['policy', 'delete', '--name', 'db-access'], 'y\n'),
      spike(['secret', 'delete', 'p', '-v', '1,2'], 'y\n'),
      spike(['secret', 'delete', 'p', '--versions', '0,3']),
    ]);
    for (const run of refused) {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/needs confirmation: run it on a terminal, or add --yes\.\n$/);
      expect(run.stderr).not.toContain('Operation canceled');
    }
    // With --yes (or one version to soft-delete) they go on, and stop at the missing socket.
    const allowed = await Promise.all([
      spike(['secret', 'destroy', 'p', '--yes']),
      spike(['secret', 'purge', 'p', '-y']),
      spike(['policy', 'delete', 'db-access', '--yes']),
      spike(['secret', 'delete', 'p', '-v', '1,2', '--yes']),
      spike(['secret', 'delete', 'p', '-v', '1']),
      spike(['secret', 'delete', 'p', '-v', '2,2']),
    ]);
    for (const run of allowed) {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('no Workload API socket');
    }
  });
});

describe('rejected arguments are never echoed', () => {
  it('a malformed pair, an unknown option with a value, an extra key=value word', async () => {
    const runs = await Promise.all([
      spike(['secret', 'put', 'p', 'pass=s3cret', 'bad']),
      spike(['secret', 'put', 'p', 'pass:s3cret']),
      spike(['secret', 'put', 'p', 'user=app', '--pass=s3cret']),
      spike(['secret', 'get', 'p', 'key', 'pass=s3cret']),
      spike(['secret', 'pt', 'p', 'pass=s3cret']),
      spike(['secret', 'put', 'p', '-p=s3cret']),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(run.stdout + run.stderr).not.toContain('s3cret');
    }
    expect(runs[0]!.stderr).toBe(
      "Error: Invalid key-value pair #2: it has no '=' (the pair is not shown).\n",
    );
    expect(runs[3]!.stderr).toStartWith('Error: Unexpected argument: (a key=value argument).\n');
  });
});

describe('one meaning for -f', () => {
  it('-f is --format in every command that has it, and nothing else anywhere', async () => {
    let formats = 0;
    for (const { command } of await walkTree()) {
      for (const arg of await argsOf(command)) {
        if (aliasesOf(arg).includes('f')) {
          expect(arg.name).toBe('format');
          formats++;
        }
      }
    }
    expect(formats).toBeGreaterThanOrEqual(7);
    const run = await spike(['cipher', 'encrypt', '-f', 'notes.txt']);
    expectUsage(
      run,
      ['cipher', 'encrypt'],
      'Unknown option -f. Did you mean -i/--file? (-f always means --format)',
    );
  });
});

describe('spike help', () => {
  it('spike help <command> prints what <command> --help prints', async () => {
    const paths = [
      [],
      ['secret'],
      ['secret', 'delete'],
      ['secret', 'metadata', 'get'],
      ['completion'],
    ];
    const runs = await pool(paths, 4, async (p) => [
      await spike(['help', ...p]),
      await spike([...p, '--help']),
    ]);
    for (const [i, [help, flag]] of runs.entries()) {
      const p = paths[i]!;
      expect(help!.code).toBe(0);
      expect(help!.stdout).toBe(flag!.stdout);
      expect(help!.stdout).toContain(`USAGE ${['spike', ...p].join(' ')}`);
      if (p.length > 0) expect(help!.stdout).toContain('Examples:');
    }
    expect(runs[2]![0]!.stdout).toContain('--yes');
  });

  it('an unknown command to help is a usage error', async () => {
    const run = await spike(['help', 'secret', 'dleete']);
    expect(run.code).toBe(2);
    expect(run.stderr).toStartWith(
      "Error: Unknown command 'dleete' in 'spike secret'. Did you mean 'delete'?\n",
    );
  });

  it('--version prints the version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const run = await spike(['--version']);
    expect([run.code, run.stdout]).toEqual([0, `${pkg.version}\n`]);
  });
});

describe('spike completion', () => {
  let scripts: Record<string, string> = {};

  beforeAll(async () => {
    const runs = await Promise.all(['bash', 'zsh', 'fish'].map((s) => spike(['completion', s])));
    scripts = { bash: runs[0]!.stdout, zsh: runs[1]!.stdout, fish: runs[2]!.stdout };
    for (const run of runs) expect([run.code, run.stderr]).toEqual([0, '']);
  });

  it('every script names every command and every option of the tree', async () => {
    for (const { path: p, command } of await walkTree()) {
      const name = p[p.length - 1];
      for (const [shell, script] of Object.entries(scripts)) {
        if (name !== undefined) expect(script, `${shell}: ${p.join(' ')}`).toContain(name);
        for (const arg of await argsOf(command)) {
          if (arg.type === 'positional') continue;
          const spelled = shell === 'fish' ? `-l ${arg.name}` : `--${arg.name}`;
          expect(script, `${shell}: ${p.join(' ')} ${arg.name}`).toContain(spelled);
        }
      }
    }
  });

  it('an unknown shell is a usage error', async () => {
    const run = await spike(['completion', 'tcsh']);
    expect([run.code, run.stdout]).toEqual([2, '']);
    expect(run.stderr).toContain('Use one of: bash, zsh, fish.');
  });

  it('the bash script completes commands, options and values', async () => {
    const file = path.join(dir, 'spike.bash');
    fs.writeFileSync(file, scripts.bash ?? '');
    const syntax = Bun.spawnSync(['bash', '-n', file]);
    expect(syntax.exitCode).toBe(0);
    // `words` as typed; the last one is the word being completed.
    const complete = (words: string[]) => {
      const line = words.map((w) => `'${w}'`).join(' ');
      const script = `source '${file}'; COMP_WORDS=(spike ${line}); COMP_CWORD=${words.length}; _spike; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const run = Bun.spawnSync(['bash', '-c', script]);
      return run.stdout.toString().trim().split('\n').filter(Boolean).sort();
    };
    expect(complete(['sec'])).toEqual(['secret']);
    expect(complete(['secret', 'de'])).toEqual(['delete', 'destroy']);
    expect(complete(['secret', 'metadata', ''])).toEqual(['get']);
    expect(complete(['secret', 'delete', 'p', '--ve'])).toEqual(['--versions']);
    expect(complete(['secret', 'get', 'p', '-f', ''])).toEqual(['human', 'json', 'yaml']);
    expect(complete(['help', 'secret', 'pu'])).toEqual(['purge', 'put']);
    expect(complete(['completion', ''])).toEqual(['bash', 'fish', 'zsh']);
    expect(complete(['cipher', 'encrypt', '-'])).toContain('-i');
    expect(complete(['cipher', 'encrypt', '-'])).not.toContain('-f');
  });

  it.skipIf(Bun.which('zsh') === null)(
    'the zsh script parses, registers and walks the tree',
    () => {
      const file = path.join(dir, '_spike');
      fs.writeFileSync(file, scripts.zsh ?? '');
      expect(Bun.spawnSync(['zsh', '-n', file]).exitCode).toBe(0);
      const script = [
        `autoload -U compinit; compinit -u -d '${path.join(dir, 'zcompdump')}'`,
        `source '${file}'`,
        'print -r -- "comp=$_comps[spike]"',
        '_spike_walk secret metadata get; print -r -- "key=$_spike_key"',
        '_spike_walk help policy; print -r -- "help=$_spike_help key=$_spike_key"',
        'print -r -- "values=$(_spike_values "secret list|-f")"',
        '_spike_described policy | head -1',
      ].join('\n');
      const run = Bun.spawnSync(['zsh', '-f', '-c', script], { env: { HOME: dir } });
      expect(run.stdout.toString().trim().split('\n')).toEqual([
        'comp=_spike',
        'key=secret metadata get',
        'help=1 key=policy',
        'values=human json yaml',
        'create:Create a new policy (fails if the name exists)',
      ]);
    },
  );

  it.skipIf(Bun.which('fish') === null)(
    'the fish script completes commands, options and values',
    () => {
      const file = path.join(dir, 'spike.fish');
      fs.writeFileSync(file, scripts.fish ?? '');
      expect(Bun.spawnSync(['fish', '-n', file]).exitCode).toBe(0);
      const complete = (line: string) => {
        const run = Bun.spawnSync(['fish', '-c', `source '${file}'; complete -C '${line}'`], {
          cwd: dir,
          env: { HOME: dir },
        });
        return run.stdout
          .toString()
          .trim()
          .split('\n')
          .map((l) => l.split('\t')[0])
          .sort();
      };
      expect(complete('spike secret de')).toEqual(['delete', 'destroy']);
      expect(complete('spike secret get p --format ')).toEqual(['human', 'json', 'yaml']);
      expect(complete('spike secret delete p --ver')).toEqual(['--versions']);
      expect(complete('spike help sec')).toEqual(['secret']);
      expect(complete('spike completion ')).toEqual(['bash', 'fish', 'zsh']);
    },
  );
});
