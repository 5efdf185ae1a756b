/**
 * CPU profile of one bench server under the Go generator: `bun tests/bench/profile.ts <mode>
 * [h2|h1] [seconds]` runs `tests/bench/server.ts <mode>` with `bun --cpu-prof-md`, loads it for
 * the given time and leaves the Markdown profile in the printed directory. A tool for finding
 * where the transport's time goes (issue 12), not part of `bun run bench`.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

const [mode = 'echo', proto = 'h2', seconds = '4'] = process.argv.slice(2);
const work = mkdtempSync(join(os.tmpdir(), 'spike-prof-'));
const issuer = await startDevIssuer({
  dir: join(work, 'sockets'),
  logger: { info: () => {}, warn: () => {} },
});
const source = createX509Source({ address: issuer.addressFor('workload') });
const material = tlsMaterialOf(await source.ready());
const pem = { cert: join(work, 'c.pem'), key: join(work, 'k.pem'), ca: join(work, 'ca.pem') };
writeFileSync(pem.cert, material.cert);
writeFileSync(pem.key, material.key, { mode: 0o600 });
writeFileSync(pem.ca, material.ca.join(''));
const bin = join(work, 'bin');
mkdirSync(bin);
const build = Bun.spawn(['go', 'build', '-o', `${bin}/`, './loadgen'], {
  cwd: join(import.meta.dir, 'go'),
  stderr: 'inherit',
});
if ((await build.exited) !== 0) throw new Error('go build failed');
const profDir = join(work, 'profile');
const server = Bun.spawn(
  ['bun', '--cpu-prof-md', `--cpu-prof-dir=${profDir}`, join(import.meta.dir, 'server.ts'), mode],
  {
    env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus') },
    stdout: 'pipe',
    stderr: 'inherit',
  },
);
const reader = server.stdout.getReader();
let text = '';
let port = 0;
while (port === 0) {
  const { value, done } = await reader.read();
  if (done) throw new Error('server exited');
  text += new TextDecoder().decode(value);
  port = Number(/READY (\d+)/.exec(text)?.[1] ?? 0);
}
const load = Bun.spawn(
  [
    join(bin, 'loadgen'),
    `-url=https://127.0.0.1:${port}/echo`,
    `-proto=${proto}`,
    `-seconds=${seconds}`,
    '-body={"path":"bench/secret"}',
    `-cert=${pem.cert}`,
    `-key=${pem.key}`,
    `-ca=${pem.ca}`,
  ],
  { stdout: 'inherit', stderr: 'inherit' },
);
await load.exited;
server.kill('SIGTERM');
await server.exited;
await source.close();
await issuer.stop();
console.log(`profile in ${profDir}`);
