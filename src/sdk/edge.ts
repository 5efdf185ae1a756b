/**
 * `spike-ts/edge`: the SPIKE client for runtimes that cannot present a client certificate
 * (Cloudflare Workers, Deno Deploy, Vercel Edge). Only `fetch` and Web Crypto: no `node:*`
 * import anywhere below this module. It authenticates with a JWT-SVID bearer token
 * (docs/spike-api.md §2.1; Nexus must run with `SPIKE_NEXUS_JWT_AUDIENCE`), weaker than mTLS:
 * a token can be replayed until it expires, so keep them short-lived.
 *
 * ```ts
 * import { createEdgeClient } from 'spike-ts/edge';
 * const spike = createEdgeClient({ apiUrl: 'https://nexus.example:8553', token: () => env.JWT_SVID });
 * const { data } = await spike.getSecret('tenants/acme/db');
 * ```
 *
 * Same method names, request bodies, answer readers and error codes as the mTLS client
 * (./calls.ts, ./wire.ts, ./errors.ts are shared): `api_not_found`, `access_unauthorized`, … as
 * `SpikeApiError`; an unreachable Nexus is `net_peer_connection`. Retries and failover across
 * several `apiUrl`s are the mTLS client's (docs/spike-api.md §10.2; a refused
 * connection is the only failure known not to have reached Nexus); every call takes an
 * `AbortSignal`. The server's certificate is checked by the runtime's `fetch`
 * against the runtime's trust store (a `fetch` that takes a CA, e.g. Bun's or Deno's
 * `Deno.createHttpClient`, can be passed as `fetch`).
 */
import { httpErrorOf } from '../api/v1/errors.ts';
import { CONTENT_TYPES, REASON_HEADER } from '../api/v1/http.ts';
import { PROBE_PATHS } from '../api/v1/routes.ts';
import { backupCalls } from './backup-calls.ts';
import { cipherCalls, type NexusCaller, operatorCalls, policyCalls, secretCalls } from './calls.ts';
import { errorForResponse, SpikeApiError } from './errors.ts';
import { type Replicas, resolveRetry, sendWithFailover } from './options.ts';
import type { ReplicaStatus, RetryOptions, SpikeClient } from './types.ts';
import { fromFetchResponse, watchChanges } from './watch.ts';
import { type Json, readObject } from './wire.ts';

/** Options of {@link createEdgeClient}. */
export interface EdgeClientOptions {
  /** Nexus, `https://host:port`, or several replicas to fail over between. */
  readonly apiUrl: string | readonly string[];
  /** Returns the current JWT-SVID (audience = Nexus's `SPIKE_NEXUS_JWT_AUDIENCE`). */
  readonly token: () => string | Promise<string>;
  /** The `fetch` to use; default the global one. */
  readonly fetch?: typeof fetch;
  /** Per try, in milliseconds; default 60 s. */
  readonly timeoutMs?: number;
  /** As the mTLS client's (`false` disables retries). */
  readonly retry?: Partial<RetryOptions> | false;
}

/** The calls of the mTLS client that need no X.509-SVID of our own. */
export type SpikeEdgeClient = Omit<SpikeClient, 'whoami' | 'close'>;

const JSON_TYPE = CONTENT_TYPES.json;
const OCTET_TYPE = CONTENT_TYPES.octet;
const NOT_READY_STATUS = httpErrorOf('state_not_ready').status;

/** Creates the fetch-only client (see the module comment). Makes no request until a call. */
/** Fetch errors that prove no connection was made (Bun's code, undici's errno). */
const REFUSED = new Set(['ConnectionRefused', 'ECONNREFUSED']);

function refused(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return REFUSED.has(String(e?.code)) || REFUSED.has(String(e?.cause?.code));
}

/** A `fetch` that threw: no answer arrived. */
class FetchFailure {
  readonly cause: unknown;
  constructor(cause: unknown) {
    this.cause = cause;
  }
}

function origins(apiUrl: string | readonly string[]): string[] {
  const list = typeof apiUrl === 'string' ? apiUrl.split(',') : [...apiUrl];
  const out: string[] = [];
  for (const entry of list) {
    let url: URL;
    try {
      url = new URL(String(entry).trim());
    } catch {
      throw new TypeError('apiUrl must be an https:// URL');
    }
    if (url.protocol !== 'https:') throw new TypeError('apiUrl must be an https:// URL');
    if (out.includes(url.origin)) throw new TypeError('apiUrl names a URL twice');
    out.push(url.origin);
  }
  if (out.length === 0) throw new TypeError('apiUrl must be an https:// URL');
  return out;
}

export function createEdgeClient(options: EdgeClientOptions): SpikeEdgeClient {
  const urls = origins(options.apiUrl);
  if (typeof options.token !== 'function') throw new TypeError('token must be a function');
  const replicas: Replicas = { urls, preferred: 0 };
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const retry = resolveRetry(options.retry);

  async function once(
    origin: string,
    path: string,
    init: { method: string; body?: Uint8Array | string; type?: string },
    signal: AbortSignal | undefined,
    token: string,
  ): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const response = await doFetch(`${origin}${path}`, {
      method: init.method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: `${JSON_TYPE}, ${OCTET_TYPE}`,
        ...(init.type === undefined ? {} : { 'content-type': init.type }),
      },
      ...(init.body === undefined
        ? {}
        : { body: typeof init.body === 'string' ? init.body : new Uint8Array(init.body) }),
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    });
    return {
      status: response.status,
      headers: response.headers,
      body: new Uint8Array(await response.arrayBuffer()),
    };
  }

  async function send(
    path: string,
    init: { method: string; body?: Uint8Array | string; type?: string },
    repeatable: boolean,
    signal: AbortSignal | undefined,
  ) {
    return sendWithFailover(replicas, {
      retry,
      repeatable,
      signal,
      async send(origin) {
        // The provider's own failure is the caller's to see, never retried as a network error.
        const token = await options.token();
        if (typeof token !== 'string' || token === '') {
          throw new TypeError('token() returned no token');
        }
        try {
          return await once(origin, path, init, signal, token);
        } catch (error) {
          throw new FetchFailure(error);
        }
      },
      judge(error) {
        // Anything but a fetch failure (the token provider's own error) is the caller's as it is.
        if (!(error instanceof FetchFailure)) throw error;
        const failure = new SpikeApiError(
          'net_peer_connection',
          'cannot reach SPIKE Nexus',
          undefined,
          {
            cause: error.cause,
          },
        );
        return { error: failure, connection: true, neverSent: refused(error.cause) };
      },
    });
  }

  async function sendOk(
    path: string,
    body: Uint8Array | string,
    type: string,
    repeatable: boolean,
    signal?: AbortSignal,
  ) {
    const answer = await send(path, { method: 'POST', body, type }, repeatable, signal);
    if (answer.status !== 200) {
      throw errorForResponse(
        answer.status,
        answer.body,
        answer.headers.get('content-type') ?? undefined,
        answer.headers.get(REASON_HEADER) ?? undefined,
      );
    }
    return answer;
  }

  const caller: NexusCaller = {
    async call(path, body: Json, repeatable = true, signal) {
      return readObject(await sendOk(path, JSON.stringify(body), JSON_TYPE, repeatable, signal));
    },
    async stream(path, input, signal) {
      return (await sendOk(path, input, OCTET_TYPE, true, signal)).body;
    },
    async exchange(path, body, repeatable, signal) {
      return (await sendOk(path, body, JSON_TYPE, repeatable, signal)).body;
    },
  };

  return {
    get apiUrl() {
      return urls[replicas.preferred]!;
    },
    apiUrls: urls,
    async replicaStatus(opts = {}) {
      const token = await options.token();
      return Promise.all(
        urls.map(async (url): Promise<ReplicaStatus> => {
          try {
            const { status } = await once(
              url,
              PROBE_PATHS.ready,
              { method: 'GET' },
              opts.signal,
              token,
            );
            const state =
              status === 200 ? 'ready' : status === NOT_READY_STATUS ? 'not_ready' : 'error';
            return { url, reachable: true, ready: status === 200, state, status };
          } catch {
            if (opts.signal?.aborted) throw opts.signal.reason;
            return {
              url,
              reachable: false,
              ready: false,
              state: 'unreachable',
              error: 'net_peer_connection',
            };
          }
        }),
      );
    },
    async ready(opts = {}) {
      const answer = await send(PROBE_PATHS.ready, { method: 'GET' }, true, opts.signal);
      if (answer.status === 200) return true;
      if (answer.status === NOT_READY_STATUS) return false;
      throw errorForResponse(
        answer.status,
        answer.body,
        answer.headers.get('content-type') ?? undefined,
      );
    },
    ...secretCalls(caller),
    ...policyCalls(caller),
    ...cipherCalls(caller),
    ...operatorCalls(caller),
    ...backupCalls(caller),
    // The watch stream over `fetch`: no timeout once the answer started (./watch.ts).
    watch: (prefix, opts) =>
      watchChanges(
        async (path, body, headers, signal) => {
          const token = await options.token();
          const at = replicas.preferred;
          try {
            const response = await doFetch(`${urls[at]}${path}`, {
              method: 'POST',
              headers: { ...headers, authorization: `Bearer ${token}` },
              body,
              signal,
            });
            return fromFetchResponse(response);
          } catch (error) {
            // A stream that could not open moves the next resume to the next replica.
            if (!signal?.aborted) replicas.preferred = (at + 1) % urls.length;
            throw error;
          }
        },
        prefix,
        opts,
      ),
  };
}

export { isSpikeError, SpikeError, type SpikeErrorCode } from '../core/errors.ts';
export { SpikeApiError } from './errors.ts';
export type { CallOptions, RetryOptions } from './types.ts';
