/**
 * A/B of bench servers from several checkouts, interleaved, measured by the Go generator:
 * `bun tests/bench/ab.ts <mode> <rounds> <seconds> <checkout>[:<mode>]...` prints requests/s and server CPU
 * µs/request (median of the rounds) for HTTP/2 and HTTP/1.1. A tool for transport work (issue
 * 12) on a shared machine, where CPU per request is steadier than throughput.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startDevIssuer } from '../../src/dev/issuer.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

const [mode = 'echo', roundsArg = '3', secondsArg = '3', ...trees] = process.argv.slice(2);
const work = mkdtempSync(join(os.tmpdir(), 'spike-ab-'));
const issuer = await startDevIssuer({ dir: join(work, 's'), logger: { info() {}, warn() {} } });
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
});
if ((await build.exited) !== 0) throw new Error('go build failed');

const cpu = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(x[11]) + Number(x[12])) * 1e4;
};
const out = new Map<string, { rps: number; cpu: number }[]>();
for (let r = 0; r < Number(roundsArg); r++) {
  for (const spec of trees.length > 0 ? trees : ['.']) {
    const [tree = '.', treeMode = mode] = spec.split(':');
    const server = Bun.spawn(['bun', join(tree, 'tests/bench/server.ts'), treeMode], {
      env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: issuer.addressFor('nexus') },
      stdout: 'pipe',
    });
    const reader = server.stdout.getReader();
    let text = '';
    let port = 0;
    while (port === 0) {
      const { value, done } = await reader.read();
      if (done) throw new Error('server exited');
      text += new TextDecoder().decode(value);
      port = Number(/READY (\d+)/.exec(text)?.[1] ?? 0);
    }
    for (const proto of ['h2', 'h1']) {
      const c0 = cpu(server.pid);
      const load = Bun.spawn(
        [
          join(bin, 'loadgen'),
          `-url=https://127.0.0.1:${port}/echo`,
          `-proto=${proto}`,
          `-seconds=${secondsArg}`,
          '-body={"path":"bench/secret"}',
          `-cert=${pem.cert}`,
          `-key=${pem.key}`,
          `-ca=${pem.ca}`,
        ],
        { stdout: 'pipe' },
      );
      const res = JSON.parse(await new Response(load.stdout).text()) as {
        rps: number;
        total: number;
      };
      const key = `${spec} ${proto}`;
      out.set(key, [
        ...(out.get(key) ?? []),
        { rps: res.rps, cpu: (cpu(server.pid) - c0) / res.total },
      ]);
    }
    server.kill('SIGTERM');
    await server.exited;
  }
}
const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [key, list] of out) {
  console.log(
    `${key}: ${med(list.map((l) => l.rps)).toFixed(0)} req/s, ${med(list.map((l) => l.cpu)).toFixed(0)} µs CPU/request`,
  );
}
await source.close();
await issuer.stop();
process.exit(0);
