/**
 * `bun run build`: standalone executables with `bun build --compile` (ARCHITECTURE.md decision
 * 11). Each one carries the Bun runtime, the bundled sources and the dependencies, plus the SQL
 * migrations (embedded as text by schema/migrations/index.ts), so it runs on a machine without
 * Bun and without this checkout.
 *
 *   bun run build                         dist/nexus, dist/keeper, dist/spike
 *   bun run build -- demo-workload        only the named targets (see BUILD_TARGETS)
 *   bun run build -- --all                every target
 *   bun run build -- --outdir /out nexus  another output directory
 *
 * Executables are built for the host (operating system, CPU and C library); build inside the
 * target environment (as the container image does) for another one.
 */
import { mkdirSync, statSync } from 'node:fs';
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

/** What `bun run build` builds without arguments. */
export const DEFAULT_TARGETS: readonly BuildTarget[] = ['nexus', 'keeper', 'spike'];

export interface BuiltExecutable {
  readonly name: BuildTarget;
  readonly path: string;
  readonly bytes: number;
  readonly ms: number;
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
      [process.execPath, 'build', '--compile', BUILD_TARGETS[name], '--outfile', outfile],
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

const USAGE = `usage: bun run build [-- [--outdir <dir>] [--all] [target ...]]
targets: ${Object.keys(BUILD_TARGETS).join(', ')} (default: ${DEFAULT_TARGETS.join(', ')})`;

function parseArgs(argv: readonly string[]): { outDir?: string; targets: BuildTarget[] } {
  let outDir: string | undefined;
  const targets: BuildTarget[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--outdir') {
      outDir = argv[++i];
      if (outDir === undefined) throw new Error('--outdir needs a directory');
    } else if (arg.startsWith('--outdir=')) {
      outDir = arg.slice('--outdir='.length);
    } else if (arg === '--all') {
      targets.push(...(Object.keys(BUILD_TARGETS) as BuildTarget[]));
    } else if (isBuildTarget(arg)) {
      targets.push(arg);
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  return {
    ...(outDir === undefined ? {} : { outDir }),
    targets: targets.length === 0 ? [...DEFAULT_TARGETS] : [...new Set(targets)],
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
    for (const exe of await buildExecutables(options)) {
      const mb = (exe.bytes / 1024 / 1024).toFixed(1);
      console.log(`built ${exe.path} (${mb} MB, ${Math.round(exe.ms)} ms)`);
    }
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
