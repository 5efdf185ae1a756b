/**
 * The development identity issuer (src/dev/issuer.ts, docs/architecture.md "Development identity"):
 * one real Workload API socket per component, checked with our own client and with grpc-js,
 * SPIRE's header rule, rotation at half-life, the 0700 socket directory, and the CLI entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeProtectedHeader } from 'jose';
import { isSpikeError } from '../src/core/errors.ts';
import { parseJwtBundles, validateJwtSvid } from '../src/core/spiffe/jwtsvid.ts';
import type { X509Context } from '../src/core/spiffe/types.ts';
import { validateOwnX509Svid } from '../src/core/spiffe/x509svid.ts';
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { fetchJwtBundles, fetchJwtSvid, fetchX509Bundles } from '../src/runtime/workload/fetch.ts';
import {
  createGrpcJsWorkloadClient,
  type GrpcJsX509SvidResponse,
  tempSocketDir,
} from './support/workload-double.ts';

const quiet = { info: () => {}, warn: () => {} };
const silentLogger = { info: () => {}, warn: () => {}, error: () => {} };

async function svidFor(issuer: DevIssuer, name: string): Promise<X509Context> {
  const source = createX509Source({
    address: issuer.addressFor(name),
    timeoutMs: 3000,
    logger: silentLogger,
  });
  try {
    return await source.ready();
  } finally {
    await source.close();
  }
}

function header(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('workload.spiffe.io', 'true');
  return metadata;
}

describe('development identity issuer', () => {
  let issuer: DevIssuer;
  let dir: string;
  const warnings: string[] = [];

  beforeAll(async () => {
    dir = path.join(tempSocketDir('spike-dev-'), 'sockets');
    issuer = await startDevIssuer({
      dir,
      extraWorkloads: { billing: 'spiffe://spike.ist/apps/billing' },
      logger: { info: () => {}, warn: (m) => warnings.push(m) },
    });
  });
  afterAll(async () => {
    await issuer.stop();
  });

  it('is labelled development-only when it starts', () => {
    expect(warnings.join('\n')).toMatch(/DEVELOPMENT identity issuer \(not for production/);
    expect(warnings.join('\n')).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('serves one socket per component, each with its SPIFFE ID', async () => {
    const expected: Record<string, string> = {
      nexus: 'spiffe://spike.ist/spike/nexus',
      'keeper-1': 'spiffe://spike.ist/spike/keeper',
      'keeper-2': 'spiffe://spike.ist/spike/keeper',
      'keeper-3': 'spiffe://spike.ist/spike/keeper',
      pilot: 'spiffe://spike.ist/spike/pilot/role/superuser',
      recover: 'spiffe://spike.ist/spike/pilot/role/recover',
      restore: 'spiffe://spike.ist/spike/pilot/role/restore',
      workload: 'spiffe://spike.ist/workload/demo',
      billing: 'spiffe://spike.ist/apps/billing',
    };
    expect(Object.keys(issuer.sockets).sort()).toEqual(Object.keys(expected).sort());
    const contexts = await Promise.all(Object.keys(expected).map((name) => svidFor(issuer, name)));
    for (const [i, name] of Object.keys(expected).entries()) {
      const context = contexts[i]!;
      expect(issuer.socketFor(name)).toBe(path.join(dir, `${name}.sock`));
      expect(issuer.ids[name]).toBe(expected[name]!);
      expect(context.svids.map((s) => s.id)).toEqual([expected[name]!]);
      expect(context.bundles.get('spike.ist')).toEqual([issuer.rootCertificate]);
      const lifetime = context.svids[0]!.notAfter.getTime() - Date.now();
      expect(lifetime).toBeGreaterThan(3500 * 1000); // default TTL 1 h
      expect(lifetime).toBeLessThanOrEqual(3600 * 1000);
    }
    // keepers share the role ID but never a key
    const keeperKeys = new Set(
      contexts.slice(1, 4).map((c) => Buffer.from(c.svids[0]!.privateKey).toString('hex')),
    );
    expect(keeperKeys.size).toBe(3);
    expect(() => issuer.socketFor('nope')).toThrow(RangeError);
  });

  it('keeps the socket directory at mode 0700', () => {
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(issuer.socketFor('nexus')).isSocket()).toBe(true);
  });

  it('answers a grpc-js client with the same wire format as SPIRE', async () => {
    const client = createGrpcJsWorkloadClient(issuer.addressFor('pilot'));
    try {
      const first = await new Promise<GrpcJsX509SvidResponse>((resolve, reject) => {
        const call = client.FetchX509SVID({}, header());
        call.on('data', (m: GrpcJsX509SvidResponse) => {
          resolve(m);
          call.cancel();
        });
        call.on('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) reject(e);
        });
      });
      const svid = first.svids[0]!;
      expect(svid.spiffeId).toBe('spiffe://spike.ist/spike/pilot/role/superuser');
      expect(new Uint8Array(svid.bundle) as Uint8Array).toEqual(issuer.rootCertificate);
      // the certificate and key validate with the SPIFFE rules (docs/spiffe.md §4)
      const validated = await validateOwnX509Svid(
        {
          spiffeId: svid.spiffeId,
          chain: new Uint8Array(svid.x509Svid),
          privateKey: new Uint8Array(svid.x509SvidKey),
          hint: svid.hint,
        },
        new Map([['spike.ist', [issuer.rootCertificate]]]),
        new Date(),
      );
      expect(validated.id).toBe(svid.spiffeId);

      const missing = await new Promise<grpc.ServiceError>((resolve) => {
        const call = client.FetchX509SVID({}, new grpc.Metadata());
        call.on('data', () => {});
        call.on('error', resolve);
      });
      expect(missing.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(missing.details).toBe('security header missing from request');

      const bundles = await new Promise<{ bundles: Record<string, Buffer> }>((resolve, reject) => {
        const call = client.FetchX509Bundles({}, header());
        call.on('data', (m) => {
          resolve(m);
          call.cancel();
        });
        call.on('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) reject(e);
        });
      });
      expect(Object.keys(bundles.bundles)).toEqual(['spiffe://spike.ist']);
      expect(new Uint8Array(bundles.bundles['spiffe://spike.ist']!) as Uint8Array).toEqual(
        issuer.rootCertificate,
      );

      const jwt = await new Promise<{ svids: { spiffeId: string; svid: string }[] }>(
        (resolve, reject) => {
          client.FetchJWTSVID({ audience: ['x'] }, header(), (e, v) =>
            e ? reject(e) : resolve(v as { svids: { spiffeId: string; svid: string }[] }),
          );
        },
      );
      expect(jwt.svids.map((s) => s.spiffeId)).toEqual([issuer.ids.pilot!]);
      const bundles2 = parseJwtBundles(
        await fetchJwtBundles({ address: issuer.addressFor('workload') }),
      );
      const validated2 = await validateJwtSvid(jwt.svids[0]!.svid, bundles2, { audience: 'x' });
      expect(validated2.id).toBe(issuer.ids.pilot!);
      expect(validated2.expiry.getTime() - Date.now()).toBeLessThanOrEqual(300_000);

      const noAudience = await new Promise<grpc.ServiceError | null>((resolve) => {
        client.FetchJWTSVID({ audience: [] }, header(), (e) => resolve(e));
      });
      expect(noAudience?.code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
  });

  it('signs JWT-SVIDs with fetchJwtSvid and streams their JWKS with FetchJWTBundles', async () => {
    const address = issuer.addressFor('billing');
    const [svid] = await fetchJwtSvid({ address, audience: ['spike-nexus', 'other'] });
    expect(svid?.spiffeId).toBe('spiffe://spike.ist/apps/billing');
    const header = decodeProtectedHeader(svid!.svid);
    expect(header.alg).toBe('ES256');
    expect(header.typ).toBe('JWT');
    expect(typeof header.kid).toBe('string');
    const bundles = parseJwtBundles(await fetchJwtBundles({ address }));
    expect([...bundles.keys()]).toEqual(['spike.ist']);
    expect(bundles.get('spike.ist')!.keys.map((k) => k.kid)).toEqual([header.kid]);
    const ok = await validateJwtSvid(svid!.svid, bundles, { audience: 'spike-nexus' });
    expect(ok.audience).toEqual(['spike-nexus', 'other']);
    await expect(validateJwtSvid(svid!.svid, bundles, { audience: 'vault' })).rejects.toThrow(
      'expected audience',
    );
    // Asking for another workload's identity is refused, as SPIRE does.
    const denied = await fetchJwtSvid({
      address,
      audience: ['spike-nexus'],
      spiffeId: issuer.ids.workload!,
    }).catch((e: unknown) => e);
    expect(isSpikeError(denied)).toBe(true);
    expect(String(denied)).toContain('PERMISSION_DENIED');
  });

  it('serves FetchX509Bundles to our client too', async () => {
    const bundles = await fetchX509Bundles({ address: issuer.addressFor('workload') });
    expect([...bundles.entries()]).toEqual([['spike.ist', [issuer.rootCertificate]]]);
  });
});

describe('development issuer rotation and configuration', () => {
  it('rotates at half-life and pushes the new SVID on the open stream', async () => {
    const dir = tempSocketDir('spike-dev-');
    const issuer = await startDevIssuer({
      dir,
      ttlSeconds: 2,
      keepers: 1,
      trustDomain: 'example.org',
      logger: quiet,
    });
    const source = createX509Source({
      address: issuer.addressFor('nexus'),
      timeoutMs: 3000,
      logger: silentLogger,
    });
    try {
      const first = (await source.ready()).svids[0]!;
      expect(first.id).toBe('spiffe://example.org/spike/nexus');
      expect(Object.keys(issuer.sockets)).not.toContain('keeper-2');
      const started = Date.now();
      const rotated = await new Promise<X509Context>((resolve) => {
        const off = source.onUpdate((c) => {
          if (c !== undefined) {
            off();
            resolve(c);
          }
        });
      });
      const waited = Date.now() - started;
      expect(rotated.svids[0]!.serial).not.toBe(first.serial);
      expect(rotated.svids[0]!.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
      expect(waited).toBeLessThan(1900); // half of the 2 s TTL, not at expiry
    } finally {
      await source.close();
      await issuer.stop();
    }
    expect(fs.readdirSync(dir)).toEqual([]); // sockets removed on stop
  });

  it('tells open streams it is stopping (clients retry) and removes its sockets', async () => {
    const dir = tempSocketDir('spike-dev-');
    const issuer = await startDevIssuer({ dir, keepers: 0, logger: quiet });
    const lines: string[] = [];
    const source = createX509Source({
      address: issuer.addressFor('nexus'),
      timeoutMs: 3000,
      backoff: { initialMs: 5000, maxMs: 5000 },
      logger: { info: () => {}, warn: (m) => lines.push(m), error: (m) => lines.push(m) },
    });
    try {
      await source.ready();
      await issuer.stop();
      for (let i = 0; i < 100 && lines.length === 0; i++) await Bun.sleep(10);
      expect(lines.join('\n')).toMatch(/UNAVAILABLE/);
      expect(source.current()).toBeDefined(); // still valid; the agent may come back
      expect(fs.existsSync(path.join(dir, 'nexus.sock'))).toBe(false);
    } finally {
      await source.close();
    }
  });

  it('forces the directory to 0700 and replaces stale sockets, but never other files', async () => {
    const dir = tempSocketDir('spike-dev-');
    fs.chmodSync(dir, 0o755);
    const first = await startDevIssuer({ dir, keepers: 0, logger: quiet });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    // A crashed issuer leaves its socket file behind: listen in a child and kill -9 it.
    const stale = first.socketFor('nexus');
    await first.stop();
    const child = Bun.spawn(
      [
        'bun',
        '-e',
        `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`,
      ],
      { stdout: 'pipe' },
    );
    await child.stdout.getReader().read();
    child.kill('SIGKILL');
    await child.exited;
    expect(fs.statSync(stale).isSocket()).toBe(true);
    const second = await startDevIssuer({ dir, keepers: 0, logger: quiet });
    expect((await svidFor(second, 'nexus')).svids[0]!.id).toBe('spiffe://spike.ist/spike/nexus');
    // a live socket (another issuer running on the same directory) is never taken over
    await expect(startDevIssuer({ dir, keepers: 0, logger: quiet })).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringMatching(/in use by another process/),
    });
    expect((await svidFor(second, 'nexus')).svids[0]!.id).toBe('spiffe://spike.ist/spike/nexus');
    await second.stop();

    fs.writeFileSync(path.join(dir, 'pilot.sock'), 'not a socket');
    await expect(startDevIssuer({ dir, keepers: 0, logger: quiet })).rejects.toMatchObject({
      code: 'config_invalid',
    });
    expect(fs.readFileSync(path.join(dir, 'pilot.sock'), 'utf8')).toBe('not a socket');
  });

  it('rejects bad configuration with config_invalid', async () => {
    const dir = tempSocketDir('spike-dev-');
    const bad: Parameters<typeof startDevIssuer>[0][] = [
      { dir, ttlSeconds: 1 },
      { dir, keepers: -1 },
      { dir, keepers: 1.5 },
      { dir, extraWorkloads: { 'Bad Name': 'spiffe://spike.ist/x' } },
      { dir, extraWorkloads: { nexus: 'spiffe://spike.ist/x' } },
      { dir, extraWorkloads: { other: 'spiffe://other.org/x' } },
      { dir: path.join(dir, 'x'.repeat(120)) },
    ];
    const before = fs.readdirSync(dir);
    for (const options of bad) {
      const error = await startDevIssuer({ ...options, logger: quiet }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSpikeError(error) && error.code === 'config_invalid').toBe(true);
    }
    expect(fs.readdirSync(dir)).toEqual(before); // nothing created for a rejected configuration
    for (const options of [
      { dir, trustDomain: 'Bad.Domain' },
      { dir, extraWorkloads: { x: 'spiffe://spike.ist/a/../b' } },
    ]) {
      const error = await startDevIssuer({ ...options, logger: quiet }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSpikeError(error)).toBe(true);
    }
  });

  it('runs as a CLI until SIGTERM', async () => {
    const dir = tempSocketDir('spike-dev-cli-');
    const proc = Bun.spawn(
      [
        'bun',
        path.join(import.meta.dir, '..', 'src/dev/issuer-main.ts'),
        '--dir',
        dir,
        '--keepers',
        '1',
        '--ttl',
        '30s',
      ],
      {
        stdout: 'pipe',
        stderr: 'pipe',
      },
    );
    const reader = proc.stdout.getReader();
    let out = '';
    while (!out.includes('workload\t')) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    const lines = out.trim().split('\n');
    expect(lines).toContain(`nexus\tunix://${dir}/nexus.sock\tspiffe://spike.ist/spike/nexus`);
    expect(lines).toContain(
      `keeper-1\tunix://${dir}/keeper-1.sock\tspiffe://spike.ist/spike/keeper`,
    );
    const context = await (async () => {
      const source = createX509Source({
        address: `unix://${dir}/keeper-1.sock`,
        timeoutMs: 3000,
        logger: silentLogger,
      });
      try {
        return await source.ready();
      } finally {
        await source.close();
      }
    })();
    const lifetime = context.svids[0]!.notAfter.getTime() - Date.now();
    expect(lifetime).toBeLessThanOrEqual(30_000);
    expect(lifetime).toBeGreaterThan(20_000);
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(await new Response(proc.stderr).text()).toMatch(/DEVELOPMENT identity issuer/);
    expect(fs.existsSync(path.join(dir, 'nexus.sock'))).toBe(false);
  });
});
