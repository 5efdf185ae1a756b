/**
 * compose.yaml, checked statically (no Docker engine runs in CI): the file is valid YAML; every
 * file it or the Dockerfile references exists; every service runs a real entry point (an
 * executable the image builds from a source file that exists, a script the image copies, or the
 * binary of a SPIRE image); ports, socket paths and the trust domain agree across compose.yaml,
 * the SPIRE configurations and the scripts, and with the defaults of docs/spike-api.md §10; the
 * SPIFFE IDs registered by .deploy/register.sh have the roles of docs/spike-api.md §1 for the services
 * that run with the registered uids; every environment variable given to a SPIKE container is one
 * the code reads.
 */
import { describe, expect, it } from 'bun:test';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import pkg from '../package.json' with { type: 'json' };
import { BUILD_TARGETS, isBuildTarget } from '../src/build.ts';
import { hasRole, type SpikeRole } from '../src/core/spike/roles.ts';

const ROOT = resolve(import.meta.dir, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string };
  command?: string[];
  entrypoint?: string[];
  user?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}

const compose = parse(read('compose.yaml'), { merge: true }) as {
  name: string;
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const spikeServices = Object.entries(services).filter(([, s]) => s.build?.target === 'runtime');

// ---- the Dockerfile: ARG defaults, stages, COPY instructions
interface Copy {
  readonly from?: string;
  readonly sources: string[];
  readonly dest: string;
  readonly stage: string;
}
function parseDockerfile(path: string) {
  const lines = read(path)
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Record<string, string> = {};
  const copies: Copy[] = [];
  const runs: { stage: string; command: string }[] = [];
  let stage = '';
  const expand = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? '');
  for (const line of lines) {
    const [instruction, ...rest] = line.split(/\s+/);
    const body = rest.join(' ');
    switch (instruction!.toUpperCase()) {
      case 'ARG': {
        const [name, value] = body.split('=');
        if (value !== undefined && stage === '') args[name!] = value;
        break;
      }
      case 'FROM': {
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(body)!;
        stage = m[2] ?? '';
        stages[stage] = expand(m[1]!);
        break;
      }
      case 'COPY': {
        const words = body.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        copies.push({ stage, sources: paths.slice(0, -1), dest: paths.at(-1)!, from });
        break;
      }
      case 'RUN':
        runs.push({ stage, command: body });
        break;
    }
  }
  return { args, stages, copies, runs };
}

const dockerfilePath = services.nexus!.build!.dockerfile;
const dockerfile = parseDockerfile(dockerfilePath);

/** The files a stage (and the stages it is built FROM) has at `path`. */
function stageHas(stage: string, path: string): boolean {
  for (let s: string | undefined = stage; s !== undefined; ) {
    for (const c of dockerfile.copies.filter((x) => x.stage === s)) {
      const files = c.sources.map((src) => {
        const name = src.split('/').at(-1)!;
        return c.dest.endsWith('/') ? `${c.dest}${name}` : c.dest;
      });
      if (files.includes(path)) return true;
    }
    const base: string | undefined = dockerfile.stages[s];
    s = base !== undefined && base in dockerfile.stages ? base : undefined;
  }
  return false;
}

/** Names the build stage compiles (`bun src/build.ts --outdir /out <targets>`). */
const compiled: string[] = (() => {
  const run = dockerfile.runs.find((r) => r.command.includes('src/build.ts'));
  if (run === undefined) return [];
  return run.command.split(/\s+/).filter((w) => isBuildTarget(w));
})();

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (path.endsWith('.ts')) out.push(path);
    }
  };
  walk('src');
  walk('cli');
  return out;
}
const sources = sourceFiles().map((f) => read(f));
/** True when some source file reads `name`: as a string literal or as `env.NAME`. */
const isReadByCode = (name: string) =>
  sources.some(
    (text) =>
      text.includes(`'${name}'`) || text.includes(`"${name}"`) || text.includes(`env.${name}`),
  );

const registerScript = read('.deploy/register.sh');
const seedScript = read('.deploy/seed.sh');
const serverConf = read('.deploy/spire/server.conf');
const agentConf = read('.deploy/spire/agent.conf');
const hcl = (text: string, key: string) =>
  new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, 'm').exec(text)?.[1];

/** `entry <name> <uid> <path>` lines of register.sh. */
const entries = [...registerScript.matchAll(/^entry (\S+) (\d+) (\/\S*)$/gm)].map((m) => ({
  name: m[1]!,
  uid: m[2]!,
  path: m[3]!,
}));

describe('compose.yaml', () => {
  it('is valid YAML with the expected services', () => {
    expect(compose.name).toBe('spike');
    for (const name of [
      'spire-server',
      'spire-agent',
      'registrar',
      'nexus',
      'keeper-1',
      'keeper-2',
      'keeper-3',
      'pilot-seed',
      'demo-workload',
    ]) {
      expect(services[name]).toBeDefined();
    }
  });

  it('pins the official SPIRE images, the same version everywhere', () => {
    const server = services['spire-server']!.image!;
    const agent = services['spire-agent']!.image!;
    const version = /^ghcr\.io\/spiffe\/spire-server:(\d+\.\d+\.\d+)$/.exec(server)?.[1];
    expect(version).toBeDefined();
    expect(agent).toBe(`ghcr.io/spiffe/spire-agent:${version}`);
    expect(dockerfile.stages['spire-server']).toBe(server);
    // The version the SPIRE test suite runs against (tests/spire via .ci/install-spire).
    expect(/^version="([^"]+)"$/m.exec(read('.ci/install-spire'))?.[1]).toBe(version!);
  });

  it('builds with the Bun of package.json and runs the executables without Bun', () => {
    expect(dockerfile.stages.build).toBe(`oven/bun:${pkg.config.bunVersion}`);
    expect(dockerfile.stages.runtime).not.toContain('bun');
  });

  it('references only files that exist', () => {
    const referenced = new Set<string>();
    for (const service of Object.values(services)) {
      if (service.build !== undefined) {
        expect(statSync(join(ROOT, service.build.context)).isDirectory()).toBe(true);
        referenced.add(service.build.dockerfile);
        if (service.build.target !== undefined) {
          expect(Object.keys(dockerfile.stages)).toContain(service.build.target);
        }
      }
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) referenced.add(source);
        else expect(Object.keys(compose.volumes)).toContain(source);
      }
    }
    for (const copy of dockerfile.copies.filter((c) => c.from === undefined)) {
      for (const source of copy.sources) referenced.add(source);
    }
    expect(referenced.size).toBeGreaterThan(5);
    for (const path of referenced) {
      expect({ path, exists: existsSync(join(ROOT, path)) }).toEqual({ path, exists: true });
    }
    // The build context lets exactly those files through (BuildKit's <Dockerfile>.dockerignore).
    const ignore = read(`${dockerfilePath}.dockerignore`)
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1));
    for (const copy of dockerfile.copies.filter((c) => c.from === undefined)) {
      for (const source of copy.sources) {
        const allowed = ignore.some((a) => source === a || source.startsWith(`${a}/`));
        expect({ source, allowed }).toEqual({ source, allowed: true });
      }
    }
    // Every COPY --from names a stage of the file.
    for (const copy of dockerfile.copies.filter((c) => c.from !== undefined)) {
      expect(Object.keys(dockerfile.stages)).toContain(copy.from!);
    }
  });

  it('runs a real entry point in every service', () => {
    // The image's executables are build targets whose entry files exist.
    expect(compiled.length).toBeGreaterThan(0);
    for (const name of compiled) {
      expect(existsSync(join(ROOT, BUILD_TARGETS[name as keyof typeof BUILD_TARGETS]))).toBe(true);
      expect(stageHas('runtime', `/usr/local/bin/${name}`)).toBe(true);
    }
    const runnable = (stage: string, argv: string[]) => {
      const [program, script] = argv;
      if (program === '/bin/sh') return script !== undefined && stageHas(stage, script);
      return compiled.includes(program!);
    };
    for (const [name, service] of Object.entries(services)) {
      const argv = [...(service.entrypoint ?? []), ...(service.command ?? [])];
      if (service.image?.startsWith('ghcr.io/spiffe/')) {
        // The image's entry point is `spire-<x> run`; the command passes a config it can read.
        expect(argv[0]).toBe('-config');
        const config = argv[1]!;
        const mounted = (service.volumes ?? []).some((v) => {
          const target = v.split(':')[1]!;
          return config === target || config.startsWith(`${target}/`);
        });
        expect({ name, config, mounted }).toEqual({ name, config, mounted: true });
        const kind = name === 'spire-server' ? 'server' : 'agent';
        expect(service.healthcheck!.test.slice(0, 3)).toEqual([
          'CMD',
          `/opt/spire/bin/spire-${kind}`,
          'healthcheck',
        ]);
        continue;
      }
      const stage = service.build!.target!;
      expect({ name, argv, runnable: runnable(stage, argv) }).toEqual({
        name,
        argv,
        runnable: true,
      });
    }
    // The scripts call programs of their image.
    expect(stageHas('registrar', '/usr/local/bin/spire-server')).toBe(true);
    expect(registerScript).toContain('spire-server');
    for (const line of seedScript.split('\n').filter((l) => /^\s*spike /.test(l))) {
      expect(compiled).toContain(line.trim().split(' ')[0]!);
    }
  });

  it('uses the default ports of docs/spike-api.md §10', () => {
    const nexus = services.nexus!;
    expect(nexus.environment!.SPIKE_NEXUS_TLS_PORT).toBe(':8553');
    expect(nexus.ports).toEqual(['127.0.0.1:8553:8553']);
    const keepers = Object.keys(services).filter((n) => /^keeper-\d+$/.test(n));
    expect(keepers.length).toBe(3);
    for (const k of keepers) expect(services[k]!.environment!.SPIKE_KEEPER_TLS_PORT).toBe(':8443');
    const peers = nexus.environment!.SPIKE_NEXUS_KEEPER_PEERS!.split(',');
    expect(peers).toEqual(keepers.map((k) => `https://${k}:8443`));
    expect(Number(nexus.environment!.SPIKE_NEXUS_SHAMIR_SHARES)).toBe(peers.length);
    for (const [, service] of spikeServices) {
      const url = service.environment?.SPIKE_NEXUS_API_URL;
      if (url !== undefined) expect(url).toBe('https://nexus:8553');
    }
  });

  it('agrees on the SPIRE sockets, ports and trust domain', () => {
    const trustDomain = hcl(serverConf, 'trust_domain');
    expect(trustDomain).toBe('spike.ist');
    expect(hcl(agentConf, 'trust_domain')).toBe(trustDomain);
    expect(registerScript).toContain(`TRUST_DOMAIN=${trustDomain}`);
    expect(hcl(agentConf, 'server_port')).toBe(hcl(serverConf, 'bind_port'));
    expect(hcl(agentConf, 'server_address')).toBe('spire-server');

    const serverSocket = hcl(serverConf, 'socket_path')!;
    expect(registerScript).toContain(`SOCKET=${serverSocket}`);
    expect(services['spire-server']!.healthcheck!.test).toContain(serverSocket);
    const serverSocketDir = serverSocket.slice(0, serverSocket.lastIndexOf('/'));
    for (const name of ['spire-server', 'registrar']) {
      expect(services[name]!.volumes!.some((v) => v.split(':')[1] === serverSocketDir)).toBe(true);
    }

    const agentSocket = hcl(agentConf, 'socket_path')!;
    const agentSocketDir = agentSocket.slice(0, agentSocket.lastIndexOf('/'));
    expect(services['spire-agent']!.healthcheck!.test).toContain(agentSocket);
    const socketVolume = services['spire-agent']!.volumes!.find(
      (v) => v.split(':')[1] === agentSocketDir,
    )!.split(':')[0];
    for (const [name, service] of spikeServices) {
      expect({ name, socket: service.environment!.SPIFFE_ENDPOINT_SOCKET }).toEqual({
        name,
        socket: `unix://${agentSocket}`,
      });
      expect(service.volumes).toContain(`${socketVolume}:${agentSocketDir}:ro`);
    }

    // The agent's trust bundle and join token come from the registrar's bootstrap volume.
    const bootstrap = /^BOOTSTRAP=(\S+)$/m.exec(registerScript)![1]!;
    for (const name of ['registrar', 'spire-agent']) {
      expect(services[name]!.volumes!.some((v) => v.split(':')[1] === bootstrap)).toBe(true);
    }
    expect(hcl(agentConf, 'trust_bundle_path')).toBe(`${bootstrap}/bundle.pem`);
    expect(registerScript).toContain('"$BOOTSTRAP/bundle.pem"');
    expect(hcl(agentConf, 'join_token_file')).toBe(`${bootstrap}/join-token`);
    expect(registerScript).toContain('"$BOOTSTRAP/join-token"');
  });

  it('registers the SPIFFE IDs of docs/spike-api.md §1 for the uids the services run as', () => {
    const roleOfEntry: Record<string, SpikeRole | 'workload'> = {
      nexus: 'nexus',
      'keeper-1': 'keeper',
      'keeper-2': 'keeper',
      'keeper-3': 'keeper',
      pilot: 'superuser',
      recover: 'recover',
      restore: 'restore',
      'demo-workload': 'workload',
    };
    expect(entries.map((e) => e.name).sort()).toEqual(Object.keys(roleOfEntry).sort());
    const trustRoots = new Set(
      spikeServices.flatMap(([, s]) =>
        Object.entries(s.environment ?? {})
          .filter(([k]) => k.startsWith('SPIKE_TRUST_ROOT_'))
          .map(([, v]) => v),
      ),
    );
    expect([...trustRoots]).toEqual(['spike.ist']);
    const uids = new Set<string>();
    for (const entry of entries) {
      const id = `spiffe://spike.ist${entry.path}`;
      const role = roleOfEntry[entry.name]!;
      if (role === 'workload') {
        for (const r of ['nexus', 'keeper', 'superuser', 'recover', 'restore'] as const) {
          expect(hasRole(id, r, ['spike.ist'])).toBe(false);
        }
      } else {
        expect({ id, role, ok: hasRole(id, role, ['spike.ist']) }).toEqual({ id, role, ok: true });
      }
      expect(uids.has(entry.uid)).toBe(false); // one identity per uid
      uids.add(entry.uid);
      const service =
        services[entry.name] ?? (entry.name === 'pilot' ? services['pilot-seed'] : undefined);
      if (service !== undefined) {
        expect({ name: entry.name, user: service.user }).toEqual({
          name: entry.name,
          user: `${entry.uid}:${entry.uid}`,
        });
      }
    }
    expect(services.pilot?.user).toBe('1002:1002');
  });

  it('lets the demo workload read the secret the Pilot seeds', () => {
    const demo = entries.find((e) => e.name === 'demo-workload')!;
    const idPattern = /--spiffeid-pattern '([^']+)'/.exec(seedScript)![1]!;
    const pathPattern = /--path-pattern '([^']+)'/.exec(seedScript)![1]!;
    const secretPath = /spike secret put (\S+)/.exec(seedScript)![1]!;
    const demoPath = services['demo-workload']!.command![1]!;
    expect(new RegExp(idPattern).test(`spiffe://spike.ist${demo.path}`)).toBe(true);
    expect(new RegExp(pathPattern).test(secretPath)).toBe(true);
    expect(demoPath).toBe(secretPath);
    expect(seedScript).toContain('--permissions read');
  });

  it('gives SPIKE containers only environment variables the code reads', () => {
    const names = new Set(spikeServices.flatMap(([, s]) => Object.keys(s.environment ?? {})));
    expect(names.size).toBeGreaterThan(5);
    for (const name of names) {
      expect({ name, read: isReadByCode(name) }).toEqual({ name, read: true });
    }
  });
});
