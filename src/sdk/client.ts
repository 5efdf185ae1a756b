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
 * Retries: `503 state_not_ready` (Nexus refuses before doing anything) and connection failures
 * are retried with jittered exponential backoff, `retry.attempts` tries in all (default 5,
 * 200 ms doubling to at most 3 s). A connection failure after the request may have reached Nexus
 * is retried only for calls that are safe to repeat: never for `putSecret` (it would write a
 * second version), `undeleteSecret`, `purgeSecret`, `deletePolicy` or `restore`. 4xx answers
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
import { createX509Source } from '../runtime/workload/client.ts';
import { backupCalls } from './backup-calls.ts';
import { cipherCalls, type NexusCaller, operatorCalls, policyCalls, secretCalls } from './calls.ts';
import { errorForResponse, isSpikeApiError, SpikeApiError } from './errors.ts';
import { resolveApiUrl, resolveRetry, resolveTimeout, retryDelay, sleep } from './options.ts';
import type { ClientOptions, RetryOptions, SpikeClient } from './types.ts';
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

/** One request to send: `repeatable` = safe to send again after a failure that may have reached Nexus. */
interface Outgoing {
  readonly path: string;
  readonly body: Uint8Array | string;
  readonly contentType: string;
  readonly repeatable: boolean;
  readonly signal?: AbortSignal;
}

/** Sends one request with the retry policy; returns the answer of the last try (any status). */
async function sendWithRetry(
  transport: MtlsClient,
  retry: RetryOptions,
  { path, body, contentType, repeatable, signal }: Outgoing,
): Promise<MtlsResponse> {
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const last = attempt >= retry.attempts;
    let response: MtlsResponse;
    try {
      response = await transport.request(path, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: `${JSON_TYPE}, ${OCTET_TYPE}` },
        body,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      // Aborted: no retry, the caller gets the signal's reason as it is.
      if (signal?.aborted) throw signal.reason;
      const failure = transportError(error);
      const retryable = failure.code === 'net_peer_connection' && (repeatable || neverSent(error));
      if (last || !retryable) throw failure;
      await sleep(retryDelay(retry, attempt), signal);
      continue;
    }
    if (response.status === NOT_READY_STATUS && !last) {
      await sleep(retryDelay(retry, attempt), signal);
      continue;
    }
    return response;
  }
}

/**
 * The backup calls' transport: export and snapshot answers outgrow the default response cap, so
 * they get their own connection with a larger one, opened on first use.
 */
function createBulkExchange(
  options: Parameters<typeof createMtlsClient>[0],
  retry: RetryOptions,
): Pick<NexusCaller, 'exchange'> & { close(): Promise<void> } {
  let bulk: MtlsClient | undefined;
  return {
    async exchange(path, body, repeatable, signal) {
      bulk ??= createMtlsClient({ ...options, maxResponseBytes: BULK_RESPONSE_BYTES });
      const outgoing = { path, body, contentType: JSON_TYPE, repeatable, signal };
      const response = await sendWithRetry(bulk, retry, outgoing);
      if (response.status !== 200) throw answerError(response);
      return response.body;
    },
    close: async () => {
      await bulk?.close();
    },
  };
}

/**
 * How the watch iterator (./watch.ts) opens a stream over the mTLS session. A watch stream
 * outlives SVID rotations: on each one it is closed and resumed (from its cursor) on a new
 * session that presents the new SVID.
 */
function watchOpener(transport: MtlsClient, source: X509Source): OpenWatchStream {
  return async (path, body, headers, signal) => {
    const res = await transport.openStream(path, { method: 'POST', headers, body, signal });
    const off = source.onUpdate(() => res.close());
    const close = () => {
      off();
      res.close();
    };
    return { ...res, close };
  };
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
  const apiUrl = resolveApiUrl(options.apiUrl);
  const timeoutMs = resolveTimeout(options.timeoutMs);
  const retry = resolveRetry(options.retry);
  const nexusDomains =
    options.nexusTrustDomains ?? parseTrustRoots(process.env.SPIKE_TRUST_ROOT_NEXUS);

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

  const transportOptions = {
    source,
    baseUrl: apiUrl,
    timeoutMs,
    authorizer: authorizeMatching(
      (id) => hasRole(id.toString(), 'nexus', nexusDomains),
      `a SPIKE Nexus ID (/spike/nexus) in ${nexusDomains.join(', ')}`,
    ),
  };
  const transport: MtlsClient = createMtlsClient(transportOptions);

  const send = (
    path: string,
    body: Uint8Array | string,
    type: string,
    repeatable: boolean,
    signal: AbortSignal | undefined,
  ) => sendWithRetry(transport, retry, { path, body, contentType: type, repeatable, signal });

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

  const bulk = createBulkExchange(transportOptions, retry);
  const caller: NexusCaller = { call, stream, exchange: bulk.exchange };

  return {
    apiUrl,

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

    async ready(opts = {}) {
      let response: MtlsResponse;
      try {
        response = await transport.request(PROBE_PATHS.ready, {
          method: 'GET',
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
      } catch (error) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw transportError(error);
      }
      if (response.status === 200) return true;
      if (response.status === NOT_READY_STATUS) return false;
      throw answerError(response);
    },

    ...secretCalls(caller),
    ...policyCalls(caller),
    ...cipherCalls(caller),
    ...operatorCalls(caller),
    ...backupCalls(caller),

    watch: (prefix, opts) => watchChanges(watchOpener(transport, source), prefix, opts),

    async close() {
      await transport.close();
      await bulk.close();
      if (owned) await source.close();
    },
  };
}
