/**
 * `bun run dev` (src/dev/up.ts) for standard TLS clients (issue 10, criterion 6): the trust bundle
 * in PEM, the example workload's SVID as certificate files renewed at every rotation, the exact
 * `VAULT_*` exports it prints, and extra workload identities (`--workload name=spiffe://…`) with a
 * socket and certificate files each. The whole system runs as `bun run dev` runs it (issuer,
 * three Keepers, Nexus as real processes) on free ports and a temporary state directory, never on
 * the default ports (8553, 8443-8445) that .ci/readme-check uses. Clients are `node:https` with
 * hostname verification on, as hvac, node-vault and the Vault Go client verify it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { type Options, parseOptions, socketDirFor } from '../src/dev/up.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { fetchJwtSvid } from '../src/runtime/workload/fetch.ts';
import { createEdgeClient } from '../src/sdk/edge.ts';
import { cleanEnv, freePort, ROOT, runCli, runCommand, waitUntil } from './support/process.ts';

const UP = 'src/dev/up.ts';
const BILLING_ID = 'spiffe://spike.ist/apps/billing';
const DEMO_ID = 'spiffe://spike.ist/workload/demo';
const silentLogger = { info: () => {}, warn: () => {}, error: () => {} };

function options(argv: string[], env: Record<string, string> = {}): Options {
  const parsed = parseOptions(argv, env);
  if (parsed === 'help') throw new Error('unexpected help');
  return parsed;
}

function usageError(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseOptions(argv, env);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

describe('bun run dev: --workload and --svid-ttl', () => {
  it('accepts repeated workloads in order, and a TTL from the flag or the environment', () => {
    const parsed = options([
      '--workload',
      `billing=${BILLING_ID}`,
      '--workload=web-2=spiffe://spike.ist/acme/web',
      '--svid-ttl',
      '90s',
    ]);
    expect(parsed.workloads).toEqual([
      { name: 'billing', id: BILLING_ID },
      { name: 'web-2', id: 'spiffe://spike.ist/acme/web' },
    ]);
    expect(parsed.svidTtlSeconds).toBe(90);
    expect(options([]).workloads).toEqual([]);
    expect(options([]).svidTtlSeconds).toBe(3600);
    expect(options([], { SPIKE_DEV_SVID_TTL: '10m' }).svidTtlSeconds).toBe(600);
    expect(options(['--svid-ttl', '30s'], { SPIKE_DEV_SVID_TTL: '10m' }).svidTtlSeconds).toBe(30);
  });

  it('refuses a malformed --workload with a reason', () => {
    expect(usageError(['--workload', 'billing'])).toBe(
      '--workload expects <name>=<spiffe-id>, e.g. --workload billing=spiffe://spike.ist/apps/billing',
    );
    expect(usageError(['--workload'])).toBe('--workload needs a value');
    for (const name of ['Billing', '-web', '', 'a_b', 'x'.repeat(33), 'a/b', 'a.b']) {
      expect(usageError(['--workload', `${name}=${BILLING_ID}`])).toStartWith(
        '--workload: the name must be 1-32 lowercase letters, digits and dashes',
      );
    }
    for (const name of [
      'nexus',
      'pilot',
      'recover',
      'restore',
      'workload',
      'keeper-1',
      'keeper-7',
    ]) {
      expect(usageError(['--workload', `${name}=${BILLING_ID}`])).toBe(
        `--workload: the name ${name} is taken by a built-in identity`,
      );
    }
    expect(
      usageError(['--workload', `b=${BILLING_ID}`, '--workload', 'b=spiffe://spike.ist/other']),
    ).toBe('--workload: the name b is given twice');
  });

  it('refuses a SPIFFE ID that is invalid, of another trust domain, or a SPIKE role', () => {
    for (const id of [
      'https://spike.ist/apps/billing',
      'spiffe://spike.ist/apps/billing/',
      'spiffe://spike.ist/apps/../x',
      'spiffe://Spike.ist/apps',
      'spiffe://spike.ist/apps billing',
    ]) {
      const message = usageError(['--workload', `billing=${id}`]);
      expect(message).toStartWith('--workload billing: not a valid SPIFFE ID (');
      expect(message).not.toContain(id);
    }
    expect(usageError(['--workload', 'billing=spiffe://spike.ist/apps/../x'])).toBe(
      '--workload billing: not a valid SPIFFE ID (path cannot contain dot segments)',
    );
    expect(usageError(['--workload', 'billing=spiffe://spike.ist'])).toBe(
      "--workload billing: spiffe://spike.ist names the trust domain; a workload's ID has a path",
    );
    expect(usageError(['--workload', 'billing='])).toBe(
      '--workload billing: not a valid SPIFFE ID (cannot be empty)',
    );
    expect(usageError(['--workload', 'billing=spiffe://example.org/apps/billing'])).toBe(
      '--workload billing: the SPIFFE ID must be in the trust domain spike.ist (spiffe://spike.ist/...)',
    );
    for (const [path, role] of [
      ['/spike/nexus', 'nexus'],
      ['/spike/keeper/9', 'keeper'],
      ['/spike/pilot/role/superuser', 'superuser'],
      ['/spike/pilot/role/recover', 'recover'],
      ['/spike/bootstrap', 'bootstrap'],
    ]) {
      expect(usageError(['--workload', `x=spiffe://spike.ist${path}`])).toBe(
        `--workload x: spiffe://spike.ist${path} has the ${role} role of SPIKE itself; give the workload its own path`,
      );
    }
    // Paths that merely look alike are workloads.
    expect(options(['--workload', 'x=spiffe://spike.ist/spike/nexus-fan']).workloads).toHaveLength(
      1,
    );
  });

  it('passes --jwt-audience on, and refuses an empty one', () => {
    expect(options([]).jwtAudience).toBeUndefined();
    expect(options(['--jwt-audience', 'spike-nexus']).jwtAudience).toBe('spike-nexus');
    expect(options(['--jwt-audience=edge']).jwtAudience).toBe('edge');
    expect(usageError(['--jwt-audience'])).toBe('--jwt-audience needs a value');
    expect(usageError(['--jwt-audience', '  '])).toBe('--jwt-audience needs a value');
  });

  it('refuses a bad --svid-ttl', () => {
    for (const value of ['5s', '25h', '-1m', '0']) {
      expect(usageError(['--svid-ttl', value])).toBe('--svid-ttl must be between 10s and 24h');
    }
    expect(usageError(['--svid-ttl', 'soon'])).toBe(
      '--svid-ttl must be a duration such as 30s, 10m or 1h',
    );
    expect(usageError([], { SPIKE_DEV_SVID_TTL: '1s' })).toBe(
      'SPIKE_DEV_SVID_TTL must be between 10s and 24h',
    );
  });

  it('moves the sockets out of a state directory too long for a workload name', () => {
    const dir = `/tmp/${'d'.repeat(70)}`;
    expect(socketDirFor(dir)).toBe(join(dir, 'sockets'));
    expect(socketDirFor(dir, ['billing'])).toBe(join(dir, 'sockets'));
    const moved = socketDirFor(dir, ['a'.repeat(32)]);
    expect(moved.startsWith(dir)).toBe(false);
    expect(new TextEncoder().encode(join(moved, `${'a'.repeat(32)}.sock`)).length).toBeLessThan(
      108,
    );
  });

  it('exits 2 with the reason and the usage, before creating anything', async () => {
    const base = mkdtempSync(join(tmpdir(), 'spike-devup-bad-'));
    try {
      const dir = join(base, 'state');
      for (const [arg, reason] of [
        ['BAD=spiffe://spike.ist/x', '--workload: the name must be'],
        ['billing=spiffe://example.org/x', 'must be in the trust domain spike.ist'],
        ['billing=spiffe://spike.ist/a//b', 'not a valid SPIFFE ID'],
      ] as const) {
        const run = await runCommand([process.execPath, UP, '--dir', dir, '--workload', arg], {
          cwd: ROOT,
          env: cleanEnv(),
        });
        expect(run.code).toBe(2);
        expect(run.stderr).toContain(`bun run dev: `);
        expect(run.stderr).toContain(reason);
        expect(run.stderr).toContain('usage: bun run dev');
        expect(run.stdout).toBe('');
        expect(existsSync(dir)).toBe(false);
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface Exports {
  VAULT_ADDR: string;
  VAULT_CACERT: string;
  VAULT_CLIENT_CERT: string;
  VAULT_CLIENT_KEY: string;
}

interface Reply {
  status: number;
  body: string;
}

/** One HTTPS request with the given client files; hostname verification is Node's default. */
function request(
  url: string,
  files: { ca: string; cert?: string; key?: string; servername?: string },
  path: string,
  body?: string,
): Promise<Reply> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: target.hostname,
        port: Number(target.port),
        path,
        method: body === undefined ? 'GET' : 'POST',
        ca: readFileSync(files.ca),
        ...(files.cert === undefined ? {} : { cert: readFileSync(files.cert) }),
        ...(files.key === undefined ? {} : { key: readFileSync(files.key) }),
        ...(files.servername === undefined ? {} : { servername: files.servername }),
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The failure of a request that must not succeed (its error code, or `status N`). */
async function failure(promise: Promise<Reply>): Promise<string> {
  try {
    const reply = await promise;
    return `status ${reply.status}`;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}

function serialOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).serialNumber;
}

describe('bun run dev: files for standard TLS clients and extra workloads', () => {
  const base = mkdtempSync(join(tmpdir(), 'spike-devup-'));
  const dir = join(base, 'state');
  let proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  let output = '';
  let nexusPort = 0;
  let exports: Exports;
  let billing: { socket: string; cert: string; key: string };
  let firstSerial = '';
  let pilotEnv: Record<string, string>;

  beforeAll(async () => {
    const ports = new Set<number>();
    while (ports.size < 4) ports.add(await freePort());
    const [nexus, ...keepers] = [...ports];
    nexusPort = nexus!;
    proc = Bun.spawn(
      [
        process.execPath,
        UP,
        '--dir',
        dir,
        '--nexus-port',
        String(nexusPort),
        '--keeper-ports',
        keepers.join(','),
        '--svid-ttl',
        '20s',
        '--workload',
        `billing=${BILLING_ID}`,
        '--jwt-audience',
        'spike-nexus',
      ],
      { cwd: ROOT, env: cleanEnv(), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
    );
    const decoder = new TextDecoder();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
    };
    void pump(proc.stdout);
    void pump(proc.stderr);
    await waitUntil(
      async () => {
        if (proc.exitCode !== null) throw new Error(`bun run dev exited early:\n${output}`);
        return /^ {2}Logs: /m.test(output);
      },
      150_000,
      'SPIKE is ready',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${output}`);
    });
    const found = Object.fromEntries(
      [...output.matchAll(/^ {2}export (VAULT_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
    exports = found as unknown as Exports;
    const socket = /^ {2}# {3}SPIFFE_ENDPOINT_SOCKET=(unix:\/\/\S+billing\.sock)$/m.exec(output);
    const files = /^ {2}# {3}VAULT_CLIENT_CERT=(\S+) VAULT_CLIENT_KEY=(\S+)$/m.exec(output);
    billing = { socket: socket?.[1] ?? '', cert: files?.[1] ?? '', key: files?.[2] ?? '' };
    firstSerial = serialOf(exports.VAULT_CLIENT_CERT);
    pilotEnv = {
      SPIFFE_ENDPOINT_SOCKET: /^ {2}export SPIFFE_ENDPOINT_SOCKET=(\S+)$/m.exec(output)![1]!,
      SPIKE_NEXUS_API_URL: `https://127.0.0.1:${nexusPort}`,
    };
  }, 180_000);

  afterAll(async () => {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill('SIGINT');
      await Promise.race([proc.exited, Bun.sleep(20_000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    rmSync(base, { recursive: true, force: true });
  }, 30_000);

  it('prints the exact Vault exports, the trust bundle and the certificate files', () => {
    expect(output).toContain('SPIKE is ready');
    expect(exports).toEqual({
      VAULT_ADDR: `https://localhost:${nexusPort}`,
      VAULT_CACERT: join(dir, 'bundle.pem'),
      VAULT_CLIENT_CERT: join(dir, 'certs', 'workload', 'cert.pem'),
      VAULT_CLIENT_KEY: join(dir, 'certs', 'workload', 'key.pem'),
    });
    expect(output).toContain(
      `Vault clients (hvac, node-vault, the Vault Go client, the vault CLI) as ${DEMO_ID}:`,
    );
    expect(output).toContain('renewed as the SVID rotates (every 10s)');
    expect(output).toContain(`# workload billing (${BILLING_ID})`);
    expect(billing).toEqual({
      socket: `unix://${join(dir, 'sockets', 'billing.sock')}`,
      cert: join(dir, 'certs', 'billing', 'cert.pem'),
      key: join(dir, 'certs', 'billing', 'key.pem'),
    });
    // Never a private key or a certificate on the terminal.
    expect(output).not.toMatch(/BEGIN|PRIVATE KEY/);
  });

  it('writes keys and certificates mode 0600 in private directories', () => {
    for (const d of [
      join(dir, 'certs'),
      join(dir, 'certs', 'workload'),
      join(dir, 'certs', 'billing'),
    ]) {
      expect({ d, mode: statSync(d).mode & 0o777 }).toEqual({ d, mode: 0o700 });
    }
    for (const f of [
      exports.VAULT_CLIENT_CERT,
      exports.VAULT_CLIENT_KEY,
      billing.cert,
      billing.key,
    ]) {
      expect({ f, mode: statSync(f).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
  });

  it('writes each identity its SVID: chained to the bundle, with its own key', () => {
    const root = new X509Certificate(readFileSync(exports.VAULT_CACERT));
    expect(root.ca).toBe(true);
    for (const [files, id] of [
      [{ cert: exports.VAULT_CLIENT_CERT, key: exports.VAULT_CLIENT_KEY }, DEMO_ID],
      [billing, BILLING_ID],
    ] as const) {
      const leaf = new X509Certificate(readFileSync(files.cert));
      expect(leaf.subjectAltName).toBe(`URI:${id}`);
      expect(leaf.ca).toBe(false);
      expect(leaf.verify(root.publicKey)).toBe(true);
      const key = createPrivateKey(readFileSync(files.key));
      expect(createPublicKey(key).export({ format: 'der', type: 'spki' })).toEqual(
        leaf.publicKey.export({ format: 'der', type: 'spki' }),
      );
    }
  });

  it('serves the extra workload its identity on its own Workload API socket', async () => {
    const source = createX509Source({
      address: billing.socket,
      timeoutMs: 5000,
      logger: silentLogger,
    });
    try {
      const context = await source.ready();
      expect(context.svids[0]!.id).toBe(BILLING_ID);
    } finally {
      await source.close();
    }
  });

  it('runs the grant recipe with the files: hostname verified, identity from the certificate', async () => {
    const policy = await runCli(
      [
        'policy',
        'create',
        '--name',
        'billing-read',
        '--spiffeid-pattern',
        '^spiffe://spike\\.ist/apps/billing$',
        '--path-pattern',
        '^apps/billing/.*$',
        '--permissions',
        'read',
      ],
      { env: pilotEnv },
    );
    expect(policy.code).toBe(0);
    const put = await runCli(['secret', 'put', 'apps/billing/db', 'password=hunter2'], {
      env: pilotEnv,
    });
    expect(put.code).toBe(0);

    const get = JSON.stringify({ path: 'apps/billing/db' });
    const route = '/v1/store/secrets?action=get';
    const ca = exports.VAULT_CACERT;
    const granted = await request(exports.VAULT_ADDR, { ca, ...billing }, route, get);
    expect(granted.status).toBe(200);
    expect(JSON.parse(granted.body).data).toEqual({ password: 'hunter2' });
    // The same files at the IP address: the SVID names 127.0.0.1 too.
    const byIp = await request(`https://127.0.0.1:${nexusPort}`, { ca, ...billing }, route, get);
    expect(byIp.status).toBe(200);

    const demo = { ca, cert: exports.VAULT_CLIENT_CERT, key: exports.VAULT_CLIENT_KEY };
    const denied = await request(exports.VAULT_ADDR, demo, route, get);
    expect(denied.status).toBe(401);
    expect(denied.body).not.toContain('hunter2');
    const audit = readFileSync(join(dir, 'logs', 'nexus-audit.log'), 'utf8');
    expect(audit).toContain(`"caller":"${BILLING_ID}","route":"${route}"`);
    expect(audit).toContain(`"caller":"${DEMO_ID}","route":"${route}"`);

    // Hostname verification is on: a name the SVID does not carry fails, and so does no client
    // certificate at all.
    expect(
      await failure(
        request(exports.VAULT_ADDR, { ...demo, servername: 'nexus.example' }, route, get),
      ),
    ).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await failure(request(exports.VAULT_ADDR, { ca }, route, get))).not.toBe('status 200');

    // --jwt-audience: the same workload, with a JWT-SVID from its socket and no certificate.
    const [svid] = await fetchJwtSvid({ address: billing.socket, audience: ['spike-nexus'] });
    const caPem = readFileSync(ca, 'utf8');
    const edge = createEdgeClient({
      apiUrl: exports.VAULT_ADDR,
      token: () => svid!.svid,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
        fetch(input, { ...init, tls: { ca: caPem } } as RequestInit)) as typeof fetch,
      retry: false,
    });
    expect((await edge.getSecret('apps/billing/db')).data).toEqual({ password: 'hunter2' });
  });

  it('renews the certificate files when the SVID rotates (20 s TTL: every 10 s)', async () => {
    await waitUntil(
      async () => serialOf(exports.VAULT_CLIENT_CERT) !== firstSerial,
      40_000,
      'the certificate file to be renewed',
    );
    // Give the key rename a moment, then the renewed pair must work.
    await Bun.sleep(200);
    const leaf = new X509Certificate(readFileSync(exports.VAULT_CLIENT_CERT));
    const key = createPrivateKey(readFileSync(exports.VAULT_CLIENT_KEY));
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(statSync(exports.VAULT_CLIENT_KEY).mode & 0o777).toBe(0o600);
    const reply = await request(
      exports.VAULT_ADDR,
      { ca: exports.VAULT_CACERT, ...billing },
      '/v1/store/secrets?action=get',
      JSON.stringify({ path: 'apps/billing/db' }),
    );
    expect(reply.status).toBe(200);
  }, 60_000);

  it('serves the Vault API at the printed VAULT_ADDR (once Nexus mounts it)', async () => {
    const reply = await request(
      exports.VAULT_ADDR,
      { ca: exports.VAULT_CACERT, ...billing },
      '/v1/secret/data/apps/billing/db',
    );
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).data.data).toEqual({ password: 'hunter2' });
  });

  it('stops on Ctrl-C with exit 0 and deletes the certificate files', async () => {
    proc.kill('SIGINT');
    expect(await proc.exited).toBe(0);
    expect(existsSync(join(dir, 'certs'))).toBe(false);
    expect(existsSync(join(dir, 'data', 'spike.db'))).toBe(true);
  }, 30_000);
});
