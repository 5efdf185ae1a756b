/**
 * `spike cipher encrypt|decrypt`: encryption as a service through SPIKE Nexus (docs/spike-api.md §8,
 * §11). Superuser role.
 *
 * Stream mode (default): bytes from `-i/--file` or stdin, result to `-o/--out` or stdout, as
 * `0x01 ‖ nonce ‖ ciphertext ‖ tag` (encrypt) or plaintext (decrypt).
 *
 * JSON mode: `encrypt --plaintext <base64>` prints `{"version":1,"nonce":"…","ciphertext":"…"}`
 * (all three, unlike upstream which keeps only the ciphertext, spiffe/spike#256); `decrypt` with
 * any of `--version`, `--nonce`, `--ciphertext` takes those three back, so an encrypt output
 * always decrypts. Base64 is standard with padding.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import { fromBase64, toBase64 } from '../../src/core/bytes.ts';
import { isSpikeApiError } from '../../src/sdk/errors.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail } from '../output.ts';
import { readStdin, writeRaw } from '../prompt.ts';
import { api, failApi, withClient } from '../session.ts';

/** Local cap on stream input: Nexus refuses more than 64 KiB of plaintext anyway (§8). */
const MAX_INPUT_BYTES = 16 * 1024 * 1024;

const ioArgs = {
  file: {
    type: 'string',
    // `-i`, not `-f`: `-f` means `--format` in every spike command.
    alias: 'i',
    description: 'Input file (default: stdin)',
    valueHint: 'file',
  },
  out: {
    type: 'string',
    alias: 'o',
    description: 'Output file (default: stdout)',
    valueHint: 'file',
  },
} as const;

function readInput(file: string | undefined): Promise<Uint8Array> | Uint8Array {
  if (file === undefined || file === '') {
    return readStdin(MAX_INPUT_BYTES, 'Error: Input is too large.');
  }
  if (!existsSync(file)) fail(`Error: Input file does not exist: ${file}`);
  try {
    return new Uint8Array(readFileSync(file));
  } catch {
    fail(`Error: Cannot read input file: ${file}`);
  }
}

async function writeOutput(file: string | undefined, data: Uint8Array | string): Promise<void> {
  if (file === undefined || file === '') {
    await writeRaw(data);
    return;
  }
  try {
    writeFileSync(file, data, { mode: 0o600 });
  } catch {
    fail(`Error: Cannot write output file: ${file}`);
  }
}

function decodeBase64(value: string, flag: string): Uint8Array {
  try {
    return fromBase64(value.trim());
  } catch {
    fail(`Error: Invalid --${flag} base64.`, EXIT.usage);
  }
}

/** The JSON-mode cipher options; `--context` is UTF-8 text, refused in stream mode (exit 2). */
function cipherOptions(
  args: { algorithm?: string; context?: string },
  jsonMode: boolean,
): { algorithm?: string; context?: Uint8Array } {
  if (args.context !== undefined && !jsonMode) {
    fail(
      'Error: --context needs JSON mode (--plaintext, or --version/--nonce/--ciphertext).',
      EXIT.usage,
    );
  }
  return {
    ...(args.algorithm ? { algorithm: args.algorithm } : {}),
    ...(args.context ? { context: new TextEncoder().encode(args.context) } : {}),
  };
}

const encrypt = defineCommand({
  meta: commandMeta(
    ['cipher', 'encrypt'],
    'Encrypt a file, stdin or a base64 value via SPIKE Nexus',
    [
      'spike cipher encrypt -i notes.txt -o notes.enc',
      'echo -n hello | spike cipher encrypt > hello.enc',
      'spike cipher encrypt --plaintext aGVsbG8=     # JSON mode: prints version, nonce, ciphertext',
    ],
  ),
  args: {
    ...ioArgs,
    plaintext: {
      type: 'string',
      description: 'Plaintext as base64: JSON mode',
      valueHint: 'base64',
    },
    algorithm: { type: 'string', description: 'Algorithm hint (JSON mode; ignored by Nexus)' },
    context: {
      type: 'string',
      description: 'Context (JSON mode): only the same context decrypts (docs/spike-api.md §8)',
      valueHint: 'text',
    },
  },
  async run({ args }) {
    const options = cipherOptions(args, args.plaintext !== undefined);
    if (args.plaintext !== undefined) {
      const plaintext = decodeBase64(args.plaintext, 'plaintext');
      const result = await withClient('superuser', (spike) =>
        api('cipher', () => spike.encryptJson(plaintext, options)),
      );
      const json = JSON.stringify({
        version: result.version,
        nonce: toBase64(result.nonce),
        ciphertext: toBase64(result.ciphertext),
      });
      await writeOutput(args.out, `${json}\n`);
      return;
    }
    const output = await withClient('superuser', async (spike) => {
      const input = await readInput(args.file);
      return api('cipher', () => spike.encrypt(input));
    });
    await writeOutput(args.out, output);
  },
});

const decrypt = defineCommand({
  meta: commandMeta(
    ['cipher', 'decrypt'],
    'Decrypt a file, stdin or JSON-mode values via SPIKE Nexus',
    [
      'spike cipher decrypt -i notes.enc -o notes.txt',
      'spike cipher decrypt < hello.enc',
      'spike cipher decrypt --version 1 --nonce <base64> --ciphertext <base64>   # JSON mode',
    ],
  ),
  args: {
    ...ioArgs,
    version: { type: 'string', description: 'Version byte 0-255 (JSON mode)', valueHint: 'N' },
    nonce: { type: 'string', description: 'Nonce as base64 (JSON mode)', valueHint: 'base64' },
    ciphertext: {
      type: 'string',
      description: 'Ciphertext as base64 (JSON mode)',
      valueHint: 'base64',
    },
    algorithm: { type: 'string', description: 'Algorithm hint (JSON mode; ignored by Nexus)' },
    context: {
      type: 'string',
      description: 'Context (JSON mode): only the same context decrypts (docs/spike-api.md §8)',
      valueHint: 'text',
    },
  },
  async run({ args }) {
    const jsonMode =
      args.version !== undefined || args.nonce !== undefined || args.ciphertext !== undefined;
    const options = cipherOptions(args, jsonMode);
    if (jsonMode) {
      const v = (args.version ?? '').trim();
      if (!/^\d{1,3}$/.test(v) || Number(v) > 255) {
        fail('Error: Invalid --version, must be 0-255.', EXIT.usage);
      }
      const nonce = decodeBase64(args.nonce ?? '', 'nonce');
      const ciphertext = decodeBase64(args.ciphertext ?? '', 'ciphertext');
      const plaintext = await withClient('superuser', async (spike) => {
        try {
          return await spike.decryptJson({ version: Number(v), nonce, ciphertext }, options);
        } catch (error) {
          // §8: a ciphertext that fails authentication answers 500 in JSON mode [U].
          if (isSpikeApiError(error) && error.status === 500) {
            fail('Error: Decryption operation failed.');
          }
          failApi(error, 'cipher');
        }
      });
      await writeOutput(args.out, plaintext);
      return;
    }
    const output = await withClient('superuser', async (spike) => {
      const input = await readInput(args.file);
      return api('cipher', () => spike.decrypt(input));
    });
    await writeOutput(args.out, output);
  },
});

const cipherCommand = defineCommand({
  meta: commandMeta(['cipher'], 'Encrypt and decrypt data with SPIKE Nexus (superuser role)', [
    'spike cipher encrypt -i secret.txt -o secret.enc',
    'spike cipher decrypt -i secret.enc',
  ]),
  subCommands: { encrypt, decrypt },
});

export default cipherCommand;
