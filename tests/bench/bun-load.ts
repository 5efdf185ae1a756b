/**
 * The Bun load generator of `bun run bench` (tests/bench/run.ts), the cross-check beside the Go one:
 * HTTP/2 over mTLS from this process.
 */
import http2 from 'node:http2';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { tlsMaterialOf } from '../../src/runtime/tls/material.ts';

export const SESSIONS = 4;
export const IN_FLIGHT_PER_SESSION = 16;

/** One measured phase. */
export interface PhaseResult {
  name: string;
  requests: number;
  errors: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Server CPU time (user + system) per answered request, warm-up included, in µs. */
  cpuUs?: number;
}

/**
 * Closed-loop load over HTTP/2 with client certificates: `SESSIONS` connections ×
 * `IN_FLIGHT_PER_SESSION` outstanding requests each, 1 s warm-up, then `seconds` measured; only
 * 200 answers count.
 */
export async function bunLoad(
  name: string,
  port: number,
  source: X509Source,
  request: (i: number) => { path: string; body: string; method?: string },
  seconds: number,
): Promise<PhaseResult> {
  const material = tlsMaterialOf((await source.ready()) as never);
  const sessions = Array.from({ length: SESSIONS }, () =>
    http2.connect(`https://127.0.0.1:${port}`, {
      ...material,
      // The server is our own bench process on loopback; identity checks are covered by tests.
      checkServerIdentity: () => undefined,
    }),
  );
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  let measuring = false;
  let stop = false;
  const one = (session: http2.ClientHttp2Session) =>
    new Promise<void>((resolve) => {
      const { path, body, method = 'POST' } = request(counter++);
      const t0 = performance.now();
      const stream = session.request(
        method === 'GET'
          ? { ':method': method, ':path': path }
          : {
              ':method': method,
              ':path': path,
              'content-type': 'application/json',
              // As Go's client and ours send it for a body of known size.
              'content-length': String(Buffer.byteLength(body)),
            },
      );
      let status = 0;
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', () => {});
      stream.on('end', () => {
        if (measuring) {
          if (status === 200) latencies.push(performance.now() - t0);
          else errors++;
        }
        resolve();
      });
      stream.on('error', () => {
        if (measuring) errors++;
        resolve();
      });
      if (method === 'GET') stream.end();
      else stream.end(body);
    });
  const worker = async (session: http2.ClientHttp2Session) => {
    while (!stop) await one(session);
  };
  const workers = sessions.flatMap((s) =>
    Array.from({ length: IN_FLIGHT_PER_SESSION }, () => worker(s)),
  );
  await Bun.sleep(1000); // warm-up
  measuring = true;
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(workers);
  for (const s of sessions) s.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return {
    name,
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50ms: pct(0.5),
    p99ms: pct(0.99),
  };
}
