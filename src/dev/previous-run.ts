/**
 * The processes of earlier `bun run dev` runs (src/dev/up.ts): `run.json`, the pid checks that
 * guard against pid reuse, and stopping them (SIGTERM, then SIGKILL after a grace period).
 */
import { readFileSync, rmSync } from 'node:fs';
import { sleep } from './output.ts';

const STOP_GRACE_MS = 5000;

/** What run.json records about one process. */
export interface ProcessRecord {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

export interface RunRecord {
  readonly upPid: number | null;
  readonly nexus: ProcessRecord | null;
  readonly keepers: readonly ProcessRecord[];
  /** Nexus replicas after the first (`--replicas`); absent in records of older runs. */
  readonly replicas?: readonly ProcessRecord[];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** The command line of `pid`, or `undefined` when it cannot be read (not Linux, gone). */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and still the program recorded (guards against pid reuse). */
export function isOurs(pid: number, program: 'nexus' | 'keeper' | 'up'): boolean {
  if (!isAlive(pid)) return false;
  const cmd = commandLine(pid);
  if (cmd === undefined) return false;
  if (program === 'up') return cmd.includes('dev/up.ts');
  return cmd.includes(`src/${program}/main.ts`) || cmd.includes(`dist/${program}`);
}

/** Refuses to start while the `bun run dev` of `record` is still running. */
export function refuseConcurrentRun(record: RunRecord | undefined): void {
  const pid = record?.upPid;
  if (pid != null && pid !== process.pid && isOurs(pid, 'up')) {
    throw new Error(`another \`bun run dev\` is running (pid ${pid}); stop it with Ctrl-C first`);
  }
}

export function readRunRecord(file: string): RunRecord | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    if (!Array.isArray(parsed.keepers)) return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
export async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + STOP_GRACE_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  while (isAlive(pid)) await sleep(20);
}

/** Stops the Nexus replicas and Keepers recorded in `runFile` (if still ours); returns how many. */
export async function stopRecorded(runFile: string): Promise<number> {
  const record = readRunRecord(runFile);
  if (record === undefined) return 0;
  refuseConcurrentRun(record);
  let stopped = 0;
  for (const nexus of [record.nexus, ...(record.replicas ?? [])]) {
    if (nexus !== null && isOurs(nexus.pid, 'nexus')) {
      await stopPid(nexus.pid);
      stopped++;
    }
  }
  for (const keeper of record.keepers) {
    if (isOurs(keeper.pid, 'keeper')) {
      await stopPid(keeper.pid);
      stopped++;
    }
  }
  rmSync(runFile, { force: true });
  return stopped;
}
