/**
 * `spike whoami` as a real process (`bun cli/main.ts whoami …`): against the development issuer's
 * pilot socket, against a missing socket, and against the grpc-js Workload API double for
 * PermissionDenied, InvalidArgument, an SVID that fails validation and a stalled stream
 * (docs/spike-api.md §11 output and exit codes; docs/spiffe.md §1.4).
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { createTestPki, type TestPki } from './support/cert-factory.ts';
import { runCli } from './support/process.ts';
import { startWorkloadDouble, type WorkloadDouble } from './support/workload-double.ts';

// Real processes on a shared machine: bound by generous limits, not bun's 5 s default.
setDefaultTimeout(60_000);

const SUPERUSER = 'spiffe://spike.ist/spike/pilot/role/superuser';

/** `bun cli/main.ts <args>` with no inherited SPIKE or SPIFFE variable, plus `env`. */
const spike = (args: string[], env: Record<string, string> = {}) => runCli(args, { env });

describe('spike whoami against the development issuer', () => {
  let dir: string;
  let issuer: DevIssuer;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-whoami-'));
    issuer = await startDevIssuer({ dir, logger: { info: () => {}, warn: () => {} } });
  });

  afterAll(async () => {
    await issuer.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('-f json prints the superuser ID, trust domain, expiry and chain length', async () => {
    const before = Date.now();
    const run = await spike(['whoami', '-f', 'json', '--socket', issuer.addressFor('pilot')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.spiffeId).toBe(SUPERUSER);
    expect(report.trustDomain).toBe('spike.ist');
    expect(report.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(report.expiresAt)).toBeGreaterThan(before);
    expect(report.chainLength).toBe(1);
  });

  it('reads SPIFFE_ENDPOINT_SOCKET, and --socket overrides it', async () => {
    const viaEnv = await spike(['whoami', '--format=j'], {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus'),
    });
    expect(viaEnv.code).toBe(0);
    expect(JSON.parse(viaEnv.stdout).spiffeId).toBe('spiffe://spike.ist/spike/nexus');

    const overridden = await spike(['whoami', '-f', 'y', '--socket', issuer.addressFor('pilot')], {
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus'),
    });
    expect(overridden.code).toBe(0);
    expect(YAML.parse(overridden.stdout).spiffeId).toBe(SUPERUSER);
  });

  it('prints aligned human output by default', async () => {
    const run = await spike(['whoami', '--socket', issuer.addressFor('pilot')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`SPIFFE ID:    ${SUPERUSER}`);
    expect(run.stdout).toContain('Trust domain: spike.ist');
    expect(run.stdout).toMatch(/Expires: +\d{4}-.*Z \(in \d+ s\)/);
    expect(run.stdout).toContain('Chain length: 1');
  });

  it('rejects an unknown format and a bad timeout as usage errors (exit 2)', async () => {
    const format = await spike(['whoami', '-f', 'xml', '--socket', issuer.addressFor('pilot')]);
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('Invalid format');
    expect(format.stdout).toBe('');
    const timeout = await spike([
      'whoami',
      '--timeout',
      'soon',
      '--socket',
      issuer.addressFor('pilot'),
    ]);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain('Invalid --timeout');
  });
});

describe('spike whoami failures', () => {
  let pki: TestPki;
  let double: WorkloadDouble;

  beforeAll(async () => {
    pki = await createTestPki({ trustDomain: 'spike.ist' });
  });

  afterAll(async () => {
    await double?.stop();
  });

  it('a missing socket: non-zero exit and "is the SPIRE Agent running?"', async () => {
    const missing = path.join(os.tmpdir(), `spike-none-${process.pid}`, 'api.sock');
    const run = await spike(['whoami', '-f', 'json', '--socket', `unix://${missing}`]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('is the SPIRE Agent running?');
    expect(run.stderr).toContain(missing);
  });

  it('a socket file nobody listens on: the same hint', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-stale-'));
    const stale = path.join(dir, 'api.sock');
    fs.writeFileSync(stale, '');
    const run = await spike(['whoami', '--timeout', '1s', '--socket', `unix://${stale}`]);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('is the SPIRE Agent running?');
  });

  it('PermissionDenied: "no registration entry matches this process"', async () => {
    double = await startWorkloadDouble();
    // No current response: the double answers every stream with Trailers-Only PermissionDenied.
    const run = await spike(['whoami', '--timeout', '1s', '--socket', double.address]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('no registration entry matches this process');
    expect(double.started.FetchX509SVID).toBeGreaterThanOrEqual(1);
    await double.stop();
  });

  it('InvalidArgument: reported at once with the server message', async () => {
    double = await startWorkloadDouble();
    double.script('FetchX509SVID', {
      status: { code: 3, message: 'security header missing from request' },
    });
    const started = Date.now();
    const run = await spike(['whoami', '--timeout', '20s', '--socket', double.address]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('InvalidArgument');
    expect(run.stderr).toContain('security header missing from request');
    // No retry after InvalidArgument: far quicker than the 20 s timeout.
    expect(Date.now() - started).toBeLessThan(10_000);
    await double.stop();
  });

  it('an SVID that fails validation: says so, exits non-zero', async () => {
    double = await startWorkloadDouble();
    const bad = await pki.bad.twoUriSans();
    double.pushX509({
      svids: [
        {
          spiffeId: bad.id,
          x509Svid: bad.chainBytes,
          x509SvidKey: bad.privateKey,
          bundle: pki.bundleBytes,
        },
      ],
    });
    const run = await spike(['whoami', '--timeout', '1s', '--socket', double.address]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('failed validation');
    expect(run.stderr).toContain('more than one URI SAN');
    expect(run.stdout).toBe('');
    await double.stop();
  });

  it('a stalled Workload API: times out after --timeout', async () => {
    double = await startWorkloadDouble();
    double.script('FetchX509SVID', { stall: true });
    const started = Date.now();
    const run = await spike(['whoami', '--timeout', '1s', '--socket', double.address]);
    const took = Date.now() - started;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('timed out after 1s');
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(8000);
    await double.stop();
  });

  it('a valid SVID from the double is printed (the double is a real Workload API)', async () => {
    double = await startWorkloadDouble();
    const svid = await pki.issue(SUPERUSER, { via: 'intermediate' });
    double.pushX509({
      svids: [
        {
          spiffeId: svid.id,
          x509Svid: svid.chainBytes,
          x509SvidKey: svid.privateKey,
          bundle: pki.bundleBytes,
          hint: 'ops',
        },
      ],
    });
    const run = await spike(['whoami', '-f', 'json', '--socket', double.address]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      spiffeId: SUPERUSER,
      trustDomain: 'spike.ist',
      // X.509 times have second precision.
      expiresAt: new Date(Math.floor(svid.notAfter.getTime() / 1000) * 1000).toISOString(),
      chainLength: 2,
      hint: 'ops',
    });
    await double.stop();
  });
});
