/**
 * The child processes of one `bun run dev` run (src/dev/up.ts): spawning them with their logs,
 * `run.json`, Ctrl-C handling (a second one within a second is the same keypress, a later one
 * kills everything) and stopping in order: Nexus, then the Keepers, then the issuer.
 */
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { PROJECT_ROOT } from '../build.ts';
import type { DevIssuer } from './issuer.ts';
import { note, say } from './output.ts';
import { type RunRecord, stopPid } from './previous-run.ts';
import { shown, tail } from './state-files.ts';

/** Thrown when Ctrl-C interrupts start-up: stop quietly, as the signal handler already does. */
export const INTERRUPTED = new Error('interrupted');

export interface Child {
  readonly name: string;
  readonly port: number;
  readonly log: string;
  /** Our own child, or `undefined` for a Keeper adopted from a previous run. */
  readonly proc?: Subprocess;
  readonly pid: number;
}

/** Nexus replicas are `nexus`, `nexus-2`, … (src/dev/replicas.ts). */
const isNexus = (c: Child) => c.name === 'nexus' || /^nexus-[0-9]+$/.test(c.name);

export class Supervisor {
  readonly children: Child[] = [];
  readonly svidFollowers: { close(): Promise<void> }[] = [];
  stopping = false;
  #unexpected: string | undefined;
  #wake: () => void = () => {};
  #firstSignalAt = 0;

  private readonly files: { runFile: string; logDir: string; certsDir: string };
  private readonly issuer: DevIssuer;

  constructor(files: { runFile: string; logDir: string; certsDir: string }, issuer: DevIssuer) {
    this.files = files;
    this.issuer = issuer;
  }

  /** Installs the SIGINT, SIGTERM and SIGHUP handlers. */
  handleSignals(): void {
    const onSignal = (signal: NodeJS.Signals) => this.#onSignal(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
  }

  #onSignal(signal: NodeJS.Signals): void {
    // `bun run` forwards the terminal's SIGINT that this process also receives directly: a
    // repeat within a second is the same Ctrl-C.
    if (this.stopping && Date.now() - this.#firstSignalAt < 1000) return;
    if (this.stopping) {
      note(`${signal} again: killing everything now`);
      for (const c of this.children) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      process.exit(130);
    }
    this.stopping = true;
    this.#firstSignalAt = Date.now();
    say();
    note(`${signal}: stopping (Ctrl-C again to kill at once)`);
    this.#wake();
  }

  writeRunRecord(upPid: number | null, keepersKept: boolean): void {
    const nexus = this.children.find((c) => c.name === 'nexus');
    const record: RunRecord = {
      upPid,
      nexus:
        upPid !== null && nexus !== undefined
          ? { name: 'nexus', pid: nexus.pid, port: nexus.port }
          : null,
      keepers: this.children
        .filter((c) => c.name.startsWith('keeper-') && (upPid !== null || keepersKept))
        .map((c) => ({ name: c.name, pid: c.pid, port: c.port })),
      replicas:
        upPid === null
          ? []
          : this.children
              .filter((c) => isNexus(c) && c.name !== 'nexus')
              .map((c) => ({ name: c.name, pid: c.pid, port: c.port })),
    };
    writeFileSync(this.files.runFile, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  }

  /** Spawns `cmd` with its output in `logs/<name>.log` and watches it for an early exit. */
  spawn(name: string, cmd: string[], port: number, env: Record<string, string | undefined>) {
    const log = join(this.files.logDir, `${name}.log`);
    const fd = openSync(log, 'a', 0o600);
    let proc: Subprocess;
    try {
      // Own process group: a Ctrl-C in the terminal reaches only this process, which then
      // stops the children in order (Nexus first) or leaves the Keepers up (--keep-keepers).
      proc = Bun.spawn(cmd, {
        cwd: PROJECT_ROOT,
        env,
        stdin: 'ignore',
        stdout: fd,
        stderr: fd,
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    const child: Child = { name, port, log, proc, pid: proc.pid };
    this.children.push(child);
    this.writeRunRecord(process.pid, false);
    void proc.exited.then((code) => {
      if (this.stopping) return;
      this.#unexpected = `${name} exited unexpectedly (exit ${code}); last lines of ${shown(log)}:\n${tail(log)}`;
      this.#wake();
    });
    return child;
  }

  /** Throws when a child exited or a signal arrived. */
  failIfExited(): void {
    if (this.#unexpected !== undefined) throw new Error(this.#unexpected);
    if (this.stopping) throw INTERRUPTED;
  }

  /** Resolves on a signal; throws when a child exits first. */
  async serve(): Promise<void> {
    await new Promise<void>((resolveWait) => {
      this.#wake = resolveWait;
      if (this.stopping || this.#unexpected !== undefined) resolveWait();
    });
    if (this.#unexpected !== undefined) throw new Error(this.#unexpected);
  }

  /** Stops every Nexus replica, then the Keepers (unless kept), the certificate files and the issuer. */
  async stopAll(keepKeepers: boolean): Promise<void> {
    this.stopping = true;
    const { children } = this;
    await Promise.all(children.filter(isNexus).map((c) => stopPid(c.pid)));
    if (!keepKeepers) {
      await Promise.all(children.filter((c) => !isNexus(c)).map((c) => stopPid(c.pid)));
    }
    await Promise.all(this.svidFollowers.map((f) => f.close().catch(() => undefined)));
    rmSync(this.files.certsDir, { recursive: true, force: true });
    await this.issuer.stop();
    if (keepKeepers) this.writeRunRecord(null, true);
    else rmSync(this.files.runFile, { force: true });
  }
}
