/**
 * Terminal input for `spike`: a yes/no confirmation (`policy delete`, `secret destroy|purge`,
 * `secret delete` of several versions; only on a terminal, else `--yes` is required), a
 * hidden single-line prompt for recovery shards (`operator restore` on a TTY), and bounded reads
 * of stdin (shards piped in, `cipher` stream mode). Prompts go to stdout like the rest of the
 * normal output (docs/spike-api.md §11); nothing typed at the hidden prompt is echoed.
 */
import { concatBytes } from '../src/core/bytes.ts';
import { EXIT, fail, writeOut } from './output.ts';

/** Writes `text` to stdout and waits until it is flushed. */
export function writeRaw(bytes: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(bytes, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Reads stdin up to the first newline (or its end) and returns the line without it. At most
 * `max` bytes are read; a longer line is cut there.
 */
async function readLine(max = 4096): Promise<string> {
  const reader = Bun.stdin.stream().getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { value, done } = await reader.read();
      if (done || value === undefined) break;
      const newline = value.indexOf(0x0a);
      chunks.push(newline === -1 ? value : value.subarray(0, newline));
      size += value.length;
      if (newline !== -1) break;
    }
  } finally {
    reader.releaseLock();
  }
  return new TextDecoder().decode(concatBytes(...chunks)).slice(0, max);
}

/**
 * Asks `question` (printed as is, e.g. `… (y/N): `) and returns true only for `y` or `Y`
 * (docs/spike-api.md §11 `policy delete`). End of input counts as no.
 */
async function confirm(question: string): Promise<boolean> {
  await writeRaw(question);
  const answer = (await readLine()).trim();
  return answer === 'y' || answer === 'Y';
}

/**
 * Ends the command (exit 2) unless `--yes` was given or there is a terminal to ask on: an
 * irreversible command never runs on piped input, and never pretends to have been canceled.
 * Call it before connecting, so the refusal costs no round trip.
 */
export function requireConfirmation(yes: boolean | undefined, what: string): void {
  if (yes === true || process.stdin.isTTY) return;
  fail(`Error: ${what} needs confirmation: run it on a terminal, or add --yes.`, EXIT.usage);
}

/**
 * True with `--yes` (`yes`) or a `question` confirmed on the terminal; otherwise prints
 * `Operation canceled.` (exit 0, docs/spike-api.md §11) and returns false. Without a terminal (and
 * without `--yes`) it refuses instead, as {@link requireConfirmation}.
 */
export async function confirmed(
  yes: boolean | undefined,
  what: string,
  question: string,
): Promise<boolean> {
  requireConfirmation(yes, what);
  if (yes === true || (await confirm(question))) return true;
  writeOut('Operation canceled.');
  return false;
}

/**
 * Reads all of stdin, failing with `tooLarge` (exit 1) beyond `max` bytes. Used for piped
 * recovery shards (4096 bytes, §11) and cipher stream input.
 */
export async function readStdin(max: number, tooLarge: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of Bun.stdin.stream()) {
    size += chunk.length;
    if (size > max) fail(tooLarge);
    chunks.push(chunk);
  }
  return concatBytes(...chunks);
}

/**
 * Reads one line from the terminal without echoing it (raw mode): Enter ends it, Backspace
 * edits, Ctrl-C or Ctrl-D on an empty line aborts (exit 1). At most `max` characters. Raw mode
 * and the listener are in place before the prompt appears, so nothing typed is echoed or lost.
 */
export async function readHidden(prompt: string, max = 4096): Promise<string> {
  const stdin = process.stdin;
  let line = '';
  let onData: ((data: Uint8Array | string) => void) | undefined;
  const typed = new Promise<boolean>((resolve) => {
    onData = (data) => {
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') return resolve(true);
        if (ch === '\u0003' || (ch === '\u0004' && line === '')) return resolve(false);
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (line.length < max && ch >= ' ') line += ch;
      }
    };
    stdin.on('data', onData);
  });
  stdin.setRawMode(true);
  stdin.resume();
  let complete: boolean;
  try {
    await writeRaw(prompt);
    complete = await typed;
  } finally {
    if (onData !== undefined) stdin.off('data', onData);
    stdin.setRawMode(false);
    stdin.pause();
  }
  await writeRaw('\n');
  if (!complete) fail('Error: Input aborted.');
  return line;
}
