/**
 * The TypeScript SDK of SPIKE: a client for the SPIKE v1 API of Nexus (spec/spike-api.md §3, §4,
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
import { backoffDelay } from '../core/backoff.ts';
import { fromBase64, toBase64 } from '../core/bytes.ts';
import { parseGoDuration } from '../core/duration.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import type { Permission, PolicyInput } from '../core/policy/validate.ts';
import type { Policy, SecretMetadata, SecretVersionInfo } from '../core/ports.ts';
import {
  parseRecoveryLine,
  parseShardEnvelope,
  type RestoreStatus,
  type ShardEnvelope,
} from '../core/shamir/shards.ts';
import { authorizeMatching } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole, parseTrustRoots } from '../core/spike/roles.ts';
import { createMtlsClient, type MtlsClient, type MtlsResponse } from '../runtime/tls/client.ts';
import { createX509Source, type WorkloadLogger } from '../runtime/workload/client.ts';
import { errorForResponse, malformedResponse, SpikeApiError } from './errors.ts';

/** Environment variable naming Nexus (spike-api.md §10). */
export const NEXUS_API_URL_ENV = 'SPIKE_NEXUS_API_URL';
/** Nexus's address when `SPIKE_NEXUS_API_URL` is unset (spike-api.md §10). */
export const DEFAULT_NEXUS_API_URL = 'https://localhost:8553';
const CLIENT_TIMEOUT_ENV = 'SPIKE_HTTP_CLIENT_TIMEOUT';
const DEFAULT_TIMEOUT_MS = 60_000;

/** Bounded retry with jittered exponential backoff. */
export interface RetryOptions {
  /** Tries in all, first one included (1 = no retry). Default 5. */
  readonly attempts: number;
  /** First delay in milliseconds. Default 200. */
  readonly initialMs: number;
  /** Largest delay in milliseconds. Default 3000. */
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryOptions = Object.freeze({
  attempts: 5,
  initialMs: 200,
  maxMs: 3000,
});

/** Options of `createClient`; every one is optional. */
export interface ClientOptions {
  /** Workload API address (`unix:///path` or `tcp://IP:port`); default `SPIFFE_ENDPOINT_SOCKET`. */
  readonly socket?: string;
  /** Nexus URL (`https://host:port`); default `SPIKE_NEXUS_API_URL`, else `https://localhost:8553`. */
  readonly apiUrl?: string;
  /** Per call, retries excluded; default `SPIKE_HTTP_CLIENT_TIMEOUT` (a Go duration), else 60 s. */
  readonly timeoutMs?: number;
  /** How long to wait for the first SVID; default `SPIKE_SPIFFE_SOURCE_TIMEOUT`, else 30 s. */
  readonly sourceTimeoutMs?: number;
  /** Retry policy (see the module header); `false` or `{ attempts: 1 }` disables retries. */
  readonly retry?: Partial<RetryOptions> | false;
  /**
   * An X.509 source to use instead of opening one on the Workload API. The caller keeps
   * ownership: `close()` does not close it.
   */
  readonly source?: X509Source;
  /** Trust domains whose `/spike/nexus` IDs are accepted; default `SPIKE_TRUST_ROOT_NEXUS`. */
  readonly nexusTrustDomains?: readonly string[];
  /** Where the Workload API connection logs its retries; default the console (warnings only). */
  readonly logger?: WorkloadLogger;
}

/** This client's own identity (its current X.509-SVID), without the private key. */
export interface ClientIdentity {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly expiresAt: Date;
  /** Leaf serial number, lowercase hex; changes on every rotation. */
  readonly serial: string;
  /** Certificates in the SVID chain (leaf plus intermediates). */
  readonly chainLength: number;
  /** The Workload API `hint`, `''` when absent. */
  readonly hint: string;
}

// The shapes the SDK shares with Nexus (src/core/ports.ts, src/core/policy/validate.ts): a policy
// to write and its permissions (spike-api.md §7), a stored policy, a secret's metadata (§4).
export type { Permission, Policy, PolicyInput, SecretMetadata, SecretVersionInfo };

/** One row of `listPolicies` (`id` is always `''` on the wire; the name is the key). */
export interface PolicyListItem {
  readonly id: string;
  readonly name: string;
}

/** JSON-mode cipher text (spike-api.md §8). */
export interface JsonCiphertext {
  readonly version: number;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** A SPIKE Nexus client. Not thread-bound; calls may run concurrently on the one session. */
export interface SpikeClient {
  /** The Nexus URL this client talks to. */
  readonly apiUrl: string;
  /** Our own current SVID. @throws SpikeError `svid_invalid` when the SVIDs were withdrawn. */
  whoami(): ClientIdentity;
  /** `GET /ready` (§12): true when Nexus holds its root key, false on 503. No retry. */
  ready(): Promise<boolean>;

  /** Reads a secret; version 0 or absent = current. @throws `api_not_found` */
  getSecret(
    path: string,
    options?: { version?: number },
  ): Promise<{ data: Record<string, string> }>;
  /** Writes a new version (upsert, §6). */
  putSecret(path: string, values: Readonly<Record<string, string>>): Promise<void>;
  /** Soft-deletes versions; `[]` or absent = current, `0` = current. @throws `api_not_found` */
  deleteSecret(path: string, versions?: readonly number[]): Promise<void>;
  /** Restores soft-deleted versions. @throws `api_not_found` when nothing was undeleted */
  undeleteSecret(path: string, versions?: readonly number[]): Promise<void>;
  /** Erases the listed versions' data for good (ours, §6). @throws `api_not_found` */
  destroySecret(path: string, versions?: readonly number[]): Promise<void>;
  /** Removes the path, every version and its metadata (ours, §6). @throws `api_not_found` */
  purgeSecret(path: string): Promise<void>;
  /** Every secret path, sorted. */
  listSecretKeys(): Promise<string[]>;
  /** Versions and metadata of a path. @throws `api_not_found` */
  getSecretMetadata(path: string, options?: { version?: number }): Promise<SecretMetadata>;

  /** Creates or replaces a policy (upsert by name, as upstream's `CreatePolicy`). */
  putPolicy(policy: PolicyInput): Promise<void>;
  /** Same as `putPolicy` (upstream's name). */
  createPolicy(policy: PolicyInput): Promise<void>;
  /** @throws `api_not_found` */
  getPolicy(name: string): Promise<Policy>;
  /** All policies by name, or those whose pattern equals the filter exactly (§4). */
  listPolicies(filter?: {
    spiffeIdPattern?: string;
    pathPattern?: string;
  }): Promise<PolicyListItem[]>;
  /** @throws `api_not_found` */
  deletePolicy(name: string): Promise<void>;

  /** Stream-mode encryption: `0x01 ‖ nonce ‖ ciphertext ‖ tag` (§8). */
  encrypt(plaintext: Uint8Array): Promise<Uint8Array>;
  /** Stream-mode decryption. @throws `crypto_*` codes for a malformed or forged input */
  decrypt(ciphertext: Uint8Array): Promise<Uint8Array>;
  /** JSON-mode encryption; the result feeds `decryptJson` unchanged. */
  encryptJson(plaintext: Uint8Array, options?: { algorithm?: string }): Promise<JsonCiphertext>;
  /** JSON-mode decryption. A forged ciphertext answers 500 (`net_peer_connection`) [U]. */
  decryptJson(input: JsonCiphertext, options?: { algorithm?: string }): Promise<Uint8Array>;

  /** The current recovery shards (recover role, §9). */
  recover(): Promise<ShardEnvelope[]>;
  /**
   * Feeds one recovery shard to Nexus (restore role, §9): an envelope or a recovery-file line.
   * @throws SpikeError `api_bad_request` (`invalid shard format`) before any call for a bad line
   */
  restore(shard: ShardEnvelope | string): Promise<RestoreStatus>;

  /** Closes the session and, if the client opened it, the Workload API source. */
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json';
const OCTET_TYPE = 'application/octet-stream';

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

function resolveApiUrl(explicit: string | undefined): string {
  const fromEnv = process.env[NEXUS_API_URL_ENV];
  const raw =
    explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_NEXUS_API_URL);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} is not a valid URL`);
  }
  if (url.protocol !== 'https:') {
    throw new SpikeError('config_invalid', `${NEXUS_API_URL_ENV} must be an https:// URL`);
  }
  return url.origin;
}

function resolveTimeout(explicit: number | undefined): number {
  if (explicit !== undefined) {
    if (!(explicit > 0)) throw new RangeError('timeoutMs must be positive');
    return explicit;
  }
  const fromEnv = process.env[CLIENT_TIMEOUT_ENV];
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_TIMEOUT_MS;
  try {
    const ms = parseGoDuration(fromEnv);
    // §10: invalid or ≤ 0 values fall back to the default.
    return ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
  } catch {
    return DEFAULT_TIMEOUT_MS;
  }
}

function resolveRetry(option: ClientOptions['retry']): RetryOptions {
  if (option === false) return { ...DEFAULT_RETRY, attempts: 1 };
  const retry = { ...DEFAULT_RETRY, ...option };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) {
    throw new RangeError('retry.attempts must be an integer >= 1');
  }
  if (!(retry.initialMs >= 0) || !(retry.maxMs >= retry.initialMs)) {
    throw new RangeError('retry delays must satisfy 0 <= initialMs <= maxMs');
  }
  return retry;
}

/** Delay before try `attempt + 1`: the core backoff with "equal jitter" (½ to 1 ×). */
function retryDelay(retry: RetryOptions, attempt: number): number {
  if (retry.initialMs === 0) return 0;
  return backoffDelay(attempt - 1, { initialMs: retry.initialMs, maxMs: retry.maxMs, jitter: 0.5 });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function neverSent(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === 'string' && CONNECT_ERRNOS.has(cause.code);
}

/** A transport failure as a `SpikeApiError` without status (identity codes are kept). */
function transportError(error: unknown): SpikeApiError {
  if (error instanceof SpikeApiError) return error;
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
  return errorForResponse(response.status, response.body, response.headers['content-type']);
}

// ---------------------------------------------------------------------------------------------
// Response readers: a 200 body that is not what the route answers is `api_internal_error`.

type Json = Record<string, unknown>;

function readObject(response: MtlsResponse): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(response.body));
  } catch {
    throw malformedResponse('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformedResponse('not a JSON object');
  }
  const obj = parsed as Json;
  if (typeof obj.err === 'string' && obj.err !== '') {
    // §3: never a success, whatever the status.
    throw malformedResponse('an error code on a success status');
  }
  return obj;
}

function stringMap(value: unknown, what: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformedResponse(what);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw malformedResponse(what);
    out[k] = v;
  }
  return out;
}

function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw malformedResponse(what);
  }
  return value as string[];
}

function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw malformedResponse(what);
  return value;
}

// RFC 3339 with an optional fraction of any length (Go writes up to nanoseconds).
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

function time(value: unknown, what: string): Date {
  const m = typeof value === 'string' ? RFC3339.exec(value) : null;
  if (m === null) throw malformedResponse(what);
  const fraction = m[2] === undefined ? '' : `.${m[2].slice(0, 3).padEnd(3, '0')}`;
  const date = new Date(`${m[1]}${fraction}${m[3]}`);
  if (Number.isNaN(date.getTime())) throw malformedResponse(what);
  return date;
}

function bytes(value: unknown, what: string): Uint8Array {
  if (value === null) return new Uint8Array(0);
  if (typeof value !== 'string') throw malformedResponse(what);
  try {
    return fromBase64(value);
  } catch {
    throw malformedResponse(what);
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks: programmer mistakes are TypeError / RangeError (STYLE.md rule 8). Content
// rules (path syntax, names, patterns) are Nexus's to judge (§5): it answers 400.

function checkString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string`);
}

function checkVersion(version: number | undefined): void {
  if (version !== undefined && !Number.isSafeInteger(version)) {
    throw new RangeError('version must be an integer');
  }
}

function checkVersions(versions: readonly number[]): number[] {
  if (!Array.isArray(versions)) throw new TypeError('versions must be an array of integers');
  for (const v of versions) {
    if (!Number.isSafeInteger(v)) throw new RangeError('versions must be integers');
  }
  return [...versions];
}

function checkValues(values: Readonly<Record<string, string>>): Record<string, string> {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new TypeError('values must be an object of strings');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (typeof v !== 'string') throw new TypeError('values must be an object of strings');
    out[k] = v;
  }
  return out;
}

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
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

  const transport: MtlsClient = createMtlsClient({
    source,
    baseUrl: apiUrl,
    timeoutMs,
    authorizer: authorizeMatching(
      (id) => hasRole(id.toString(), 'nexus', nexusDomains),
      `a SPIKE Nexus ID (/spike/nexus) in ${nexusDomains.join(', ')}`,
    ),
  });

  /**
   * Sends one request with the retry policy; returns the answer of the last try (any status).
   * `repeatable`: safe to send again after a failure that may have reached Nexus.
   */
  async function send(
    path: string,
    body: Uint8Array | string,
    contentType: string,
    repeatable: boolean,
  ): Promise<MtlsResponse> {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= retry.attempts;
      let response: MtlsResponse;
      try {
        response = await transport.request(path, {
          method: 'POST',
          headers: { 'content-type': contentType, accept: `${JSON_TYPE}, ${OCTET_TYPE}` },
          body,
        });
      } catch (error) {
        const failure = transportError(error);
        const retryable =
          failure.code === 'net_peer_connection' && (repeatable || neverSent(error));
        if (last || !retryable) throw failure;
        await sleep(retryDelay(retry, attempt));
        continue;
      }
      if (response.status === 503 && !last) {
        await sleep(retryDelay(retry, attempt));
        continue;
      }
      return response;
    }
  }

  /** `send`, with any answer but 200 thrown as its error. */
  async function sendOk(
    path: string,
    body: Uint8Array | string,
    contentType: string,
    repeatable: boolean,
  ): Promise<MtlsResponse> {
    const response = await send(path, body, contentType, repeatable);
    if (response.status !== 200) throw answerError(response);
    return response;
  }

  /** A JSON call: `{}`-style body in, the 200 object out; any other status throws. */
  async function call(path: string, body: Json, repeatable = true): Promise<Json> {
    return readObject(await sendOk(path, JSON.stringify(body), JSON_TYPE, repeatable));
  }

  async function stream(path: string, input: Uint8Array): Promise<Uint8Array> {
    return (await sendOk(path, input, OCTET_TYPE, true)).body;
  }

  const SECRETS = '/v1/store/secrets';
  const POLICY = '/v1/acl/policy';

  const putPolicy = async (policy: PolicyInput): Promise<void> => {
    if (typeof policy !== 'object' || policy === null)
      throw new TypeError('policy must be an object');
    checkString(policy.name, 'name');
    checkString(policy.spiffeIdPattern, 'spiffeIdPattern');
    checkString(policy.pathPattern, 'pathPattern');
    if (!Array.isArray(policy.permissions)) throw new TypeError('permissions must be an array');
    await call(POLICY, {
      name: policy.name,
      spiffeidPattern: policy.spiffeIdPattern,
      pathPattern: policy.pathPattern,
      permissions: [...policy.permissions],
    });
  };

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

    async ready() {
      let response: MtlsResponse;
      try {
        response = await transport.request('/ready', { method: 'GET' });
      } catch (error) {
        throw transportError(error);
      }
      if (response.status === 200) return true;
      if (response.status === 503) return false;
      throw answerError(response);
    },

    async getSecret(path, opts = {}) {
      checkString(path, 'path');
      checkVersion(opts.version);
      const res = await call(`${SECRETS}?action=get`, {
        path,
        ...(opts.version === undefined ? {} : { version: opts.version }),
      });
      return { data: stringMap(res.data, 'secret data') };
    },

    async putSecret(path, values) {
      checkString(path, 'path');
      await call(SECRETS, { path, values: checkValues(values) }, false);
    },

    async deleteSecret(path, versions = []) {
      checkString(path, 'path');
      await call(`${SECRETS}?action=delete`, { path, versions: checkVersions(versions) });
    },

    async undeleteSecret(path, versions = []) {
      checkString(path, 'path');
      await call(`${SECRETS}?action=undelete`, { path, versions: checkVersions(versions) }, false);
    },

    async destroySecret(path, versions = []) {
      checkString(path, 'path');
      await call(`${SECRETS}?action=destroy`, { path, versions: checkVersions(versions) });
    },

    async purgeSecret(path) {
      checkString(path, 'path');
      await call(`${SECRETS}?action=purge`, { path }, false);
    },

    async listSecretKeys() {
      const res = await call(`${SECRETS}?action=list`, {});
      return stringArray(res.keys, 'secret keys');
    },

    async getSecretMetadata(path, opts = {}) {
      checkString(path, 'path');
      checkVersion(opts.version);
      const res = await call(`${SECRETS}/metadata?action=get`, {
        path,
        ...(opts.version === undefined ? {} : { version: opts.version }),
      });
      const meta = res.metadata as Json | undefined;
      if (typeof meta !== 'object' || meta === null) throw malformedResponse('metadata');
      const versions: SecretVersionInfo[] = [];
      if (res.versions !== undefined && res.versions !== null) {
        if (typeof res.versions !== 'object' || Array.isArray(res.versions)) {
          throw malformedResponse('versions');
        }
        for (const raw of Object.values(res.versions as Json)) {
          const v = raw as Json;
          if (typeof v !== 'object' || v === null) throw malformedResponse('versions');
          versions.push({
            version: integer(v.version, 'version'),
            createdTime: time(v.createdTime, 'createdTime'),
            deletedTime:
              v.deletedTime === null || v.deletedTime === undefined
                ? null
                : time(v.deletedTime, 'deletedTime'),
          });
        }
      }
      versions.sort((a, b) => a.version - b.version);
      return {
        versions,
        currentVersion: integer(meta.currentVersion, 'currentVersion'),
        oldestVersion: integer(meta.oldestVersion, 'oldestVersion'),
        createdTime: time(meta.createdTime, 'createdTime'),
        updatedTime: time(meta.updatedTime, 'updatedTime'),
        maxVersions: integer(meta.maxVersions, 'maxVersions'),
      };
    },

    putPolicy,
    createPolicy: putPolicy,

    async getPolicy(name) {
      checkString(name, 'name');
      const res = await call(`${POLICY}?action=get`, { id: name });
      if (typeof res.name !== 'string') throw malformedResponse('policy name');
      const pattern = res.spiffiedPattern ?? res.spiffeidPattern;
      if (typeof pattern !== 'string' || typeof res.pathPattern !== 'string') {
        throw malformedResponse('policy patterns');
      }
      return {
        name: res.name,
        spiffeIdPattern: pattern,
        pathPattern: res.pathPattern,
        permissions: stringArray(res.permissions, 'permissions') as Permission[],
        createdAt: time(res.createdAt, 'createdAt'),
        updatedAt: time(res.updatedAt, 'updatedAt'),
      };
    },

    async listPolicies(filter = {}) {
      const body: Json = {};
      if (filter.spiffeIdPattern !== undefined && filter.spiffeIdPattern !== '') {
        body.spiffeidPattern = filter.spiffeIdPattern;
      }
      if (filter.pathPattern !== undefined && filter.pathPattern !== '') {
        body.pathPattern = filter.pathPattern;
      }
      const res = await call(`${POLICY}?action=list`, body);
      if (res.policies === null) return [];
      if (!Array.isArray(res.policies)) throw malformedResponse('policies');
      return res.policies.map((raw: unknown) => {
        const p = raw as Json;
        if (typeof p !== 'object' || p === null || typeof p.name !== 'string') {
          throw malformedResponse('policies');
        }
        return { id: typeof p.id === 'string' ? p.id : '', name: p.name };
      });
    },

    async deletePolicy(name) {
      checkString(name, 'name');
      await call(`${POLICY}?action=delete`, { id: name }, false);
    },

    async encrypt(plaintext) {
      checkBytes(plaintext, 'plaintext');
      return stream('/v1/cipher/encrypt', plaintext);
    },

    async decrypt(ciphertext) {
      checkBytes(ciphertext, 'ciphertext');
      return stream('/v1/cipher/decrypt', ciphertext);
    },

    async encryptJson(plaintext, opts = {}) {
      checkBytes(plaintext, 'plaintext');
      const res = await call('/v1/cipher/encrypt', {
        plaintext: toBase64(plaintext),
        ...(opts.algorithm === undefined ? {} : { algorithm: opts.algorithm }),
      });
      return {
        version: integer(res.version, 'version'),
        nonce: bytes(res.nonce, 'nonce'),
        ciphertext: bytes(res.ciphertext, 'ciphertext'),
      };
    },

    async decryptJson(input, opts = {}) {
      if (typeof input !== 'object' || input === null)
        throw new TypeError('input must be an object');
      if (!Number.isInteger(input.version) || input.version < 0 || input.version > 255) {
        throw new RangeError('version must be an integer from 0 to 255');
      }
      checkBytes(input.nonce, 'nonce');
      checkBytes(input.ciphertext, 'ciphertext');
      const res = await call('/v1/cipher/decrypt', {
        version: input.version,
        nonce: toBase64(input.nonce),
        ciphertext: toBase64(input.ciphertext),
        ...(opts.algorithm === undefined ? {} : { algorithm: opts.algorithm }),
      });
      return bytes(res.plaintext, 'plaintext');
    },

    async recover() {
      const res = await call('/v1/operator/recover', {});
      if (!Array.isArray(res.shards)) throw malformedResponse('shards');
      try {
        return res.shards.map((s: unknown) => parseShardEnvelope(s));
      } catch {
        throw malformedResponse('shards');
      }
    },

    async restore(shard) {
      const envelope =
        typeof shard === 'string' ? parseRecoveryLine(shard) : parseShardEnvelope(shard);
      const res = await call('/v1/operator/restore', { ...envelope }, false);
      if (typeof res.restored !== 'boolean') throw malformedResponse('restored');
      return {
        collected: integer(res.collected, 'collected'),
        remaining: integer(res.remaining, 'remaining'),
        restored: res.restored,
      };
    },

    async close() {
      await transport.close();
      if (owned) await source.close();
    },
  };
}
