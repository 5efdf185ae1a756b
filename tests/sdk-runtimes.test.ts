/**
 * The published package under Node, Deno and Bun (issue 15, criterion 1; README "Use from Node,
 * Deno, Bun"). The checkout is packed with `bun pm pack` (its `prepack` builds `dist/lib`), and
 * each runtime gets a fresh project outside the checkout that installs the tarball the way a user
 * of that runtime would, then runs the README's example for it, verbatim: it reads a secret from a
 * real Nexus (tests/support/cluster.ts, memory backend) over mTLS, with the workload's SVIDs from
 * the development issuer's Workload API socket, under a policy the superuser granted.
 *
 * - Node (`/usr/bin/node`, 20): `npm install <tarball>`; the dependencies come from a loopback
 *   registry that serves this checkout's `node_modules` (tests/support/local-registry.ts), so
 *   nothing needs the network. A TypeScript consumer (`moduleResolution: nodenext`) type-checks
 *   against the shipped `.d.ts`.
 * - Deno (`node_modules/.bin/deno`, 2): the example's `npm:spike-ts` specifier, resolved through
 *   `NPM_CONFIG_REGISTRY` (the same loopback registry, which also serves the tarball: Deno 2 has no
 *   way to name a local `.tgz` in an `npm:` specifier), into a fresh `DENO_DIR`, with exactly the
 *   permissions the README's `deno run` line grants.
 * - Bun: `bun add <tarball>` (dependencies from the Bun cache, else the loopback registry).
 * - JSR: `jsr.json` agrees with `package.json`, and `deno publish --dry-run` accepts it.
 *
 * Each run must print the README's promised line and nothing on stderr; the password written
 * must appear in no output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { createClient } from '../src/index.ts';
import { type Cluster, startCluster } from './support/cluster.ts';
import { type LocalRegistry, startLocalRegistry } from './support/local-registry.ts';
import { cleanEnv, ROOT, runCommand } from './support/process.ts';
import { startWorkloadDouble } from './support/workload-double.ts';

const NODE = '/usr/bin/node';
const DENO = join(ROOT, 'node_modules', '.bin', 'deno');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const SECRET_PATH = 'tenants/acme/db/creds';
const WORKLOAD_ID = 'spiffe://spike.ist/workload/demo';
const PASSWORD = Array.from(crypto.getRandomValues(new Uint8Array(18)), (b) =>
  b.toString(16).padStart(2, '0'),
).join('');
/** The Workload API socket path the README's `deno run` line names. */
const README_SOCKET = '/run/spire/sockets/agent.sock';
const EXPECTED = `${WORKLOAD_ID} read 2 keys; user is app`;

let work: string;
let tarball: string;
let registry: LocalRegistry;
let cluster: Cluster;
let readme: ReadmeExamples;

interface ReadmeExamples {
  readonly node: string;
  readonly deno: string;
  readonly bun: string;
  /** The flags of the README's `deno run … main.ts` (with its example socket path). */
  readonly denoFlags: string[];
}

/** The three code blocks (and the `deno run` flags) of the README section, in order. */
function readmeExamples(text: string): ReadmeExamples {
  const start = text.indexOf('\n## Use from Node, Deno, Bun and the edge\n');
  if (start < 0) throw new Error('README has no "Use from Node, Deno, Bun and the edge" section');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/^```(js|ts)\n([\s\S]*?)^```$/gm)].map((m) => m[2]!);
  // The fourth, the edge worker, runs in tests/nexus-jwt.test.ts.
  if (blocks.length !== 4) throw new Error(`expected 4 code blocks, found ${blocks.length}`);
  const flags = /`deno run ((?:--[a-z-]+(?:=[^ `]+)? )+)main\.ts`/.exec(section);
  if (flags === null) throw new Error('the section has no `deno run … main.ts` line');
  return {
    node: blocks[0]!,
    deno: blocks[1]!,
    bun: blocks[2]!,
    denoFlags: flags[1]!.trim().split(' '),
  };
}

/** A fresh project directory with `files` written into it. */
function project(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

/** The environment of a program under test: no SPIKE_* leftovers, the workload's identity. */
function workloadEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...cleanEnv(),
    SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor('workload'),
    SPIKE_NEXUS_API_URL: cluster.nexusUrl,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: '20s',
    ...extra,
  };
}

/** A run of the example: exactly the promised line, a clean stderr, no password anywhere. */
function expectRead(result: { code: number; stdout: string; stderr: string }): void {
  expect(result.stdout).not.toContain(PASSWORD);
  expect(result.stderr).not.toContain(PASSWORD);
  expect({ code: result.code, stdout: result.stdout.trim(), stderr: result.stderr }).toEqual({
    code: 0,
    stdout: EXPECTED,
    stderr: '',
  });
}

beforeAll(async () => {
  readme = readmeExamples(await Bun.file(join(ROOT, 'README.md')).text());
  work = mkdtempSync(join(tmpdir(), 'spike-runtimes-'));
  const packed = await runCommand(
    [process.execPath, 'pm', 'pack', '--destination', work, '--quiet'],
    { cwd: ROOT },
  );
  if (packed.code !== 0) throw new Error(`bun pm pack failed: ${packed.stdout}${packed.stderr}`);
  const file = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (file === undefined) throw new Error('bun pm pack wrote no tarball');
  tarball = join(work, file);
  registry = await startLocalRegistry({ tarballs: [tarball] });

  // The memory backend needs no Keepers (its Shamir settings are checked but unused).
  cluster = await startCluster({
    keepers: 0,
    nexusEnv: {
      SPIKE_NEXUS_BACKEND_STORE: 'memory',
      SPIKE_NEXUS_SHAMIR_SHARES: '3',
      SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
    },
  });
  await cluster.waitReady(30_000);
  const pilot = await createClient({
    socket: cluster.issuer.addressFor('pilot'),
    apiUrl: cluster.nexusUrl,
    logger: { info() {}, warn() {}, error() {} },
  });
  try {
    await pilot.putSecret(SECRET_PATH, { user: 'app', password: PASSWORD });
    await pilot.createPolicy({
      name: 'demo-reads-acme-db',
      spiffeIdPattern: '^spiffe://spike\\.ist/workload/demo$',
      pathPattern: '^tenants/acme/db/.*$',
      permissions: ['read'],
    });
  } finally {
    await pilot.close();
  }
}, 150_000);

afterAll(async () => {
  await cluster?.close();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships compiled ES modules and declarations, with conditional exports', async () => {
    const listing = await runCommand(['tar', '-tzf', tarball], { cwd: work });
    const files = new Set(listing.stdout.split('\n'));
    for (const f of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/sdk/client.d.ts']) {
      expect(files.has(`package/${f}`)).toBe(true);
    }
    // The executables of `bun run build` share dist/, but are not published.
    expect(
      [...files].filter((f) => f.startsWith('package/dist/') && !f.startsWith('package/dist/lib/')),
    ).toEqual([]);
    const js = await runCommand(['tar', '-xzOf', tarball, 'package/dist/lib/index.js'], {
      cwd: work,
    });
    // No Bun-only API and no TypeScript specifier left in what Node and Deno load.
    expect(js.stdout).not.toMatch(
      /\bBun\.[A-Za-z]|import\.meta\.(dir|main|require)|from\s*["'][^"']+\.ts["']/,
    );
    expect(pkg.exports['.']).toEqual({
      types: './dist/lib/index.d.ts',
      bun: './src/index.ts',
      default: './dist/lib/index.js',
    });
  });
});

describe("jsr.json (Deno's registry)", () => {
  it('matches package.json and passes `deno publish --dry-run` (module graph, slow types)', async () => {
    const jsr = (await Bun.file(join(ROOT, 'jsr.json')).json()) as Record<string, unknown>;
    expect(jsr.version).toBe(pkg.version);
    expect(jsr.license).toBe(pkg.license);
    expect(jsr.exports).toEqual({
      '.': pkg.exports['.'].bun,
      './edge': pkg.exports['./edge'].bun,
    });
    const dry = await runCommand([DENO, 'publish', '--dry-run', '--allow-dirty'], {
      cwd: ROOT,
      env: { ...cleanEnv(), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    });
    expect(dry.stdout + dry.stderr).toContain('Dry run complete');
    expect(dry.stdout + dry.stderr).not.toContain('src/nexus/');
    expect(dry.code).toBe(0);
  }, 90_000);
});

describe('Node 20: npm install of the tarball', () => {
  let dir: string;

  beforeAll(async () => {
    dir = project('node-app', {
      'package.json': '{ "name": "node-app", "private": true, "type": "module" }\n',
      'main.mjs': readme.node,
      '.npmrc': '',
    });
    const installed = await runCommand(
      [
        'npm',
        'install',
        '--registry',
        registry.url,
        '--cache',
        join(work, 'npm-cache'),
        '--userconfig',
        join(dir, '.npmrc'),
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--loglevel=error',
        tarball,
      ],
      { cwd: dir, env: { ...cleanEnv(), PATH: `/usr/bin:${process.env.PATH}` } },
    );
    if (installed.code !== 0) {
      throw new Error(
        `npm install failed (registry misses: ${registry.misses.join(', ') || 'none'}):\n${installed.stderr}`,
      );
    }
  }, 120_000);

  it('runs on Node 20 or later', async () => {
    const version = await runCommand([NODE, '--version'], { cwd: dir });
    expect(Number(/^v(\d+)\./.exec(version.stdout)?.[1])).toBeGreaterThanOrEqual(20);
  });

  it('the README example reads the secret over mTLS', async () => {
    expect(existsSync(join(dir, 'node_modules', pkg.name, 'dist', 'lib', 'index.js'))).toBe(true);
    expectRead(await runCommand([NODE, 'main.mjs'], { cwd: dir, env: workloadEnv() }));
  }, 60_000);

  it('fetchJwtSvid mints a JWT-SVID from the Workload API under Node', async () => {
    const double = await startWorkloadDouble();
    double.jwtSvids = (audience) => [
      { spiffeId: WORKLOAD_ID, svid: `header.${audience.join('+')}.signature` },
    ];
    try {
      writeFileSync(
        join(dir, 'jwt.mjs'),
        `import { fetchJwtSvid } from '${pkg.name}';\n` +
          "const [svid] = await fetchJwtSvid({ audience: ['spike-nexus'] });\n" +
          "console.log(svid.spiffeId + ' ' + svid.svid);\n",
      );
      const result = await runCommand([NODE, 'jwt.mjs'], {
        cwd: dir,
        env: { ...cleanEnv(), SPIFFE_ENDPOINT_SOCKET: double.address },
      });
      expect({ code: result.code, stdout: result.stdout.trim(), stderr: result.stderr }).toEqual({
        code: 0,
        stdout: `${WORKLOAD_ID} header.spike-nexus.signature`,
        stderr: '',
      });
    } finally {
      await double.stop();
    }
  }, 60_000);

  it('a TypeScript consumer type-checks against the shipped declarations', async () => {
    writeFileSync(
      join(dir, 'typed.ts'),
      `import { createClient, isSpikeError, type SpikeClient } from '${pkg.name}';\n` +
        'const spike: SpikeClient = await createClient({ retry: false });\n' +
        "const secret: { data: Record<string, string> } = await spike.getSecret('a/b');\n" +
        'export const ok: boolean = isSpikeError(secret);\n' +
        '// @ts-expect-error: getSecret takes a path string\n' +
        'await spike.getSecret(42);\n',
    );
    const checked = await runCommand(
      [
        NODE,
        TSC,
        '--noEmit',
        '--strict',
        '--skipLibCheck',
        'false',
        '--target',
        'es2022',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--types',
        'node',
        '--typeRoots',
        join(ROOT, 'node_modules', '@types'),
        'typed.ts',
      ],
      { cwd: dir },
    );
    expect(checked.stdout + checked.stderr).toBe('');
    expect(checked.code).toBe(0);
  }, 60_000);
});

describe('Deno 2: the npm: specifier', () => {
  it('the README example reads the secret over mTLS', async () => {
    const dir = project('deno-app', {
      'main.ts': readme.deno,
      // Fails `deno check` should the package's types be missing (`any` makes this unused).
      'typed.ts':
        "import { createClient } from 'npm:spike-ts';\n" +
        'const spike = await createClient({ retry: false });\n' +
        '// @ts-expect-error: getSecret takes a path string\n' +
        'await spike.getSecret(42);\n',
    });
    const socket = cluster.issuer.addressFor('workload').replace(/^unix:\/\//, '');
    const flags = readme.denoFlags.map((f) => f.replace(README_SOCKET, socket));
    expect(flags.some((f) => f.includes(socket))).toBe(true);
    const env = workloadEnv({
      NPM_CONFIG_REGISTRY: registry.url,
      DENO_DIR: join(work, 'deno-dir'),
      DENO_NO_UPDATE_CHECK: '1',
      NO_COLOR: '1',
    });
    // The example type-checks against the package's declarations (`types` condition).
    const checked = await runCommand([DENO, 'check', 'main.ts', 'typed.ts'], { cwd: dir, env });
    expect({ code: checked.code, stdout: checked.stdout }).toEqual({ code: 0, stdout: '' });
    const result = await runCommand([DENO, 'run', ...flags, 'main.ts'], { cwd: dir, env });
    // Deno reports what it downloads on stderr; nothing else may be there.
    const stderr = result.stderr
      .split('\n')
      .filter((line) => !line.startsWith('Download '))
      .join('\n');
    expectRead({ ...result, stderr });
  }, 90_000);
});

describe('Bun: bun add of the tarball', () => {
  it('the README example reads the secret over mTLS', async () => {
    const dir = project('bun-app', {
      'package.json': '{ "name": "bun-app", "private": true, "type": "module" }\n',
      'main.ts': readme.bun,
    });
    const added = await runCommand(
      [
        process.execPath,
        'add',
        '--registry',
        registry.url,
        '--prefer-offline',
        '--ignore-scripts',
        '--no-progress',
        tarball,
      ],
      { cwd: dir, env: cleanEnv() },
    );
    if (added.code !== 0) throw new Error(`bun add <tarball> failed: ${added.stderr}`);
    expectRead(await runCommand([process.execPath, 'main.ts'], { cwd: dir, env: workloadEnv() }));
  }, 90_000);
});
