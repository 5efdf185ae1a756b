/**
 * Ports, the socket directory, logs, recovery files and the certificate files of `bun run dev`
 * (src/dev/up.ts): everything it checks or writes on disk and on 127.0.0.1.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { PROJECT_ROOT } from '../build.ts';
import type { X509Context } from '../core/spiffe/types.ts';
import { tlsMaterialOf, toPem } from '../runtime/tls/material.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { HOST } from './options.ts';

/** `sun_path` is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** The longest built-in socket name (`keeper-NN`, without `.sock`). */
const LONGEST_BUILT_IN_NAME = 'keeper-NN';
/** How long to wait for a certificate-file identity's first SVID from its socket. */
const SVID_FILES_TIMEOUT_MS = 15_000;

/** Resolves when `port` can be bound on 127.0.0.1, rejects with the error code otherwise. */
export function checkPortFree(port: number): Promise<string | undefined> {
  return new Promise((resolvePort) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolvePort(error.code ?? 'error'));
    server.listen({ port, host: HOST, exclusive: true }, () => {
      server.close(() => resolvePort(undefined));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolveListening) => {
    const socket = net.connect({ port, host: HOST });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolveListening(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolveListening(false);
    });
    socket.once('error', () => resolveListening(false));
  });
}

/**
 * `<dir>/sockets`, unless `<that>/<longest name>.sock` is too long for a unix socket: then a
 * private directory in the temp directory, named after the state directory so every checkout gets
 * its own. `names` are the extra socket names (`--workload`); the built-in ones always fit.
 */
export function socketDirFor(dir: string, names: readonly string[] = []): string {
  const preferred = join(dir, 'sockets');
  const longest = Math.max(LONGEST_BUILT_IN_NAME.length, ...names.map((n) => n.length));
  const bytes = new TextEncoder().encode(preferred).length + 1 + longest + '.sock'.length;
  if (bytes <= MAX_SOCKET_PATH) return preferred;
  const tag = new Bun.CryptoHasher('sha256').update(dir).digest('hex').slice(0, 12);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `spike-dev-${uid}-${tag}`);
}

export function tail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n');
    return text
      .slice(-lines)
      .map((l) => `    ${l}`)
      .join('\n');
  } catch {
    return '    (no log)';
  }
}

/** `path` relative to the checkout when it lies inside it, else absolute. */
export function shown(path: string): string {
  const rel = relative(PROJECT_ROOT, path);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

const RECOVERY_FILE = /^spike\.recovery\.([0-9]{1,3})\.txt$/;

export function recoveryFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => RECOVERY_FILE.test(name))
    .sort((a, b) => Number(RECOVERY_FILE.exec(a)![1]) - Number(RECOVERY_FILE.exec(b)![1]))
    .map((name) => join(dir, name));
}

// ---------------------------------------------------------------------------------------------
// Certificate files for clients that take files instead of a Workload API socket

/** Where one identity's certificate files are. */
export interface SvidFiles {
  readonly name: string;
  readonly id: string;
  /** `certs/<name>`, mode 0700. */
  readonly dir: string;
  /** The SVID chain in PEM, leaf first (mode 0600). */
  readonly cert: string;
  /** The SVID's PKCS#8 private key in PEM (mode 0600). */
  readonly key: string;
}

/** Writes `text` to `file` with `mode` through a temporary file and a rename (never half a file). */
function writeFileAtomic(file: string, text: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

/** The trust bundle in PEM at `<dir>/bundle.pem` (public: mode 0644). */
export function writeBundle(dir: string, rootCertificate: Uint8Array): string {
  const file = join(dir, 'bundle.pem');
  writeFileAtomic(file, toPem('CERTIFICATE', rootCertificate), 0o644);
  return file;
}

function writeSvidFiles(files: SvidFiles, context: X509Context): void {
  const material = tlsMaterialOf(context);
  // Key first: a reader between the two renames sees the new key with the old certificate for a
  // moment, never a certificate without its key file.
  writeFileAtomic(files.key, material.key, 0o600);
  writeFileAtomic(files.cert, material.cert, 0o600);
}

/**
 * Fetches `name`'s X.509-SVID from its Workload API socket, as any workload does, writes it to
 * `certsDir/<name>/{cert,key}.pem`, and rewrites both whenever the SVID rotates. `close()` stops
 * following and leaves the files; the caller deletes `certsDir`.
 */
export async function followSvidFiles(
  address: string,
  name: string,
  certsDir: string,
  onProblem: (message: string) => void,
): Promise<{ files: SvidFiles; close(): Promise<void> }> {
  const dir = join(certsDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const source = createX509Source({
    address,
    timeoutMs: SVID_FILES_TIMEOUT_MS,
    logger: { info: () => {}, warn: onProblem, error: onProblem },
  });
  try {
    const context = await source.ready();
    const files: SvidFiles = {
      name,
      id: context.svids[0]!.id,
      dir,
      cert: join(dir, 'cert.pem'),
      key: join(dir, 'key.pem'),
    };
    writeSvidFiles(files, context);
    source.onUpdate((next) => {
      if (next === undefined) return;
      try {
        writeSvidFiles(files, next);
      } catch (error) {
        onProblem(
          `could not renew the certificate files of ${name}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
    });
    return { files, close: () => source.close() };
  } catch (error) {
    await source.close();
    throw new Error(
      `could not fetch the SVID of ${name} for its certificate files: ${(error as Error).message}`,
    );
  }
}

/** A value for a POSIX shell: as is when it needs no quoting, else in single quotes. */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}
