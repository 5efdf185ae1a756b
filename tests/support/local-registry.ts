/**
 * A read-only npm registry on loopback for the packaging tests (tests/sdk-runtimes.test.ts), so
 * `npm install` and Deno's `npm:` specifiers work with no network at all: it serves
 *
 * - every package installed in this checkout's `node_modules` (nested copies included, so each
 *   name may have several versions), packed on first request into a cache under
 *   `node_modules/.cache/spike-local-registry/` (kept across runs; the key is name@version);
 * - the tarballs passed in `tarballs` (e.g. the freshly packed `spike-ts`), as they are.
 *
 * `GET /<name>` answers a packument (npm registry API: `versions`, `dist-tags.latest`, each
 * version's `dist.tarball`, `dist.integrity` and `dist.shasum`); a scoped name may come as
 * `@scope%2fname` or `@scope/name`. A name it does not hold answers 404, which npm and Deno
 * report with the name, so a missing dependency shows up as such instead of a silent fetch from
 * the public registry.
 *
 * ```ts
 * const registry = await startLocalRegistry({ tarballs: [tgz] });
 * // npm install --registry ${registry.url} …   |   NPM_CONFIG_REGISTRY=${registry.url} deno run …
 * await registry.stop();
 * ```
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runCommand } from './process.ts';

export interface LocalRegistry {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** Names requested that the registry does not hold (for a test's error message). */
  readonly misses: readonly string[];
  stop(): Promise<void>;
}

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly [key: string]: unknown;
}

interface Version {
  readonly manifest: Manifest;
  /** A package directory to pack, or a ready tarball. */
  readonly source: { readonly dir: string } | { readonly tgz: string };
}

/** The manifest fields installers use; scripts are left out (nothing here should run). */
const MANIFEST_FIELDS = [
  'name',
  'version',
  'type',
  'main',
  'module',
  'exports',
  'bin',
  'engines',
  'os',
  'cpu',
  'dependencies',
  'optionalDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'bundleDependencies',
] as const;

const CACHE = join(ROOT, 'node_modules', '.cache', 'spike-local-registry');

function manifestOf(json: Record<string, unknown>): Manifest {
  const out: Record<string, unknown> = {};
  for (const field of MANIFEST_FIELDS) if (json[field] !== undefined) out[field] = json[field];
  return out as unknown as Manifest;
}

/** Every package directory under a `node_modules` directory, recursively. */
function packagesUnder(nodeModules: string, into: Map<string, Map<string, Version>>): void {
  if (!existsSync(nodeModules)) return;
  for (const entry of readdirSync(nodeModules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dirs = entry.name.startsWith('@')
      ? readdirSync(join(nodeModules, entry.name), { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => join(nodeModules, entry.name, e.name))
      : [join(nodeModules, entry.name)];
    for (const dir of dirs) {
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      if (typeof json.name !== 'string' || typeof json.version !== 'string') continue;
      const versions = into.get(json.name) ?? new Map<string, Version>();
      if (!versions.has(json.version))
        versions.set(json.version, { manifest: manifestOf(json), source: { dir } });
      into.set(json.name, versions);
      packagesUnder(join(dir, 'node_modules'), into);
    }
  }
}

/** Highest version by numeric major.minor.patch (prereleases sort as their release). */
function highest(versions: Iterable<string>): string {
  const key = (v: string) => v.split(/[.+-]/, 3).map((n) => Number.parseInt(n, 10) || 0);
  const sorted = [...versions].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  });
  return sorted.at(-1)!;
}

/** Starts the registry on a free loopback port. */
export async function startLocalRegistry(
  options: { tarballs?: readonly string[] } = {},
): Promise<LocalRegistry> {
  const packages = new Map<string, Map<string, Version>>();
  for (const tgz of options.tarballs ?? []) {
    const read = await runCommand(['tar', '-xzOf', tgz, 'package/package.json'], { cwd: ROOT });
    if (read.code !== 0) throw new Error(`${tgz}: no package/package.json: ${read.stderr}`);
    const manifest = manifestOf(JSON.parse(read.stdout) as Record<string, unknown>);
    packages.set(manifest.name, new Map([[manifest.version, { manifest, source: { tgz } }]]));
  }
  packagesUnder(join(ROOT, 'node_modules'), packages);
  mkdirSync(CACHE, { recursive: true });

  /** name@version → tarball path, packed at most once per process. */
  const packed = new Map<string, Promise<string>>();
  const tarballOf = (version: Version): Promise<string> => {
    if ('tgz' in version.source) return Promise.resolve(version.source.tgz);
    const { dir } = version.source;
    const id = `${version.manifest.name}@${version.manifest.version}`;
    let pending = packed.get(id);
    if (pending === undefined) {
      pending = (async () => {
        const file = join(CACHE, `${id.replace('/', '+')}.tgz`);
        if (existsSync(file)) return file;
        const partial = `${file}.${process.pid}.partial`;
        const tar = await runCommand(
          [
            'tar',
            '-czf',
            partial,
            '--exclude=./node_modules',
            '--transform=s,^\\.,package,',
            '-C',
            dir,
            '.',
          ],
          { cwd: ROOT },
        );
        if (tar.code !== 0) throw new Error(`packing ${id} failed: ${tar.stderr}`);
        renameSync(partial, file);
        return file;
      })();
      packed.set(id, pending);
    }
    return pending;
  };

  const misses: string[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request): Promise<Response> {
      const path = decodeURIComponent(new URL(request.url).pathname).slice(1);
      const base: string = `http://127.0.0.1:${server.port}/`;
      const tarball = /^-\/t\/(.+)\/([^/]+)\.tgz$/.exec(path);
      if (tarball !== null) {
        const version = packages.get(tarball[1]!)?.get(tarball[2]!);
        if (version === undefined) return new Response('not found', { status: 404 });
        return new Response(Bun.file(await tarballOf(version)), {
          headers: { 'content-type': 'application/octet-stream' },
        });
      }
      const versions = packages.get(path);
      if (versions === undefined) {
        misses.push(path);
        return Response.json({ error: 'not found' }, { status: 404 });
      }
      const entries = await Promise.all(
        [...versions.values()].map(async (version) => {
          const bytes = readFileSync(await tarballOf(version));
          const { name, version: v } = version.manifest;
          const dist = {
            tarball: `${base}-/t/${encodeURIComponent(name)}/${v}.tgz`,
            integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
            shasum: createHash('sha1').update(bytes).digest('hex'),
          };
          return [v, { ...version.manifest, dist }] as const;
        }),
      );
      return Response.json({
        name: path,
        'dist-tags': { latest: highest(versions.keys()) },
        versions: Object.fromEntries(entries),
      });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/`,
    misses,
    async stop() {
      await server.stop(true);
    },
  };
}
