/**
 * `bun run build`: the library and standalone executables.
 *
 * The library (`dist/lib`, what `package.json` `exports` points Node and Deno at): the SDK as
 * ECMAScript modules for any runtime with `node:` built-ins (`bun build --target=node
 * --format=esm`, every dependency left as an import), and `.d.ts` files next to it
 * (`tsc -p tsconfig.lib.json`, relative `.ts` specifiers rewritten to `.js`). Bun itself runs
 * the TypeScript sources (`exports` condition `bun`). `bun pm pack` / `npm pack` build it first
 * (`prepack`), so a tarball always carries it.
 *
 * The executables, with `bun build --compile` (docs/architecture.md decision 11; the flags:
 * `COMPILE_FLAGS`): each one carries
 * the Bun runtime, the bundled sources and the dependencies, plus the SQL migrations (embedded
 * as text by schema/migrations/index.ts), so it runs on a machine without Bun and without this
 * checkout.
 *
 *   bun run build                         dist/lib, dist/nexus, dist/keeper, dist/spike
 *   bun run build -- lib                  only the library (`bun run build:lib`)
 *   bun run build -- demo-workload        only the named targets (see BUILD_TARGETS)
 *   bun run build -- --all                the library and every target
 *   bun run build -- --outdir /out nexus  another output directory (the library: /out/lib)
 *
 * Executables are built for the host (operating system, CPU and C library); build inside the
 * target environment (as the container image does) for another one.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runCommand } from './runtime/run-command.ts';

/** The project root (this file lives in `src/`). */
export const PROJECT_ROOT = resolve(import.meta.dir, '..');

/** Executable name → entry point (relative to the project root). */
export const BUILD_TARGETS = {
  nexus: 'src/nexus/main.ts',
  keeper: 'src/keeper/main.ts',
  spike: 'cli/main.ts',
  /** DEVELOPMENT ONLY identity issuer (src/dev/issuer-main.ts). */
  'spike-dev-issuer': 'src/dev/issuer-main.ts',
  /** The example workload of compose.yaml (src/examples/demo-workload.ts). */
  'demo-workload': 'src/examples/demo-workload.ts',
} as const satisfies Record<string, string>;

export type BuildTarget = keyof typeof BUILD_TARGETS;

/**
 * How every executable is compiled (issue 12: start → ready is dominated by loading our
 * modules): one minified bundle (`--minify`), shipped with JavaScriptCore bytecode
 * (`--bytecode`, so the start skips parsing and compiling it), kept as an ES module
 * (`--format=esm`: the entry points use top-level `await`, which `--bytecode`'s default
 * CommonJS output cannot hold). The entry points load what is not needed before ready lazily
 * (src/nexus/main.ts, src/keeper/main.ts).
 */
export const COMPILE_FLAGS = ['--compile', '--minify', '--bytecode', '--format=esm'] as const;

/** What `bun run build` builds without arguments. */
export const DEFAULT_TARGETS: readonly BuildTarget[] = ['nexus', 'keeper', 'spike'];

export interface BuiltExecutable {
  readonly name: BuildTarget;
  readonly path: string;
  readonly bytes: number;
  readonly ms: number;
}

/** Library entry points (relative to the project root) → output name under `<outDir>/lib`. */
export const LIBRARY_ENTRIES = {
  /** `exports["."]`. */
  index: 'src/index.ts',
  /** `exports["./edge"]`: the fetch-only client (src/sdk/edge.ts); built as `sdk/edge.js`. */
  edge: 'src/sdk/edge.ts',
} as const satisfies Record<string, string>;

export interface BuiltLibrary {
  /** The directory holding `index.js`, `index.d.ts` and the other declaration files. */
  readonly dir: string;
  /** Every file written, relative to `dir`. */
  readonly files: readonly string[];
  readonly ms: number;
}

/** Relative module specifiers ending in `.ts` inside `from '…'` or `import('…')`. */
const TS_SPECIFIER = /((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]*?)\.ts(['"])/g;

function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? filesUnder(join(dir, entry.name), `${prefix}${entry.name}/`)
      : [`${prefix}${entry.name}`],
  );
}

async function mustRun(what: string, cmd: string[]): Promise<void> {
  const { code, stdout, stderr } = await runCommand(cmd, { cwd: PROJECT_ROOT });
  if (code !== 0) throw new Error(`${what} failed (exit ${code})\n${stdout}${stderr}`);
}

/**
 * Builds the library into `<outDir>/lib` (default `dist/lib`), replacing what was there: one
 * ES module per `LIBRARY_ENTRIES` entry for Node and Deno, and the declaration files.
 *
 * @throws Error with the bundler's or the compiler's output when either fails.
 */
export async function buildLibrary(options: { outDir?: string } = {}): Promise<BuiltLibrary> {
  const dir = join(resolve(options.outDir ?? join(PROJECT_ROOT, 'dist')), 'lib');
  const started = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // `--packages=external`: dependencies stay imports, resolved in the consumer's node_modules.
  await mustRun('bun build (library)', [
    process.execPath,
    'build',
    '--target=node',
    '--format=esm',
    '--packages=external',
    '--outdir',
    dir,
    ...Object.values(LIBRARY_ENTRIES),
  ]);
  await mustRun('tsc -p tsconfig.lib.json', [
    process.execPath,
    join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    join(PROJECT_ROOT, 'tsconfig.lib.json'),
    '--outDir',
    dir,
  ]);
  const files = filesUnder(dir).sort();
  for (const file of files.filter((f) => f.endsWith('.d.ts'))) {
    const path = join(dir, file);
    writeFileSync(path, readFileSync(path, 'utf8').replace(TS_SPECIFIER, '$1$2.js$3'));
  }
  return { dir, files, ms: performance.now() - started };
}

export function isBuildTarget(name: string): name is BuildTarget {
  return Object.hasOwn(BUILD_TARGETS, name);
}

/**
 * Compiles `targets` into `outDir` (created if missing) with the Bun that runs this code.
 *
 * @throws Error naming the target when `bun build --compile` fails (its output is included).
 */
export async function buildExecutables(
  options: { outDir?: string; targets?: readonly BuildTarget[] } = {},
): Promise<BuiltExecutable[]> {
  const outDir = resolve(options.outDir ?? join(PROJECT_ROOT, 'dist'));
  const targets = options.targets ?? DEFAULT_TARGETS;
  mkdirSync(outDir, { recursive: true });
  const built: BuiltExecutable[] = [];
  // One at a time: each compile is CPU-bound and holds ~100 MB in memory.
  for (const name of targets) {
    const outfile = join(outDir, name);
    const started = performance.now();
    const {
      code,
      stdout: out,
      stderr: err,
    } = await runCommand(
      [process.execPath, 'build', ...COMPILE_FLAGS, BUILD_TARGETS[name], '--outfile', outfile],
      { cwd: PROJECT_ROOT },
    );
    if (code !== 0) {
      throw new Error(
        `bun build --compile ${BUILD_TARGETS[name]} failed (exit ${code})\n${out}${err}`,
      );
    }
    built.push({
      name,
      path: outfile,
      bytes: statSync(outfile).size,
      ms: performance.now() - started,
    });
  }
  return built;
}

const USAGE = `usage: bun run build [-- [--outdir <dir>] [--all] [lib] [target ...]]
targets: lib, ${Object.keys(BUILD_TARGETS).join(', ')} (default: lib, ${DEFAULT_TARGETS.join(', ')})`;

function parseArgs(argv: readonly string[]): {
  outDir?: string;
  library: boolean;
  targets: BuildTarget[];
} {
  let outDir: string | undefined;
  let library = false;
  const targets: BuildTarget[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--outdir') {
      outDir = argv[++i];
      if (outDir === undefined) throw new Error('--outdir needs a directory');
    } else if (arg.startsWith('--outdir=')) {
      outDir = arg.slice('--outdir='.length);
    } else if (arg === '--all') {
      library = true;
      targets.push(...(Object.keys(BUILD_TARGETS) as BuildTarget[]));
    } else if (arg === 'lib') {
      library = true;
    } else if (isBuildTarget(arg)) {
      targets.push(arg);
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  const defaults = !library && targets.length === 0;
  return {
    ...(outDir === undefined ? {} : { outDir }),
    library: library || defaults,
    targets: defaults ? [...DEFAULT_TARGETS] : [...new Set(targets)],
  };
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  try {
    if (options.library) {
      const lib = await buildLibrary(options);
      console.log(`built ${lib.dir} (${lib.files.length} files, ${Math.round(lib.ms)} ms)`);
    }
    const executables = options.targets.length === 0 ? [] : await buildExecutables(options);
    for (const exe of executables) {
      const mb = (exe.bytes / 1024 / 1024).toFixed(1);
      console.log(`built ${exe.path} (${mb} MB, ${Math.round(exe.ms)} ms)`);
    }
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
