/**
 * The audit sink (docs/spike-api.md §12; docs/architecture.md "The audit trail: batched, never
 * dropped"): stderr, or lines appended to `SPIKE_NEXUS_AUDIT_FILE` (mode 0600).
 *
 * A line is not written when it is handed over: it joins a buffer, and one microtask later the
 * whole buffer goes to the file descriptor in one `write(2)` (`writeSync`, looping over short
 * writes). Every request whose line is produced before that microtask runs shares the system call.
 *
 * Never dropped, and before the answer: the pipeline hands the line over synchronously, before
 * its `handle` returns the response; the transport sends the response only after awaiting that
 * promise, which settles in a later microtask than the flush queued with the line (the microtask
 * queue is first in, first out). So by the time an answer's first byte is on the socket, its audit
 * line is in the kernel, where a SIGKILL of Nexus cannot take it back. `writeSync` blocks while the
 * file or pipe is full (back-pressure rather than an in-process buffer that a kill would lose).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { SpikeError } from '../core/errors.ts';
import { describeError } from '../runtime/describe-error.ts';

export interface AuditSink {
  /** Queues one line (without its newline); it reaches the descriptor before the next task. */
  write(line: string): void;
  /** Writes what is queued now. */
  flush(): void;
  /** Flushes, then closes the file (stderr stays open). */
  close(): void;
}

const encoder = new TextEncoder();

/** Writes all of `text` to `fd`, looping over short writes. */
function writeAll(fd: number, text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

/** A sink on an open descriptor. */
function createAuditSink(fd: number, closeFd: () => void = () => {}): AuditSink {
  let pending: string[] = [];
  let queued = false;
  const flush = () => {
    queued = false;
    if (pending.length === 0) return;
    const lines = pending;
    pending = [];
    try {
      writeAll(fd, `${lines.join('\n')}\n`);
    } catch {
      // A broken sink (a closed stderr) must not crash Nexus; as before batching, the line is lost.
    }
  };
  return {
    write(line) {
      pending.push(line);
      if (!queued) {
        queued = true;
        queueMicrotask(flush);
      }
    },
    flush,
    close() {
      flush();
      closeFd();
    },
  };
}

/** The sink of `SPIKE_NEXUS_AUDIT_FILE`, or of stderr when it is unset. */
export function openAuditSink(file: string | undefined): AuditSink {
  if (file === undefined) return createAuditSink(2);
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch (error) {
    throw new SpikeError(
      'config_invalid',
      `cannot open SPIKE_NEXUS_AUDIT_FILE (${describeError(error)})`,
    );
  }
  return createAuditSink(fd, () => closeSync(fd));
}
