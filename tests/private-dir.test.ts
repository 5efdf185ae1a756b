/**
 * The `.spike-$USER` temp-directory fallback refuses a directory another user could have planted
 * or can move (docs/spike-api.md §10.1). CI runs as root, so "another user" is faked with
 * `chown 65534`.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpikeError } from '../src/core/errors.ts';
import { resolvePrivateDir } from '../src/runtime/private-dir.ts';
import { ROOT } from './support/process.ts';

const NOBODY = 65534;
const SPEC = { variable: 'SPIKE_TEST_PRIVATE_DIR', suffix: 'data', description: 'data directory' };
const root = mkdtempSync(join(tmpdir(), 'spike-private-dir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;

let n = 0;
/** A fresh parent standing in for `/tmp`, with `mode` (and owner `uid` when given). */
function parentDir(mode: number, uid?: number): string {
  n += 1;
  const dir = join(root, `p${n}`);
  mkdirSync(dir);
  chmodSync(dir, mode);
  if (uid !== undefined) chownSync(dir, uid, uid);
  return dir;
}

/** Resolves with only the temp fallback available (no HOME). */
function resolveIn(tmp: string): ReturnType<typeof resolvePrivateDir> {
  return resolvePrivateDir({ TMPDIR: tmp, USER: 'alice' }, SPEC);
}

function refusal(tmp: string): SpikeError {
  try {
    resolveIn(tmp);
  } catch (error) {
    if (error instanceof SpikeError) return error;
    throw error;
  }
  throw new Error('the fallback was accepted');
}

describe('temp-directory fallback', () => {
  test('creates .spike-$USER with mode 0700 in a sticky 1777 parent', () => {
    const tmp = parentDir(0o1777);
    const got = resolveIn(tmp);
    expect(got).toEqual({ dir: join(tmp, '.spike-alice', 'data'), source: 'temp' });
    expect(statSync(join(tmp, '.spike-alice')).mode & 0o7777).toBe(0o700);
    expect(statSync(got.dir).mode & 0o7777).toBe(0o700);
  });

  test('accepts an existing 0700 directory of ours', () => {
    const tmp = parentDir(0o1777);
    mkdirSync(join(tmp, '.spike-alice'), { mode: 0o700 });
    expect(resolveIn(tmp).dir).toBe(join(tmp, '.spike-alice', 'data'));
  });

  test('refuses a symlink, even to a 0700 directory of ours', () => {
    const tmp = parentDir(0o1777);
    const target = join(root, `target${n}`);
    mkdirSync(target, { mode: 0o700 });
    symlinkSync(target, join(tmp, '.spike-alice'));
    const error = refusal(tmp);
    expect(error.code).toBe('config_invalid');
    expect(error.message).toContain(`${join(tmp, '.spike-alice')} is a symlink`);
    expect(() => statSync(join(target, 'data'))).toThrow();
  });

  test('refuses a directory with group or other permission bits, and leaves it as it was', () => {
    const tmp = parentDir(0o1777);
    const base = join(tmp, '.spike-alice');
    mkdirSync(base);
    chmodSync(base, 0o755);
    const error = refusal(tmp);
    expect(error.code).toBe('config_invalid');
    expect(error.message).toContain(`${base} has mode 0755`);
    expect(statSync(base).mode & 0o7777).toBe(0o755);
  });

  test.if(isRoot)('refuses a directory owned by another user', () => {
    const tmp = parentDir(0o1777);
    const base = join(tmp, '.spike-alice');
    mkdirSync(base, { mode: 0o700 });
    chownSync(base, NOBODY, NOBODY);
    const error = refusal(tmp);
    expect(error.code).toBe('config_invalid');
    expect(error.message).toContain(`${base} is owned by uid ${NOBODY}`);
  });

  test('refuses a parent others may write to that is not sticky', () => {
    const tmp = parentDir(0o777);
    const error = refusal(tmp);
    expect(error.message).toContain(`${tmp} is writable by others but not sticky (mode 0777`);
    expect(() => statSync(join(tmp, '.spike-alice'))).toThrow();
  });

  test.if(isRoot)('refuses a parent owned by another user, even a sticky one', () => {
    const tmp = parentDir(0o1777, NOBODY);
    const error = refusal(tmp);
    expect(error.message).toContain(`${tmp} is owned by uid ${NOBODY}`);
  });

  test('accepts a private parent of ours that is not sticky', () => {
    const tmp = parentDir(0o700);
    expect(resolveIn(tmp).source).toBe('temp');
  });

  test('a configured directory and $HOME come first and are not subject to the temp rules', () => {
    const tmp = parentDir(0o777);
    const home = parentDir(0o700);
    const got = resolvePrivateDir({ TMPDIR: tmp, USER: 'alice', HOME: home }, SPEC);
    expect(got).toEqual({ dir: join(home, '.spike', 'data'), source: 'home' });
  });
});

describe('a refused fallback stops Nexus with one line', () => {
  test('names the directory and the rule, no stack trace', async () => {
    const tmp = parentDir(0o1777);
    const base = join(tmp, '.spike-alice');
    mkdirSync(base);
    chmodSync(base, 0o750);
    const proc = Bun.spawn([process.execPath, 'src/nexus/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        TMPDIR: tmp,
        USER: 'alice',
        SPIKE_NEXUS_KEEPER_PEERS: 'https://127.0.0.1:1,https://127.0.0.1:2',
        SPIKE_NEXUS_SHAMIR_SHARES: '2',
        SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
      },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).not.toBe(0);
    expect(stderr.trim()).toBe(
      `spike nexus: invalid configuration: refusing the data directory fallback: ${base} has mode 0750; it must grant nothing to group or other (chmod 700)`,
    );
    expect(stderr).not.toContain('    at ');
  }, 60_000);
});
