/**
 * `spike operator export|import|snapshot` [Ours]: backup of the whole store (docs/backup.md),
 * superuser role.
 *
 * `export --out FILE` asks Nexus for every path, version and policy as one age file, encrypted
 * *by Nexus* to `--recipient age1…` or under a passphrase (`--passphrase`: from
 * `SPIKE_EXPORT_PASSPHRASE`, else a hidden prompt asked twice; never a flag value). The
 * plaintext never reaches this process or any disk.
 *
 * `import FILE` decrypts the file *here*, with `--identity FILE` (an age identity file) or the
 * passphrase, and sends the plaintext document to Nexus over mTLS: the age identity never leaves
 * the operator's machine (docs/backup.md §3 says why this side). The document lives in memory
 * only and is zeroed after the call. `--force` replaces paths and policies of the same name in
 * a store that is not empty.
 *
 * `snapshot --out FILE` writes an online image of the SQLite database (ciphertexts and the
 * key-check value only). Output files are created new (never overwritten) with mode 0600, under a
 * temporary name first, so a failed run leaves no partial file under FILE.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { armor, Decrypter } from 'age-encryption';
import { defineCommand } from 'citty';
import { zero } from '../../src/core/bytes.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, writeOut } from '../output.ts';
import { readHidden } from '../prompt.ts';
import { api, withClient } from '../session.ts';

/** Where the passphrase comes from when no terminal is at hand (never a flag value). */
const PASSPHRASE_ENV = 'SPIKE_EXPORT_PASSPHRASE';
/** Local cap on an export file or an identity file read from disk. */
const MAX_FILE_BYTES = 2 ** 31 - 1;
const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';

const outArg = {
  type: 'string',
  alias: 'o',
  description: 'File to create (must not exist; written with mode 0600)',
  valueHint: 'file',
} as const;

/** `--out`, checked before connecting: required, and not an existing file. */
function outputPath(out: string | undefined): string {
  if (out === undefined || out === '') fail('Error: --out FILE is required.', EXIT.usage);
  if (existsSync(out)) fail(`Error: ${out} exists; choose a new file name.`, EXIT.usage);
  return out;
}

/** Creates `file` (0600) with `bytes`, under a temporary name first. */
function writeNewFile(file: string, bytes: Uint8Array): void {
  const partial = `${file}.partial`;
  try {
    writeFileSync(partial, bytes, { mode: 0o600, flag: 'wx' });
    if (existsSync(file)) throw new Error('exists');
    renameSync(partial, file);
  } catch {
    rmSync(partial, { force: true });
    fail(`Error: Cannot write ${file}.`);
  }
}

/** The passphrase: `SPIKE_EXPORT_PASSPHRASE`, else a hidden prompt (twice when `confirm`). */
async function readPassphrase(confirm: boolean): Promise<string> {
  const fromEnv = process.env[PASSPHRASE_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!process.stdin.isTTY) {
    fail(`Error: The passphrase comes from ${PASSPHRASE_ENV} or a terminal prompt.`, EXIT.usage);
  }
  const first = await readHidden('Passphrase: ', 1024);
  if (confirm && (await readHidden('Passphrase (again): ', 1024)) !== first) {
    fail('Error: The passphrases differ.');
  }
  return first;
}

const exportCommand = defineCommand({
  meta: commandMeta(
    ['operator', 'export'],
    'Export every secret version and policy as one age-encrypted file (superuser)',
    [
      'spike operator export --out spike.age --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',
      'SPIKE_EXPORT_PASSPHRASE=… spike operator export --out spike.age --passphrase',
    ],
  ),
  args: {
    out: outArg,
    recipient: {
      type: 'string',
      alias: 'r',
      description: 'Encrypt to this age public key (age1…)',
      valueHint: 'age1…',
    },
    passphrase: {
      type: 'boolean',
      description: `Encrypt under a passphrase (from ${PASSPHRASE_ENV} or a prompt)`,
    },
  },
  async run({ args }) {
    const out = outputPath(args.out);
    const recipient = args.recipient ?? '';
    if ((recipient !== '') === (args.passphrase === true)) {
      fail('Error: Give exactly one of --recipient age1… and --passphrase.', EXIT.usage);
    }
    const to = recipient !== '' ? { recipient } : { passphrase: await readPassphrase(true) };
    const file = await withClient('superuser', (spike) =>
      api('operator', () => spike.exportStore(to)),
    );
    writeNewFile(out, file);
    writeOut(`Export written to ${out} (${file.length} bytes, age-encrypted).`);
  },
});

/** The age identities of an identity file (`AGE-SECRET-KEY-1…` lines; `#` comments). */
function readIdentities(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    fail(`Error: Cannot read identity file ${file}.`);
  }
  const keys = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (keys.length === 0 || !keys.every((k) => k.startsWith('AGE-SECRET-KEY-'))) {
    fail(`Error: ${file} is not an age identity file.`);
  }
  return keys;
}

/** The export file's bytes (binary or ASCII-armored). */
function readExportFile(file: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch {
    fail(`Error: Cannot read ${file}.`);
  }
  if (bytes.length > MAX_FILE_BYTES) fail(`Error: ${file} is too large.`);
  const head = new TextDecoder().decode(bytes.subarray(0, ARMOR_BEGIN.length));
  if (head !== ARMOR_BEGIN) return bytes;
  try {
    return armor.decode(new TextDecoder().decode(bytes));
  } catch {
    fail(`Error: ${file} is not a valid armored age file.`);
  }
}

const importCommand = defineCommand({
  meta: commandMeta(
    ['operator', 'import'],
    'Load an export file into SPIKE Nexus, versions and times as exported (superuser)',
    [
      'spike operator import spike.age --identity ~/.config/spike/backup-key.txt',
      'SPIKE_EXPORT_PASSPHRASE=… spike operator import spike.age',
      'spike operator import spike.age --identity key.txt --force   # into a store that has data',
    ],
  ),
  args: {
    file: { type: 'positional', description: 'The export file', required: true },
    identity: {
      type: 'string',
      alias: 'i',
      description: 'age identity file to decrypt with (default: the passphrase)',
      valueHint: 'file',
    },
    force: {
      type: 'boolean',
      description:
        'Import into a store that is not empty: replace paths and policies of the same name',
    },
  },
  async run({ args }) {
    if (!existsSync(args.file)) fail(`Error: ${args.file} does not exist.`, EXIT.usage);
    const decrypter = new Decrypter();
    if (args.identity !== undefined && args.identity !== '') {
      for (const key of readIdentities(args.identity)) decrypter.addIdentity(key);
    } else {
      decrypter.addPassphrase(await readPassphrase(false));
    }
    const sealed = readExportFile(args.file);
    let document: Uint8Array;
    try {
      document = await decrypter.decrypt(sealed);
    } catch {
      fail(`Error: Cannot decrypt ${args.file}: wrong identity or passphrase, or not an age file.`);
    }
    try {
      const summary = await withClient('superuser', (spike) =>
        api('operator', () => spike.importStore(document, { replace: args.force === true })),
      );
      writeOut(
        `Imported ${summary.secrets} secrets (${summary.versions} versions) and ${summary.policies} policies.`,
      );
    } finally {
      zero(document);
    }
  },
});

const snapshotCommand = defineCommand({
  meta: commandMeta(
    ['operator', 'snapshot'],
    'Write a consistent image of the SQLite database while Nexus serves (superuser)',
    [
      'spike operator snapshot --out spike-$(date +%F).db',
      '# PostgreSQL: use pg_dump instead (docs/backup.md §5)',
    ],
  ),
  args: { out: outArg },
  async run({ args }) {
    const out = outputPath(args.out);
    const image = await withClient('superuser', (spike) => api('operator', () => spike.snapshot()));
    writeNewFile(out, image);
    writeOut(
      [
        `Snapshot written to ${out} (${image.length} bytes).`,
        'It holds ciphertexts and the key-check value only: a Nexus started on it needs the',
        'Keepers or the recovery shards of the same root key (docs/backup.md §6).',
      ].join('\n'),
    );
  },
});

/** The backup subcommands of `spike operator`. */
export const BACKUP_COMMANDS = {
  export: exportCommand,
  import: importCommand,
  snapshot: snapshotCommand,
};
