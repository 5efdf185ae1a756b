/**
 * `spike operator recover|restore`: break-glass custody of the root key (docs/spike-api.md §9, §11;
 * docs/architecture.md "Break-glass").
 *
 * `recover` (recover role, while Nexus is healthy) fetches the current generation's shards and
 * writes one recovery file per shard (cli/recovery.ts: `spike.recovery.<index>.txt`, mode 0600,
 * in `SPIKE_PILOT_RECOVERY_DIR/recover` or its fallbacks), after deleting older ones.
 *
 * `restore` (restore role, after a total loss) sends one shard per run: typed at a hidden
 * prompt on a terminal, or piped on stdin (at most 4096 bytes, trimmed). Only our recovery-line
 * format is accepted; upstream `spike:<id>:<hex>` lines are refused locally. `restore --reset`
 * discards the shards Nexus collected so far (after feeding one of another generation).
 *
 * Shards never appear in messages or logs; the only copy this command makes is the recovery
 * file the operator asked for.
 */
import { defineCommand } from 'citty';
import { isSpikeError } from '../../src/core/errors.ts';
import { parseRecoveryLine, type ShardEnvelope } from '../../src/core/shamir/shards.ts';
import { commandMeta } from '../help.ts';
import { fail, writeOut } from '../output.ts';
import { readHidden, readStdin } from '../prompt.ts';
import { resolveRecoveryDir, writeRecoveryFiles } from '../recovery.ts';
import { api, withClient } from '../session.ts';
import { BACKUP_COMMANDS } from './backup.ts';

const MAX_SHARD_INPUT = 4096;

const recover = defineCommand({
  meta: commandMeta(
    ['operator', 'recover'],
    'Save recovery shards to files (do this while SPIKE Nexus is healthy; recover role)',
    [
      'SPIKE_PILOT_RECOVERY_DIR=/secure/media spike operator recover',
      '# writes /secure/media/recover/spike.recovery.<index>.txt, one shard each',
    ],
  ),
  async run() {
    const shards = await withClient('recover', (spike) => api('operator', () => spike.recover()));
    if (shards.length < 2) fail('Error: No shards found.');

    let dir: string;
    try {
      dir = resolveRecoveryDir(process.env).dir;
    } catch {
      fail('Error: Invalid recovery directory path.');
    }
    try {
      writeRecoveryFiles(dir, shards);
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'unknown error';
      fail(`Error: Failed to save the recovery shards in ${dir} (${code}).`);
    }
    writeOut(
      [
        '',
        '  SPIKE Recovery shards saved to the recovery directory:',
        `  ${dir}`,
        '',
        '  Please make sure that:',
        '    1. You encrypt these shards and keep them safe.',
        '    2. Securely erase the shards from the',
        '       recovery directory after you encrypt them',
        '       and save them to a safe location.',
        '',
        '  If you lose these shards, you will not be able to recover',
        '  SPIKE Nexus in the unlikely event of a total system crash.',
        '',
      ].join('\n'),
    );
  },
});

/** One shard from the terminal (hidden) or stdin; anything but a recovery line is refused. */
async function readShard(): Promise<ShardEnvelope> {
  let line: string;
  if (process.stdin.isTTY) {
    writeOut('(your input will be hidden as you paste/type it)');
    line = await readHidden('Enter recovery shard: ', MAX_SHARD_INPUT);
  } else {
    const bytes = await readStdin(
      MAX_SHARD_INPUT,
      `Error: Recovery shard input is larger than ${MAX_SHARD_INPUT} bytes.`,
    );
    line = new TextDecoder().decode(bytes);
  }
  try {
    return parseRecoveryLine(line.trim());
  } catch (error) {
    if (isSpikeError(error)) fail('Error: Invalid shard format.');
    throw error;
  }
}

const restore = defineCommand({
  meta: commandMeta(
    ['operator', 'restore'],
    'Feed one recovery shard to SPIKE Nexus (after a total loss; restore role)',
    [
      'spike operator restore                                  # hidden prompt',
      'spike operator restore < /secure/media/recover/spike.recovery.1.txt',
      '# run once per shard until SPIKE Nexus reports it is restored',
      'spike operator restore --reset     # discard the shards collected so far',
    ],
  ),
  args: {
    reset: {
      type: 'boolean',
      description:
        'Discard the shards SPIKE Nexus collected so far (e.g. one of another generation)',
    },
  },
  async run({ args }) {
    if (args.reset === true) {
      const status = await withClient('restore', (spike) =>
        api('operator', () => spike.resetRestore()),
      );
      writeOut(
        ['', ' Collected shards discarded.', ` Shards remaining: ${status.remaining}`, ''].join(
          '\n',
        ),
      );
      return;
    }
    const status = await withClient('restore', async (spike) => {
      const envelope = await readShard();
      return api('operator', () => spike.restore(envelope));
    });
    if (status.restored) {
      writeOut(['', '  SPIKE is now restored and ready to use.', ''].join('\n'));
      return;
    }
    writeOut(
      [
        '',
        ` Shards collected: ${status.collected}`,
        ` Shards remaining: ${status.remaining}`,
        ...(status.generation === '' ? [] : [` Generation: ${status.generation}`]),
        ' Please run `spike operator restore` again to provide the remaining shards.',
        '',
      ].join('\n'),
    );
  },
});

const operatorCommand = defineCommand({
  meta: commandMeta(
    ['operator'],
    'Break-glass operations on the root key (recover/restore roles); backup (superuser)',
    [
      'spike operator recover',
      'spike operator restore < spike.recovery.1.txt',
      'spike operator export --out spike.age --recipient age1…',
    ],
  ),
  subCommands: { recover, restore, ...BACKUP_COMMANDS },
});

export default operatorCommand;
