/**
 * The test entry point behind `bun run test` (the README's test command) and `bun run test:slow`.
 *
 *   bun tests/run.ts          default suite: bun test (all of tests/ except tests/slow,
 *                             tests/interop and tests/spire) + the portable suites under Deno
 *   bun tests/run.ts --slow   slow suites: tests/slow (real processes killed at bad moments,
 *                             SVID rotation across several TTLs)
 *
 * Each runner's output streams through; the last line is one summary, `<label>: N passed, N failed`,
 * and the exit code is non-zero when anything failed or no test ran.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const slow = process.argv.includes('--slow');

interface Counts {
  passed: number;
  failed: number;
  exit: number;
}

async function run(cmd: string[], parse: (out: string) => Omit<Counts, 'exit'>): Promise<Counts> {
  console.log(`\n$ ${cmd.join(' ')}`);
  const proc = Bun.spawn(cmd, { cwd: root, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  let captured = '';
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream) => {
    for await (const chunk of stream) {
      captured += decoder.decode(chunk, { stream: true });
      sink.write(chunk);
    }
  };
  await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)]);
  const exit = await proc.exited;
  return { ...parse(captured), exit };
}

function parseBun(out: string) {
  const passed = Number(/^\s*(\d+) pass\s*$/m.exec(out)?.[1] ?? 0);
  const failed = Number(/^\s*(\d+) fail\s*$/m.exec(out)?.[1] ?? 0);
  return { passed, failed };
}

function parseDeno(out: string) {
  // "ok | 12 passed | 0 failed (3s)" or "FAILED | 11 passed | 1 failed (3s)"
  const m = /(\d+) passed[^|]*\| (\d+) failed/.exec(out);
  return { passed: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? 0) };
}

function denoBinary(): string {
  const local = join(root, 'node_modules', '.bin', 'deno');
  return existsSync(local) ? local : 'deno';
}

const results: Counts[] = [];
if (slow) {
  results.push(await run(['bun', 'test', '--timeout=300000', './tests/slow/'], parseBun));
} else {
  results.push(
    await run(
      [
        'bun',
        'test',
        '--path-ignore-patterns=tests/slow/**',
        '--path-ignore-patterns=tests/interop/**',
        '--path-ignore-patterns=tests/spire/**',
      ],
      parseBun,
    ),
  );
  results.push(
    await run(
      [denoBinary(), 'test', '--allow-all', '--no-check', 'tests/portable/deno.ts'],
      parseDeno,
    ),
  );
}

const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const broken = results.some((r) => r.exit !== 0);
console.log(`\n${slow ? 'slow' : 'tests'}: ${passed} passed, ${failed} failed`);
process.exit(broken || failed > 0 || passed === 0 ? 1 : 0);
