/**
 * Unanchored policy patterns over-grant (issue 11 finding 6; docs/spike-api.md §7 "Anchoring"):
 * the anchoring rule itself, Nexus's `warning` over real mTLS, and `spike policy create|apply`
 * refusing an unanchored pattern (exit 2) unless `--allow-unanchored`, as separate processes.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAnchored } from '../src/core/policy/anchored.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';

// CLI processes take ~0.3 s of CPU each; generous on a loaded machine.
setDefaultTimeout(120_000);

const ROOT = path.join(import.meta.dir, '..');
const ID = '^spiffe://spike\\.ist/workload/demo$';

let nexus: NexusHarness;
let source: X509Source;
let client: MtlsClient;
let home: string;

async function post(route: string, body: unknown) {
  const res = await client.request(route, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: JSON.parse(new TextDecoder().decode(res.body)) as unknown };
}

async function spike(args: string[]) {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(base)) {
    if (key.startsWith('SPIKE_') || key === 'SPIFFE_ENDPOINT_SOCKET') delete base[key];
  }
  const proc = Bun.spawn([process.execPath, 'cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...base, HOME: home, ...nexus.env('pilot') },
    stdin: 'ignore',
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

async function stored(name: string): Promise<number> {
  return (await post('/v1/acl/policy?action=get', { id: name })).status;
}

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-anchor-'));
  nexus = await startNexusHarness({ backend: 'memory' });
  source = createX509Source({ address: nexus.issuer.addressFor('pilot') });
  await source.ready();
  client = createMtlsClient({ source, authorizer: authorizeAny(), baseUrl: nexus.url });
});

afterAll(async () => {
  await client.close();
  await source.close();
  await nexus.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

describe('isAnchored', () => {
  it('needs ^ first, an unescaped $ last and no top-level |', () => {
    for (const p of ['^a$', '^secrets/demo/.*$', '(?i)^a$', '^(?:a|b)$', '^[|]x$', '^a\\\\$']) {
      expect({ p, anchored: isAnchored(p) }).toEqual({ p, anchored: true });
    }
    for (const p of [
      'demo',
      '^secrets/demo',
      'demo$',
      '^a\\$',
      '^a|b$',
      '.*',
      '^(a)|(b)$',
      '^a)|(b$',
    ]) {
      expect({ p, anchored: isAnchored(p) }).toEqual({ p, anchored: false });
    }
  });
});

describe('Nexus policy put', () => {
  it('answers {} for anchored patterns and adds a warning for each unanchored one', async () => {
    const policy = { spiffeidPattern: ID, pathPattern: '^secrets/demo/.*$', permissions: ['read'] };
    expect(await post('/v1/acl/policy', { ...policy, name: 'anchored' })).toEqual({
      status: 200,
      json: {},
    });
    expect(
      await post('/v1/acl/policy', { ...policy, name: 'path', pathPattern: '^secrets/demo' }),
    ).toEqual({
      status: 200,
      json: { warning: 'pathPattern is not anchored (^…$): it also matches other paths' },
    });
    expect(
      await post('/v1/acl/policy', {
        ...policy,
        name: 'both',
        spiffeidPattern: 'spiffe://spike\\.ist/workload/demo',
        pathPattern: 'tenants/demo/db',
      }),
    ).toEqual({
      status: 200,
      json: {
        warning:
          'spiffeidPattern is not anchored (^…$): it also matches other SPIFFE IDs; ' +
          'pathPattern is not anchored (^…$): it also matches other paths',
      },
    });
    // Stored as asked: the wire stays SPIKE's, the warning is an extra field only.
    expect([await stored('path'), await stored('both')]).toEqual([200, 200]);
  });
});

describe('spike policy create|apply', () => {
  const flags = (name: string, pathPattern: string, id = ID) => [
    `--name=${name}`,
    `--path-pattern=${pathPattern}`,
    `--spiffeid-pattern=${id}`,
    '--permissions=read',
  ];

  it('refuses an unanchored flag pattern with exit 2, naming the flag', async () => {
    const [create, apply, both] = await Promise.all([
      spike(['policy', 'create', ...flags('c1', '^secrets/demo')]),
      spike(['policy', 'apply', ...flags('a1', '^secrets/demo/.*$', 'spiffe://spike\\.ist/x')]),
      spike(['policy', 'create', ...flags('c2', 'demo', 'spiffe://spike\\.ist/x')]),
    ]);
    expect([create.code, create.stdout]).toEqual([2, '']);
    expect(create.stderr).toContain('Error: --path-pattern is not anchored');
    expect(create.stderr).toContain('^…$');
    expect(create.stderr).toContain('--allow-unanchored');
    expect(apply.code).toBe(2);
    expect(apply.stderr).toContain('Error: --spiffeid-pattern is not anchored');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--spiffeid-pattern and --path-pattern are not anchored');
    expect([await stored('c1'), await stored('a1'), await stored('c2')]).toEqual([404, 404, 404]);
  });

  it('refuses an unanchored pattern in an apply file, naming its key', async () => {
    const file = path.join(home, 'loose.yaml');
    fs.writeFileSync(
      file,
      `name: f1\nspiffeidPattern: '${ID}'\npathPattern: 'tenants/demo/db'\npermissions: [read]\n`,
    );
    const refused = await spike(['policy', 'apply', '--file', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("Error: 'pathPattern' is not anchored");
    expect(await stored('f1')).toBe(404);
    const allowed = await spike(['policy', 'apply', '--file', file, '--allow-unanchored']);
    expect([allowed.code, allowed.stdout]).toEqual([0, "Policy 'f1' applied successfully\n"]);
    expect(await stored('f1')).toBe(200);
  });

  it('proceeds with --allow-unanchored, and with anchored patterns', async () => {
    const [create, apply, anchored] = await Promise.all([
      spike(['policy', 'create', ...flags('c3', '^secrets/demo'), '--allow-unanchored']),
      spike([
        'policy',
        'apply',
        ...flags('a3', 'demo', 'spiffe://spike\\.ist/x'),
        '--allow-unanchored',
      ]),
      spike(['policy', 'create', ...flags('c4', '^secrets/demo/.*$')]),
    ]);
    expect([create.code, create.stdout]).toEqual([0, 'Policy created successfully.\n']);
    expect([apply.code, apply.stdout]).toEqual([0, "Policy 'a3' applied successfully\n"]);
    expect([anchored.code, anchored.stdout]).toEqual([0, 'Policy created successfully.\n']);
    expect([await stored('c3'), await stored('a3'), await stored('c4')]).toEqual([200, 200, 200]);
  });
});
