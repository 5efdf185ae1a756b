/**
 * The TypeScript SDK of SPIKE: a client for the SPIKE v1 API of Nexus (docs/spike-api.md §3, §4,
 * §8, §9, §12), used by applications and by the `spike` CLI itself.
 *
 * ```ts
 * import { createClient, isSpikeError } from 'spike-ts';
 *
 * const spike = await createClient(); // SPIFFE_ENDPOINT_SOCKET, SPIKE_NEXUS_API_URL
 * try {
 *   await spike.putSecret('tenants/acme/db', { user: 'app', pass: 's3cret' });
 *   const { data } = await spike.getSecret('tenants/acme/db');
 * } catch (error) {
 *   if (isSpikeError(error) && error.code === 'api_not_found') { ... }
 * } finally {
 *   await spike.close();
 * }
 * ```
 *
 * Transport: one X.509 source from the Workload API (our own SVID, followed across rotations) and
 * one pooled HTTP/2 mTLS session to Nexus (src/runtime/tls/client.ts). The server must present a
 * SPIFFE ID with the nexus role under `SPIKE_TRUST_ROOT_NEXUS` (§1, §2); no host-name check.
 *
 * Requests carry exactly the bodies the upstream Go SDK sends (§4): JSON with the upstream keys,
 * parameterless calls send `{}`, policy get/delete send the name as `id`, and stream-mode cipher
 * calls send `Content-Type: application/octet-stream`.
 *
 * Failures are `SpikeError`s (a `SpikeApiError` with the HTTP status when Nexus answered; see
 * ./errors.ts). "Not found" is never `null`: `getSecret` and friends throw `api_not_found`.
 *
 * Retries and failover (docs/spike-api.md §10.2): `apiUrl` (or
 * `SPIKE_NEXUS_API_URL`) may name several replicas. A call goes to the URL that answered last;
 * a connection failure or a `503` (Nexus refused before doing anything) moves it to the next URL
 * at once, and after a round over every URL the jittered exponential backoff waits
 * (`retry.attempts` rounds in all, default 5, 200 ms doubling to at most 3 s). A connection
 * failure after the request may have reached Nexus is retried only for calls that are safe to
 * repeat: never for `putSecret` (it would write a second version), `undeleteSecret`,
 * `purgeSecret`, `deletePolicy` or `restore`; those reject with `maybeApplied: true`. 4xx answers
 * and other statuses are never retried.
 */
import { httpErrorOf } from '../api/v1/errors.ts';
import { CONTENT_TYPES, REASON_HEADER } from '../api/v1/http.ts';
import { PROBE_PATHS } from '../api/v1/routes.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { authorizeMatching } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole, parseTrustRoots } from '../core/spike/roles.ts';
import { createMtlsClient, type MtlsClient, type MtlsResponse } from '../runtime/tls/client.ts';
import { neverSentError } from '../runtime/tls/client-errors.ts';
import { createX509Source } from '../runtime/workload/client.ts';
import { backupCalls } from './backup-calls.ts';
import { cipherCalls, type NexusCaller, operatorCalls, policyCalls, secretCalls } from './calls.ts';
import { errorForResponse, isSpikeApiError, SpikeApiError } from './errors.ts';
import {
  type Replicas,
  resolveApiUrls,
  resolveRetry,
  resolveTimeout,
  sendWithFailover,
  type TryFailure,
} from './options.ts';
import type { ClientOptions, ReplicaStatus, RetryOptions, SpikeClient } from './types.ts';
import { type OpenWatchStream, watchChanges } from './watch.ts';
import { type Json, readObject } from './wire.ts';

export {
  DEFAULT_NEXUS_API_URL,
  DEFAULT_RETRY,
} from './options.ts';
export type {
  CallOptions,
  CipherOptions,
  ClientIdentity,
  ClientOptions,
  ImportSummary,
  JsonCiphertext,
  Permission,
  Policy,
  PolicyInput,
  PolicyListItem,
  ReplicaStatus,
  RetryOptions,
  SecretMetadata,
  SecretVersionInfo,
  SpikeClient,
} from './types.ts';
export type { WatchEvent, WatchEventKind, WatchOptions } from './watch.ts';

const JSON_TYPE = CONTENT_TYPES.json;
/** The response cap of export and snapshot answers (the default cap is 16 MiB). */
const BULK_RESPONSE_BYTES = 2 ** 31 - 1;
const OCTET_TYPE = CONTENT_TYPES.octet;
/** The status of `state_not_ready`: Nexus refused before doing anything (retried). */
const NOT_READY_STATUS = httpErrorOf('state_not_ready').status;
/** Connection errors that prove the request never left: safe to retry any call. */
const CONNECT_ERRNOS = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

function neverSent(error: unknown): boolean {
  if (neverSentError(error)) return true;
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === 'string' && CONNECT_ERRNOS.has(cause.code);
}

/** A transport failure as a `SpikeApiError` without status (identity codes are kept). */
function transportError(error: unknown): SpikeApiError {
  if (isSpikeApiError(error)) return error;
  if (isSpikeError(error)) {
    const message =
      error.code === 'net_peer_connection'
        ? 'cannot reach SPIKE Nexus'
        : `SPIKE Nexus identity rejected: ${error.message}`;
    return new SpikeApiError(error.code, message, undefined, { cause: error });
  }
  return new SpikeApiError('net_peer_connection', 'cannot reach SPIKE Nexus', undefined, {
    cause: error,
  });
}

/** The error for a non-200 answer (./errors.ts). */
function answerError(response: MtlsResponse): SpikeApiError {
  return errorForResponse(
    response.status,
    response.body,
    response.headers['content-type'],
    response.headers[REASON_HEADER],
  );
}

/** A failed try, judged for the failover loop (./options.ts). */
function judge(error: unknown): TryFailure {
  const failure = transportError(error);
  return {
    error: failure,
    connection: failure.code === 'net_peer_connection',
    neverSent: neverSent(error),
  };
}

/** `GET /ready` at one URL, as a replica's status (never throws but for an abort). */
async function probe(
  transport: MtlsClient,
  url: string,
  signal: AbortSignal | undefined,
): Promise<ReplicaStatus> {
  try {
    const response = await transport.request(PROBE_PATHS.ready, {
      method: 'GET',
      ...(signal === undefined ? {} : { signal }),
    });
    const ready = response.status === 200;
    const state = ready ? 'ready' : response.status === NOT_READY_STATUS ? 'not_ready' : 'error';
    return { url, reachable: true, ready, state, status: response.status };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    const failure = transportError(error);
    return {
      url,
      reachable: false,
      ready: false,
      state: 'unreachable',
      error: failure.code,
      message: failure.message,
    };
  }
}

function nexusAuthorizer(domains: readonly string[]) {
  return authorizeMatching(
    (id) => hasRole(id.toString(), 'nexus', domains),
    `a SPIKE Nexus ID (/spike/nexus) in ${domains.join(', ')}`,
  );
}

/** `ready()`: one try per replica, from the preferred one; any ready replica makes it true. */
async function readyAny(
  replicas: Replicas,
  transportFor: (url: string) => MtlsClient,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const urls = replicas.urls;
  let notReady = false;
  let failure: unknown;
  for (let k = 0; k < urls.length; k++) {
    const index = (replicas.preferred + k) % urls.length;
    let response: MtlsResponse;
    try {
      response = await transportFor(urls[index]!).request(PROBE_PATHS.ready, {
        method: 'GET',
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      failure ??= transportError(error);
      continue;
    }
    if (response.status === 200) {
      replicas.preferred = index;
      return true;
    }
    if (response.status !== NOT_READY_STATUS) throw answerError(response);
    notReady = true;
  }
  if (notReady) return false;
  throw failure;
}

/**
 * The backup calls' transport: export and snapshot answers outgrow the default response cap, so
 * they get their own connection with a larger one, opened on first use.
 */
function createBulkExchange(
  replicas: Replicas,
  open: (url: string) => MtlsClient,
  retry: RetryOptions,
): Pick<NexusCaller, 'exchange'> & { close(): Promise<void> } {
  const clients = new Map<string, MtlsClient>(); // one per replica, on first use
  const clientFor = (url: string): MtlsClient =>
    clients.get(url) ?? clients.set(url, open(url)).get(url)!;
  return {
    async exchange(path, body, repeatable, signal) {
      const response = await sendWithFailover(replicas, {
        retry,
        repeatable,
        signal,
        judge,
        send: (url) =>
          clientFor(url).request(path, {
            method: 'POST',
            headers: { 'content-type': JSON_TYPE, accept: `${JSON_TYPE}, ${OCTET_TYPE}` },
            body,
            ...(signal === undefined ? {} : { signal }),
          }),
      });
      if (response.status !== 200) throw answerError(response);
      return response.body;
    },
    close: async () => {
      await Promise.all([...clients.values()].map((c) => c.close()));
    },
  };
}

/**
 * How the watch iterator (./watch.ts) opens a stream over the mTLS session. A watch stream
 * outlives SVID rotations: on each one it is closed and resumed (from its cursor) on a new
 * session that presents the new SVID.
 */
function watchOpener(
  transport: () => MtlsClient,
  source: X509Source,
  onOpenFailure: () => void,
): OpenWatchStream {
  return async (path, body, headers, signal) => {
    let res: Awaited<ReturnType<MtlsClient['openStream']>>;
    try {
      res = await transport().openStream(path, { method: 'POST', headers, body, signal });
    } catch (error) {
      if (!signal?.aborted) onOpenFailure();
      throw error;
    }
    const off = source.onUpdate(() => res.close());
    const close = () => {
      off();
      res.close();
    };
    return { ...res, close };
  };
}

/** The JSON and octet-stream calls over the replicas, failing over between them (./options.ts). */
function replicaCaller(
  replicas: Replicas,
  transportFor: (url: string) => MtlsClient,
  retry: RetryOptions,
): Pick<NexusCaller, 'call' | 'stream'> {
  const send = (
    path: string,
    body: Uint8Array | string,
    contentType: string,
    repeatable: boolean,
    signal: AbortSignal | undefined,
  ) =>
    sendWithFailover(replicas, {
      retry,
      repeatable,
      signal,
      judge,
      send: (url) =>
        transportFor(url).request(path, {
          method: 'POST',
          headers: { 'content-type': contentType, accept: `${JSON_TYPE}, ${OCTET_TYPE}` },
          body,
          ...(signal === undefined ? {} : { signal }),
        }),
    });

  /** `send`, with any answer but 200 thrown as its error. */
  async function sendOk(
    path: string,
    body: Uint8Array | string,
    contentType: string,
    repeatable: boolean,
    signal: AbortSignal | undefined,
  ): Promise<MtlsResponse> {
    const response = await send(path, body, contentType, repeatable, signal);
    if (response.status !== 200) throw answerError(response);
    return response;
  }

  /** A JSON call: `{}`-style body in, the 200 object out; any other status throws. */
  async function call(
    path: string,
    body: Json,
    repeatable = true,
    signal?: AbortSignal,
  ): Promise<Json> {
    return readObject(await sendOk(path, JSON.stringify(body), JSON_TYPE, repeatable, signal));
  }

  async function stream(
    path: string,
    input: Uint8Array,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    return (await sendOk(path, input, OCTET_TYPE, true, signal)).body;
  }

  return { call, stream };
}

/**
 * Creates a client (see the module header). Waits for the first X.509-SVID, so identity problems
 * surface here rather than on the first call; no connection to Nexus is made until a call.
 *
 * @throws SpikeError `config_invalid` for a bad `SPIKE_NEXUS_API_URL` or trust root;
 *   `spiffe_invalid_address`; the Workload API errors of `createX509Source` (`workload_api_*`,
 *   carrying `grpcCode` / `errno`) when no SVID arrives.
 */
export async function createClient(options: ClientOptions = {}): Promise<SpikeClient> {
  const apiUrls = resolveApiUrls(options.apiUrl);
  const timeoutMs = resolveTimeout(options.timeoutMs);
  const retry = resolveRetry(options.retry);

  const owned = options.source === undefined;
  const source =
    options.source ??
    createX509Source({
      address: options.socket,
      timeoutMs: options.sourceTimeoutMs,
      logger: options.logger,
    });
  try {
    await source.ready();
  } catch (error) {
    if (owned) await source.close();
    throw error;
  }

  const authorizer = nexusAuthorizer(
    options.nexusTrustDomains ?? parseTrustRoots(process.env.SPIKE_TRUST_ROOT_NEXUS),
  );
  const transports = new Map<string, MtlsClient>(); // one session per replica, on first use
  const transportFor = (url: string): MtlsClient =>
    transports.get(url) ??
    transports
      .set(url, createMtlsClient({ source, baseUrl: url, timeoutMs, authorizer }))
      .get(url)!;
  const replicas: Replicas = { urls: apiUrls, preferred: 0 };
  const bulk = createBulkExchange(
    replicas,
    (url) =>
      createMtlsClient({
        source,
        baseUrl: url,
        timeoutMs,
        authorizer,
        maxResponseBytes: BULK_RESPONSE_BYTES,
      }),
    retry,
  );

  const caller: NexusCaller = {
    ...replicaCaller(replicas, transportFor, retry),
    exchange: bulk.exchange,
  };

  return {
    get apiUrl() {
      return apiUrls[replicas.preferred]!;
    },
    apiUrls,

    whoami() {
      const svid = source.current()?.svids[0];
      if (svid === undefined) throw new SpikeError('svid_invalid', 'no X.509-SVID available');
      return {
        spiffeId: svid.id,
        trustDomain: svid.trustDomain,
        expiresAt: svid.notAfter,
        serial: svid.serial,
        chainLength: svid.chain.length,
        hint: svid.hint,
      };
    },

    ready: (opts = {}) => readyAny(replicas, transportFor, opts.signal),

    replicaStatus: (opts = {}) =>
      Promise.all(apiUrls.map((url) => probe(transportFor(url), url, opts.signal))),

    ...secretCalls(caller),
    ...policyCalls(caller),
    ...cipherCalls(caller),
    ...operatorCalls(caller),
    ...backupCalls(caller),

    watch: (prefix, opts) =>
      watchChanges(
        watchOpener(
          () => transportFor(apiUrls[replicas.preferred]!),
          source,
          () => {
            // A stream that could not open moves the next resume to the next replica.
            replicas.preferred = (replicas.preferred + 1) % apiUrls.length;
          },
        ),
        prefix,
        opts,
      ),

    async close() {
      await Promise.all([...transports.values()].map((t) => t.close()));
      await bulk.close();
      if (owned) await source.close();
    },
  };
}
