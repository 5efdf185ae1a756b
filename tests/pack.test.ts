/**
 * The published package (docs/architecture.md decision 11: `bin.spike`, so `bunx spike` works once the
 * package is installed). The test packs this checkout with `bun pm pack`, installs the tarball
 * into an empty project (`bun add <tarball>`; its dependencies come from the Bun cache, or from
 * the registry when missing), and from that project runs `bunx spike --help`,
 * `bunx spike whoami -f json` against a development issuer's Pilot socket, the `spike` bin link
 * itself, and an import of the SDK by package name. Nothing of the checkout is reachable from
 * there: only what `package.json` `files` ships. Packing runs `prepack` (the library build,
 * `dist/lib`); tests/sdk-runtimes.test.ts runs that library under Node and Deno.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { ROOT, runCommand } from './support/process.ts';

let work: string;
let project: string;
let tarball: string;
let issuer: DevIssuer;

/** Runs a command with this process's environment plus `env`, capturing its output. */
function run(cmd: string[], cwd: string, env: Record<string, string | undefined> = {}) {
  return runCommand(cmd, { cwd, env: { ...process.env, ...env } });
}

const bun = process.execPath;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'spike-pack-'));
  const packed = await run([bun, 'pm', 'pack', '--destination', work, '--quiet'], ROOT);
  // `prepack` builds the library first (bundler and tsc), which takes a while on a busy machine.
  if (packed.code !== 0) throw new Error(`bun pm pack failed: ${packed.stdout}${packed.stderr}`);
  const file = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (file === undefined) throw new Error('bun pm pack wrote no tarball');
  tarball = join(work, file);

  project = join(work, 'empty-project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{ "name": "pack-check", "private": true }\n');
  const added = await run(
    [bun, 'add', '--prefer-offline', '--ignore-scripts', '--no-progress', tarball],
    project,
  );
  if (added.code !== 0) throw new Error(`bun add <tarball> failed: ${added.stderr}`);

  issuer = await startDevIssuer({
    dir: join(work, 'sockets'),
    keepers: 0,
    logger: { info: () => {}, warn: () => {} },
  });
}, 120_000);

afterAll(async () => {
  await issuer?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('is named after package.json and installs with a spike bin', () => {
    expect(tarball.endsWith(`${pkg.name}-${pkg.version}.tgz`)).toBe(true);
    const installed = join(project, 'node_modules', pkg.name);
    expect(existsSync(join(installed, 'cli', 'main.ts'))).toBe(true);
    expect(existsSync(join(installed, 'schema', 'migrations', '0000_init.sql'))).toBe(true);
    expect(existsSync(join(installed, 'dist', 'lib', 'index.js'))).toBe(true);
    expect(existsSync(join(installed, 'dist', 'lib', 'index.d.ts'))).toBe(true);
    // `bun run build`'s executables share dist/ but are not published.
    expect(readdirSync(join(installed, 'dist'))).toEqual(['lib']);
    expect(existsSync(join(project, 'node_modules', '.bin', 'spike'))).toBe(true);
    // Only what `files` lists: no tests, no CI scripts, no lockfile.
    expect(existsSync(join(installed, 'tests'))).toBe(false);
    expect(existsSync(join(installed, '.ci'))).toBe(false);
  });

  it('bunx spike --help runs the installed CLI', async () => {
    const result = await run([bun, 'x', 'spike', '--help'], project);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('SPIKE Pilot');
    expect(result.stdout).toContain(`spike v${pkg.version}`);
  });

  it('bunx spike whoami prints the identity of the Workload API socket', async () => {
    const result = await run([bun, 'x', 'spike', 'whoami', '-f', 'json'], project, {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('pilot'),
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.spiffeId).toBe('spiffe://spike.ist/spike/pilot/role/superuser');
    expect(report.trustDomain).toBe('spike.ist');
  });

  it('the installed bin link runs directly (shebang and mode survive packing)', async () => {
    const result = await run(
      [join(project, 'node_modules', '.bin', 'spike'), '--version'],
      project,
    );
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(pkg.version);
  });

  it('the SDK imports by package name', async () => {
    const script = join(project, 'sdk-check.ts');
    writeFileSync(
      script,
      `import { createClient, isSpikeError, SpikeError } from '${pkg.name}';\n` +
        `const e = new SpikeError('api_not_found', 'x');\n` +
        `console.log(typeof createClient, isSpikeError(e));\n`,
    );
    const result = await run([bun, script], project);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('function true');
  });
});
