/**
 * `spike secret watch [prefix]`: prints the change events of the secrets under a path prefix as
 * they happen (issue 14; the SDK's watch, src/sdk/watch.ts), one line per event: human lines, or
 * JSON lines with `--json` / `-f json` (`{"seq","path","version","kind","time"}`, never a value).
 * It resumes by itself across reconnections (Last-Event-ID); `--after N` starts after sequence
 * number N. Ctrl-C (SIGINT) or SIGTERM ends it with exit 0. A `reset` line means Nexus no longer
 * holds the events since the last one printed: whatever depends on them must be re-read.
 */
import { defineCommand } from 'citty';
import type { WatchEvent } from '../src/sdk/client.ts';
import { commandMeta } from './help.ts';
import { EXIT, fail, formatArg, parseFormat, writeOut } from './output.ts';
import { failApi, withClient } from './session.ts';

function human(event: WatchEvent): string {
  if (event.kind === 'reset') {
    return `${event.time.toISOString()} reset   ${event.path || '(all)'}: events were lost, re-read`;
  }
  const version = event.version > 0 ? ` v${event.version}` : '';
  return `${event.time.toISOString()} ${event.kind.padEnd(8)}${event.path}${version} (seq ${event.seq})`;
}

function jsonLine(event: WatchEvent): string {
  return JSON.stringify({
    seq: event.seq,
    path: event.path,
    version: event.version,
    kind: event.kind,
    time: event.time.toISOString(),
  });
}

export const watchCommand = defineCommand({
  meta: commandMeta(['secret', 'watch'], 'Print change events of secrets under a prefix', [
    'spike secret watch tenants/acme/',
    'spike secret watch tenants/acme/ --json | jq .path',
    'spike secret watch --after 42   # everything, resuming after event 42',
  ]),
  args: {
    prefix: {
      type: 'positional',
      description: 'Path prefix to watch (default: every path)',
      required: false,
    },
    json: { type: 'boolean', description: 'One JSON object per line (as -f json)' },
    after: {
      type: 'string',
      description: 'Start after this event sequence number',
      valueHint: 'N',
    },
    format: formatArg,
  },
  async run({ args }) {
    const format = args.json === true ? 'json' : parseFormat(args.format);
    if (format === 'yaml') fail('Error: secret watch prints human or json lines.', EXIT.usage);
    const prefix = args.prefix ?? '';
    if (prefix.startsWith('/')) fail('Error: Paths never start with a slash.', EXIT.usage);
    let after: number | undefined;
    if (args.after !== undefined) {
      after = Number(args.after);
      if (!/^\d+$/.test(args.after) || !Number.isSafeInteger(after)) {
        fail('Error: --after takes a sequence number (an integer >= 0).', EXIT.usage);
      }
    }
    const stop = new AbortController();
    const end = () => stop.abort();
    process.on('SIGINT', end);
    process.on('SIGTERM', end);
    try {
      await withClient('superuser', async (spike) => {
        try {
          const options =
            after === undefined ? { signal: stop.signal } : { signal: stop.signal, after };
          for await (const event of spike.watch(prefix, options)) {
            writeOut(format === 'json' ? jsonLine(event) : human(event));
          }
        } catch (error) {
          failApi(error, 'secret');
        }
      });
    } finally {
      process.off('SIGINT', end);
      process.off('SIGTERM', end);
    }
  },
});
