/**
 * Components say when their own SVID rotates (src/runtime/startup.ts `logSvidRotations`): a real
 * Keeper process under the development issuer with 2-second SVIDs logs each new serial and expiry
 * at INFO, and nothing about keys.
 */
import { afterAll, beforeAll, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DevIssuer, startDevIssuer } from '../src/dev/issuer.ts';
import { freePort, ROOT } from './support/process.ts';

let dir: string;
let issuer: DevIssuer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spk-rot-'));
  issuer = await startDevIssuer({
    dir: join(dir, 's'),
    ttlSeconds: 2,
    keepers: 1,
    logger: { info: () => {}, warn: () => {} },
  });
});

afterAll(async () => {
  await issuer.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('a Keeper logs each rotation of its SVID with serial and expiry, no key material', async () => {
  const proc = Bun.spawn(['bun', join(ROOT, 'src/keeper/main.ts')], {
    env: {
      ...process.env,
      SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('keeper-1'),
      SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${await freePort()}`,
      SPIKE_SYSTEM_LOG_LEVEL: 'INFO',
    },
    stdout: 'pipe',
    stderr: 'ignore',
  });
  const reader = proc.stdout.getReader();
  const rotations: Record<string, unknown>[] = [];
  let text = '';
  const deadline = Date.now() + 15_000;
  try {
    while (rotations.length < 2 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry.msg === 'X.509-SVID rotated') rotations.push(entry);
        expect(line).not.toContain('PRIVATE KEY');
      }
    }
  } finally {
    proc.kill();
    await proc.exited;
  }
  expect(rotations.length).toBe(2);
  const [first, second] = rotations as [Record<string, unknown>, Record<string, unknown>];
  expect(first.id).toBe('spiffe://spike.ist/spike/keeper');
  expect(first.level).toBe('INFO');
  expect(first.serial).toMatch(/^[0-9a-f]+$/);
  expect(second.serial).not.toBe(first.serial);
  expect(Date.parse(String(second.notAfter))).toBeGreaterThan(Date.parse(String(first.notAfter)));
  expect(Object.keys(first).sort()).toEqual([
    'component',
    'id',
    'level',
    'msg',
    'notAfter',
    'serial',
    'time',
  ]);
});
