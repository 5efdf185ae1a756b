/**
 * The Nexus HTTP API: the SPIKE v1 routes as an Elysia app (spec/spike-api.md §3, §4, §7, §8, §9,
 * §12; ARCHITECTURE.md decision 2; STYLE.md rule 3).
 *
 * `createNexusApp(deps)` returns an app and opens nothing: the mTLS transport turns each request
 * into a Web `Request` and calls `app.handle(request)`; tests do the same in-process. The peer
 * SPIFFE ID comes only from `deps.peerOf(request)` (the transport's verified certificate, e.g. a
 * WeakMap keyed by the request), never from a header.
 *
 * Processing order (§3; the first failing step answers):
 * 1. `GET /health`, `GET /ready` (§12; not audited: probes would drown the trail and touch nothing);
 * 2. method ≠ POST → 400;
 * 3. no root key, backend ≠ memory, path not recover/restore → 503 (unknown paths included);
 * 4. exact path + first `action` query value (absent = `""`, a trailing `/` is another path), and
 *    the backend's route set (lite: cipher, recover, restore, verify; memory: recover and restore
 *    → 400 here, before authorisation) → else 400;
 * 5. body under `maxBodyBytes`, read incrementally (a body that never ends is refused at the cap),
 *    decoded with Go `encoding/json` semantics (src/core/http/go-json.ts) → 400;
 * 6. authorisation (peer ID re-checked per §2, roles per §1, policies per §7) → 401;
 *    cipher decrypt authorises before reading its body (§8);
 * 7. validation (§5) → 400;
 * 8. execution → 200, 404, 409 (restore), 500.
 *
 * Errors answer the route's zero-valued body plus `err` (§4 table), with the status from the one
 * table in ./http-errors.ts. Elysia's own error bodies (which echo rejected values) are never
 * used: every path, including Elysia's not-found, ends in a response built here.
 *
 * Audit: exactly one line per request other than the two probes, written before the response is
 * returned, with the caller's SPIFFE ID, route, action, resource (once validated; on a denial, the
 * requested path when it is well formed), outcome
 * (`allowed` = 200, `denied` = 401, `error` = anything else), status, error code and duration; never
 * a value (§12).
 *
 * Operator routes delegate to `deps.operator` (the key-custody lifecycle). Without it, recover and
 * restore answer `500 api_internal_error` (recover: 503 while no key is held; restore: 409 once a
 * key is held), except on the memory backend where both are 400 before authorisation (§4).
 */
import { Elysia } from 'elysia';
import { concatBytes, toBase64, toHex } from '../core/bytes.ts';
import { decryptCipherParts, encryptCipherParts } from '../core/crypto/cipher.ts';
import { bufferSource } from '../core/crypto/envelope.ts';
import { isSpikeError, SpikeError, type SpikeErrorCode } from '../core/errors.ts';
import { readBodyCapped } from '../core/http/body.ts';
import { decodeGoJson, type GoJsonSchema } from '../core/http/go-json.ts';
import {
  type AuditOutcome,
  formatAuditLine,
  formatGoTime,
  GO_ZERO_TIME,
  type Logger,
} from '../core/log.ts';
import {
  ACL_PATH,
  CIPHER_EXEC_PATH,
  createPolicyEngine,
  type PolicyEngine,
  SECRET_LIST_PATH,
  type TrustRoots,
} from '../core/policy/engine.ts';
import {
  type Permission,
  validateName,
  validatePolicyInput,
  validateSecretPath,
  validateValueKeys,
} from '../core/policy/validate.ts';
import type {
  Clock,
  DerivedKeys,
  Policy,
  PolicyStore,
  RootKeyProvider,
  SecretMetadata,
  Secrets,
} from '../core/ports.ts';
import {
  parseShardEnvelope,
  type RestoreStatus,
  type ShardEnvelope,
} from '../core/shamir/shards.ts';
import { isSpiffeId } from '../core/spiffe/id.ts';
import { hasRole, isWirePeerId, type SpikeRole } from '../core/spike/roles.ts';
import { httpErrorOf } from './http-errors.ts';

/** Storage backends of `SPIKE_NEXUS_BACKEND_STORE` (spike-api.md §10). */
export type NexusBackend = 'sqlite' | 'memory' | 'lite';

/** The break-glass operations, provided by the key-custody lifecycle (spike-api.md §9). */
export interface NexusOperator {
  /** The current generation's envelopes, one per share. Throws `state_not_ready` without a key. */
  recover(): Promise<readonly ShardEnvelope[]>;
  /**
   * Adds one operator shard (already parsed). Throws `api_bad_request` for a shard that does not
   * fit the collected set and `crypto_cipher_verification_failed` when the combined key fails its
   * check; `state_already_initialized` if a key appeared meanwhile.
   */
  restore(envelope: ShardEnvelope): Promise<RestoreStatus>;
}

/** What the Nexus app needs (STYLE.md rule 4: the narrowest useful surface). */
export interface NexusAppDeps {
  readonly secrets: Secrets;
  readonly policies: PolicyStore;
  readonly keys: RootKeyProvider;
  readonly backend: NexusBackend;
  /** Trust domains per role (`SPIKE_TRUST_ROOT_*`, §1). */
  readonly trustRoots: TrustRoots;
  /** `SPIKE_HTTP_SERVER_MAX_BODY_BYTES` (§12). */
  readonly maxBodyBytes: number;
  /** `SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE` (§8). */
  readonly maxCipherBytes: number;
  /** Receives one audit line per request, without the trailing newline (§12). */
  readonly audit: (line: string) => void;
  /** Wall clock for audit times; defaults to `new Date()`. */
  readonly clock?: Clock;
  /** The verified peer SPIFFE ID of a request, from the transport; `undefined` when none. */
  readonly peerOf: (request: Request) => string | undefined;
  /** Recover and restore (§9); absent until the key-custody lifecycle is wired. */
  readonly operator?: NexusOperator;
  /** A shared policy engine (e.g. one the lifecycle invalidates); default: one over `policies`. */
  readonly policyEngine?: PolicyEngine;
  /** Where unexpected faults are reported (error name and code only, never a message or value). */
  readonly logger?: Logger;
}

/** The Elysia app `createNexusApp` returns; `handle(request)` serves one request. */
export type NexusApp = Elysia;

const NO_STORE = {
  'Cache-Control': 'no-store, no-cache, must-revalidate, private',
  Pragma: 'no-cache',
  Expires: '0',
};

// `Headers` objects: a `Response` copies them (cheaper from `Headers` than from a record), so the
// shared objects are never changed by what happens to a response.
const JSON_HEADERS = new Headers({ ...NO_STORE, 'Content-Type': 'application/json' });
const OCTET_HEADERS = new Headers({ ...NO_STORE, 'Content-Type': 'application/octet-stream' });
const TEXT_ERROR_HEADERS = new Headers({
  ...NO_STORE,
  'Content-Type': 'text/plain; charset=utf-8',
});

const RECOVER_PATH = '/v1/operator/recover';
const RESTORE_PATH = '/v1/operator/restore';

// Zero-valued response objects of spike-api.md §4 ("Zero-valued error bodies").
const ZERO = Object.freeze({
  empty: {},
  secretGet: { data: null },
  secretList: { keys: null },
  metadata: {
    metadata: {
      currentVersion: 0,
      oldestVersion: 0,
      createdTime: GO_ZERO_TIME,
      updatedTime: GO_ZERO_TIME,
      maxVersions: 0,
    },
  },
  policyGet: {
    id: '',
    name: '',
    spiffiedPattern: '',
    pathPattern: '',
    permissions: null,
    createdAt: GO_ZERO_TIME,
    updatedAt: GO_ZERO_TIME,
  },
  policyList: { policies: null },
  encrypt: { version: 0, nonce: null, ciphertext: null },
  decrypt: { plaintext: null },
  restore: { collected: 0, remaining: 0, restored: false },
  recover: { shards: null },
  verify: { hash: '' },
} satisfies Record<string, Record<string, unknown>>);

/** Per-request audit state, keyed by the `Request` object. */
interface RequestState {
  readonly start: number;
  readonly trail: string;
  readonly path: string;
  readonly query: URLSearchParams;
  caller: string;
  route: string;
  action: string;
  resource?: string;
  done: boolean;
}

interface Ctx {
  readonly request: Request;
  readonly state: RequestState;
}

interface Route {
  readonly path: string;
  readonly action: string;
  /** The audit `action` name. */
  readonly audit: string;
  readonly zero: Readonly<Record<string, unknown>>;
  /** Served by the lite backend (§4 "Backends"). */
  readonly lite?: boolean;
  readonly run: (ctx: Ctx) => Promise<Response>;
}

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

function errorBody(zero: Readonly<Record<string, unknown>>, err: string): Record<string, unknown> {
  return { ...zero, err };
}

function unauthorized(): SpikeError {
  return new SpikeError('access_unauthorized', 'access denied');
}

function outcomeOf(status: number): AuditOutcome {
  if (status === 200) return 'allowed';
  if (status === 401) return 'denied';
  return 'error';
}

/**
 * A random trail id: 32 lowercase hex digits, from a random (version 4) UUID without its dashes
 * (122 random bits; the runtime batches its randomness, so this is far cheaper per request than
 * `getRandomValues` plus hex encoding).
 */
function randomTrail(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

/** Keeps audit fields bounded: they come from the client. */
function clip(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}

function timeOrNull(time: Date | null): string | null {
  return time === null ? null : formatGoTime(time);
}

function metadataBody(meta: SecretMetadata): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (meta.versions.length > 0) {
    const versions: Record<string, unknown> = {};
    for (const v of meta.versions) {
      versions[String(v.version)] = {
        createdTime: formatGoTime(v.createdTime),
        version: v.version,
        deletedTime: timeOrNull(v.deletedTime),
      };
    }
    body.versions = versions;
  }
  body.metadata = {
    currentVersion: meta.currentVersion,
    oldestVersion: meta.oldestVersion,
    createdTime: formatGoTime(meta.createdTime),
    updatedTime: formatGoTime(meta.updatedTime),
    maxVersions: meta.maxVersions,
  };
  return body;
}

function policyBody(policy: Policy): Record<string, unknown> {
  return {
    id: '',
    name: policy.name,
    // Upstream's response key, typo included (§4 "Policy object").
    spiffiedPattern: policy.spiffeIdPattern,
    pathPattern: policy.pathPattern,
    permissions: [...policy.permissions],
    createdAt: formatGoTime(policy.createdAt),
    updatedAt: formatGoTime(policy.updatedAt),
  };
}

// Request structs (Go field types; JSON tags as the upstream SDK sends them, §4).
const SCHEMA = Object.freeze({
  none: {},
  secretPut: { path: 'string', values: 'stringMap' },
  secretGet: { path: 'string', version: 'int' },
  secretVersions: { path: 'string', versions: 'intSlice' },
  secretPath: { path: 'string' },
  policyPut: {
    name: 'string',
    spiffeidPattern: 'string',
    pathPattern: 'string',
    permissions: 'stringSlice',
  },
  policyId: { id: 'string' },
  policyList: { spiffeidPattern: 'string', pathPattern: 'string' },
  encrypt: { plaintext: 'bytes', algorithm: 'string' },
  decrypt: { version: 'uint8', nonce: 'bytes', ciphertext: 'bytes', algorithm: 'string' },
  envelope: { version: 'int', index: 'int', generation: 'string', kcv: 'string', shard: 'string' },
  verify: { nonce: 'bytes', ciphertext: 'bytes' },
} satisfies Record<string, GoJsonSchema>);

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Peer IDs whose §2 re-check is remembered; past this the memo starts over (bounded RAM). */
const MAX_CHECKED_PEERS = 4096;

/**
 * Creates the Nexus app (spike-api.md §3–§9, §12). See the module header for the processing
 * order, error bodies, audit and operator behaviour.
 */
export function createNexusApp(deps: NexusAppDeps): NexusApp {
  const clock = deps.clock ?? (() => new Date());
  const engine =
    deps.policyEngine ?? createPolicyEngine({ store: deps.policies, trustRoots: deps.trustRoots });
  const states = new WeakMap<Request, RequestState>();

  // ---- request state, audit and responses -------------------------------------------------

  function stateOf(request: Request): RequestState {
    let state = states.get(request);
    if (state === undefined) {
      let path = '';
      let query: URLSearchParams;
      try {
        const url = new URL(request.url);
        path = url.pathname;
        query = url.searchParams;
      } catch {
        query = new URLSearchParams(); // an unparsable URL matches no route
      }
      state = {
        start: performance.now(),
        trail: randomTrail(),
        path,
        query,
        caller: '',
        route: clip(path, 512),
        action: 'unknown',
        done: false,
      };
      states.set(request, state);
    }
    return state;
  }

  function finish(state: RequestState, response: Response, err?: string): Response {
    if (state.done) return response;
    state.done = true;
    try {
      deps.audit(
        formatAuditLine({
          time: clock(),
          component: 'nexus',
          trail: state.trail,
          caller: clip(state.caller, 2048),
          route: state.route,
          action: state.action,
          resource: state.resource,
          outcome: outcomeOf(response.status),
          status: response.status,
          err,
          durationMs: performance.now() - state.start,
        }),
      );
    } catch {
      // A failing audit sink must not turn an answer into a crash; the transport logs sink errors.
    }
    return response;
  }

  function fail(state: RequestState, zero: Readonly<Record<string, unknown>>, error: unknown) {
    let code: SpikeErrorCode | undefined;
    if (isSpikeError(error)) {
      code = error.code;
    } else {
      deps.logger?.error('unexpected fault while serving a request', {
        trail: state.trail,
        error: error instanceof Error ? error.name : typeof error,
      });
    }
    const { status, err } = httpErrorOf(code ?? 'api_internal_error');
    if (status === 500 && code !== undefined && code !== 'crypto_decryption_failed') {
      deps.logger?.error('request failed', { trail: state.trail, code });
    }
    return finish(state, jsonResponse(status, errorBody(zero, err)), err);
  }

  // ---- steps shared by the routes --------------------------------------------------------

  function requireKeys(): DerivedKeys {
    const keys = deps.keys.keys();
    if (keys === undefined) throw new SpikeError('state_not_ready', 'no root key yet');
    return keys;
  }

  function readBody(ctx: Ctx): Promise<Uint8Array> {
    return readBodyCapped(ctx.request, deps.maxBodyBytes);
  }

  async function readJson<S extends GoJsonSchema>(ctx: Ctx, schema: S) {
    return decodeGoJson(await readBody(ctx), schema);
  }

  // Peer IDs that passed the §2 re-check. A workload's ID is fixed, so the check runs once per
  // ID rather than once per request; bounded, it starts over when full.
  const checkedPeers = new Set<string>();

  /** The §2 re-checked peer ID, or 401. */
  function peer(ctx: Ctx): string {
    const id = deps.peerOf(ctx.request);
    if (typeof id !== 'string') throw unauthorized();
    ctx.state.caller = id;
    if (!checkedPeers.has(id)) {
      if (!isWirePeerId(id) || !isSpiffeId(id)) throw unauthorized();
      if (checkedPeers.size >= MAX_CHECKED_PEERS) checkedPeers.clear();
      checkedPeers.add(id);
    }
    return id;
  }

  async function authorizePolicy(ctx: Ctx, path: string, wanted: Permission): Promise<void> {
    const id = peer(ctx);
    if (!(await engine.checkAccess(id, path, [wanted]))) {
      // Auditors need to see which path was refused; record it when it is a well-formed path
      // (never arbitrary input), although validation proper comes after authorisation (§3).
      if (ctx.state.resource === undefined && isValidSecretPath(path)) ctx.state.resource = path;
      throw unauthorized();
    }
  }

  function isValidSecretPath(path: string): boolean {
    try {
      validateSecretPath(path);
      return true;
    } catch {
      return false;
    }
  }

  function authorizeRole(ctx: Ctx, role: SpikeRole): void {
    const id = peer(ctx);
    if (!hasRole(id, role, deps.trustRoots[role])) throw unauthorized();
  }

  function secretPath(ctx: Ctx, path: string): string {
    validateSecretPath(path);
    ctx.state.resource = path;
    return path;
  }

  function requireNonce(nonce: Uint8Array | null): Uint8Array {
    if (nonce === null || nonce.length !== NONCE_BYTES) {
      throw new SpikeError('api_bad_request', 'invalid nonce: expected 12 bytes');
    }
    return nonce;
  }

  function tooLargeForCipher(): SpikeError {
    return new SpikeError('api_bad_request', 'cipher input larger than the configured maximum');
  }

  // ---- routes (§4) -----------------------------------------------------------------------

  const ok = () => jsonResponse(200, {});

  const routes: Route[] = [
    {
      path: '/v1/store/secrets',
      action: '',
      audit: 'create',
      zero: ZERO.empty,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.secretPut);
        await authorizePolicy(ctx, req.path, 'write');
        const path = secretPath(ctx, req.path);
        const values = req.values ?? {};
        validateValueKeys(values);
        await deps.secrets.put(path, values);
        return ok();
      },
    },
    {
      path: '/v1/store/secrets',
      action: 'get',
      audit: 'read',
      zero: ZERO.secretGet,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.secretGet);
        await authorizePolicy(ctx, req.path, 'read');
        const data = await deps.secrets.get(secretPath(ctx, req.path), req.version);
        return jsonResponse(200, { data });
      },
    },
    ...(['delete', 'undelete', 'destroy'] as const).map(
      (action): Route => ({
        path: '/v1/store/secrets',
        action,
        audit: action,
        zero: ZERO.empty,
        run: async (ctx) => {
          const req = await readJson(ctx, SCHEMA.secretVersions);
          await authorizePolicy(ctx, req.path, 'write');
          const path = secretPath(ctx, req.path);
          await deps.secrets[action](path, req.versions ?? []);
          return ok();
        },
      }),
    ),
    {
      path: '/v1/store/secrets',
      action: 'purge',
      audit: 'purge',
      zero: ZERO.empty,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.secretPath);
        await authorizePolicy(ctx, req.path, 'write');
        await deps.secrets.purge(secretPath(ctx, req.path));
        return ok();
      },
    },
    {
      path: '/v1/store/secrets',
      action: 'list',
      audit: 'list',
      zero: ZERO.secretList,
      run: async (ctx) => {
        await readJson(ctx, SCHEMA.none);
        await authorizePolicy(ctx, SECRET_LIST_PATH, 'list');
        const keys = await deps.secrets.list();
        return jsonResponse(200, { keys: [...keys] });
      },
    },
    {
      path: '/v1/store/secrets/metadata',
      action: 'get',
      audit: 'read_metadata',
      zero: ZERO.metadata,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.secretGet);
        await authorizePolicy(ctx, req.path, 'read');
        const meta = await deps.secrets.metadata(secretPath(ctx, req.path), req.version);
        return jsonResponse(200, metadataBody(meta));
      },
    },
    {
      path: '/v1/acl/policy',
      action: '',
      audit: 'create',
      zero: ZERO.empty,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.policyPut);
        await authorizePolicy(ctx, ACL_PATH, 'write');
        const input = validatePolicyInput({
          name: req.name,
          spiffeIdPattern: req.spiffeidPattern,
          pathPattern: req.pathPattern,
          permissions: req.permissions,
        });
        ctx.state.resource = input.name;
        await engine.upsert(input);
        return ok();
      },
    },
    {
      path: '/v1/acl/policy',
      action: 'get',
      audit: 'read',
      zero: ZERO.policyGet,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.policyId);
        await authorizePolicy(ctx, ACL_PATH, 'read');
        ctx.state.resource = validateName(req.id, 'id');
        return jsonResponse(200, policyBody(await deps.policies.get(req.id)));
      },
    },
    {
      path: '/v1/acl/policy',
      action: 'delete',
      audit: 'delete',
      zero: ZERO.empty,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.policyId);
        await authorizePolicy(ctx, ACL_PATH, 'write');
        ctx.state.resource = validateName(req.id, 'id');
        await engine.delete(req.id);
        return ok();
      },
    },
    {
      path: '/v1/acl/policy',
      action: 'list',
      audit: 'list',
      zero: ZERO.policyList,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.policyList);
        await authorizePolicy(ctx, ACL_PATH, 'list');
        let all = await deps.policies.list();
        // A non-empty SPIFFE filter wins over the path filter; both compare exactly (§4).
        if (req.spiffeidPattern !== '') {
          all = all.filter((p) => p.spiffeIdPattern === req.spiffeidPattern);
        } else if (req.pathPattern !== '') {
          all = all.filter((p) => p.pathPattern === req.pathPattern);
        }
        const policies = all
          .map((p) => ({ id: '', name: p.name }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        return jsonResponse(200, { policies });
      },
    },
    {
      path: '/v1/cipher/encrypt',
      action: '',
      audit: 'encrypt',
      zero: ZERO.encrypt,
      lite: true,
      run: async (ctx) => {
        const stream = isStreamMode(ctx.request);
        let plaintext: Uint8Array;
        if (stream) {
          plaintext = await readBody(ctx);
        } else {
          plaintext = (await readJson(ctx, SCHEMA.encrypt)).plaintext ?? new Uint8Array(0);
        }
        await authorizePolicy(ctx, CIPHER_EXEC_PATH, 'execute');
        if (plaintext.length > deps.maxCipherBytes) throw tooLargeForCipher();
        const parts = await encryptCipherParts(requireKeys().cipher, plaintext);
        if (stream) {
          const body = concatBytes(Uint8Array.of(parts.version), parts.nonce, parts.ciphertext);
          return new Response(bufferSource(body), { status: 200, headers: OCTET_HEADERS });
        }
        return jsonResponse(200, {
          version: parts.version,
          nonce: toBase64(parts.nonce),
          ciphertext: toBase64(parts.ciphertext),
        });
      },
    },
    {
      path: '/v1/cipher/decrypt',
      action: '',
      audit: 'decrypt',
      zero: ZERO.decrypt,
      lite: true,
      run: async (ctx) => {
        // Decrypt authorises before it reads the body (§8).
        await authorizePolicy(ctx, CIPHER_EXEC_PATH, 'execute');
        if (isStreamMode(ctx.request)) return decryptStream(ctx);
        const req = await readJson(ctx, SCHEMA.decrypt);
        if (req.version !== 1) {
          throw new SpikeError('api_bad_request', 'invalid version: only version 1 exists');
        }
        const nonce = requireNonce(req.nonce);
        const ciphertext = req.ciphertext ?? new Uint8Array(0);
        if (ciphertext.length > deps.maxCipherBytes) throw tooLargeForCipher();
        if (ciphertext.length < TAG_BYTES) {
          throw new SpikeError('api_bad_request', 'invalid ciphertext: shorter than the tag');
        }
        const plaintext = await decryptCipherParts(requireKeys().cipher, nonce, ciphertext);
        return jsonResponse(200, { plaintext: toBase64(plaintext) });
      },
    },
    {
      path: RECOVER_PATH,
      action: '',
      audit: 'recover',
      zero: ZERO.recover,
      lite: true,
      run: async (ctx) => {
        await readJson(ctx, SCHEMA.none);
        authorizeRole(ctx, 'recover');
        requireKeys();
        if (deps.operator === undefined) {
          throw new SpikeError('api_internal_error', 'recovery is not configured');
        }
        const shards = await deps.operator.recover();
        return jsonResponse(200, { shards: [...shards] });
      },
    },
    {
      path: RESTORE_PATH,
      action: '',
      audit: 'restore',
      zero: ZERO.restore,
      lite: true,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.envelope);
        authorizeRole(ctx, 'restore');
        if (deps.keys.keys() !== undefined) {
          throw new SpikeError('state_already_initialized', 'a root key is already held');
        }
        const envelope = parseShardEnvelope({ ...req });
        if (deps.operator === undefined) {
          throw new SpikeError('api_internal_error', 'restore is not configured');
        }
        const status = await deps.operator.restore(envelope);
        return jsonResponse(200, {
          collected: status.collected,
          remaining: status.remaining,
          restored: status.restored,
        });
      },
    },
    {
      path: '/v1/bootstrap/verify',
      action: '',
      audit: 'verify',
      zero: ZERO.verify,
      lite: true,
      run: async (ctx) => {
        const req = await readJson(ctx, SCHEMA.verify);
        authorizeRole(ctx, 'bootstrap');
        const nonce = requireNonce(req.nonce);
        const ciphertext = req.ciphertext ?? new Uint8Array(0);
        if (ciphertext.length < TAG_BYTES || ciphertext.length > deps.maxCipherBytes) {
          throw new SpikeError('api_bad_request', 'invalid ciphertext length');
        }
        let plaintext: Uint8Array;
        try {
          plaintext = await decryptCipherParts(requireKeys().bootstrapVerify, nonce, ciphertext);
        } catch (error) {
          if (isSpikeError(error) && error.code === 'state_not_ready') throw error;
          // §9: a verify decrypt failure is a 500.
          throw new SpikeError('api_internal_error', 'bootstrap verification failed');
        }
        const digest = new Uint8Array(
          await crypto.subtle.digest('SHA-256', bufferSource(plaintext)),
        );
        return jsonResponse(200, { hash: toHex(digest) });
      },
    },
  ];

  /** Stream-mode decrypt (§8): failures of the ciphertext itself answer `400 text/plain`. */
  async function decryptStream(ctx: Ctx): Promise<Response> {
    const body = await readBody(ctx);
    if (body.length - 1 - NONCE_BYTES > deps.maxCipherBytes) throw tooLargeForCipher();
    const keys = requireKeys();
    let version = 0;
    if (body.length >= 1) version = body[0]!;
    try {
      if (body.length < 1) {
        throw new SpikeError('crypto_failed_to_read_version', 'crypto_failed_to_read_version');
      }
      if (version !== 1) {
        throw new SpikeError('crypto_unsupported_version', 'crypto_unsupported_version');
      }
      if (body.length < 1 + NONCE_BYTES) {
        throw new SpikeError('crypto_failed_to_read_nonce', 'crypto_failed_to_read_nonce');
      }
      const plaintext = await decryptCipherParts(
        keys.cipher,
        body.subarray(1, 1 + NONCE_BYTES),
        body.subarray(1 + NONCE_BYTES),
      );
      return finish(
        ctx.state,
        new Response(bufferSource(plaintext), { status: 200, headers: OCTET_HEADERS }),
      );
    } catch (error) {
      if (!isSpikeError(error)) throw error;
      const text = STREAM_ERROR_TEXT[error.code];
      if (text === undefined) throw error;
      return finish(
        ctx.state,
        new Response(`${text}\n`, { status: 400, headers: TEXT_ERROR_HEADERS }),
        error.code,
      );
    }
  }

  const table = new Map<string, Route>();
  for (const route of routes) table.set(`${route.path}?${route.action}`, route);
  const fallbackZero = ZERO.empty;

  async function dispatch(request: Request): Promise<Response> {
    const state = stateOf(request);
    const action = state.query.get('action') ?? '';
    const route = table.get(`${state.path}?${action}`);
    if (route === undefined) {
      return fail(state, fallbackZero, new SpikeError('api_bad_request', 'unknown route'));
    }
    state.route = action === '' ? route.path : `${route.path}?action=${action}`;
    state.action = route.audit;
    const ctx: Ctx = { request, state };
    try {
      if (deps.backend === 'lite' && route.lite !== true) {
        throw new SpikeError('api_bad_request', 'route not served by the lite backend');
      }
      if (
        deps.backend === 'memory' &&
        (route.path === RECOVER_PATH || route.path === RESTORE_PATH)
      ) {
        throw new SpikeError('api_bad_request', 'the memory backend has no shards');
      }
      return finish(state, await route.run(ctx));
    } catch (error) {
      return fail(state, route.zero, error);
    }
  }

  const ready = () => deps.backend === 'memory' || deps.keys.keys() !== undefined;

  /** `GET /health` and `GET /ready` (§12), chosen by our own parse of the path. */
  function probe(request: Request): Response {
    if (stateOf(request).path === '/health') return jsonResponse(200, { status: 'ok' });
    return ready()
      ? jsonResponse(200, { status: 'ready' })
      : jsonResponse(503, { status: 'not_ready', err: 'state_not_ready' });
  }

  const app = new Elysia({ strictPath: true })
    .onRequest(({ request }) => {
      const state = stateOf(request);
      if (request.method === 'GET' && isProbe(state.path)) {
        state.done = true; // probes are not audited
        return;
      }
      if (request.method !== 'POST') {
        return fail(state, fallbackZero, new SpikeError('api_bad_request', 'method not allowed'));
      }
      if (!ready() && state.path !== RECOVER_PATH && state.path !== RESTORE_PATH) {
        return fail(state, fallbackZero, new SpikeError('state_not_ready', 'no root key yet'));
      }
      return;
    })
    .get('/health', ({ request }) => probe(request))
    .get('/ready', ({ request }) => probe(request))
    .onError(({ request, code, error }) => {
      const state = stateOf(request);
      if (code === 'NOT_FOUND') {
        // Elysia finds the path by offset in the URL and misreads very short hosts
        // (`https://x/...`); our own parse decides, so a valid request is never lost here.
        if (request.method === 'GET' && isProbe(state.path)) return probe(request);
        return dispatch(request);
      }
      // Never Elysia's own body (it may echo input): a fixed 500, reported without details.
      return fail(state, fallbackZero, isSpikeError(error) ? error : new Error('fault'));
    });

  const paths = new Set(routes.map((r) => r.path));
  for (const path of paths) {
    // parse: 'none' leaves the body stream to readBodyCapped (cap + Go JSON semantics).
    app.post(path, ({ request }) => dispatch(request), { parse: 'none' });
  }
  return app as unknown as NexusApp;
}

function isProbe(path: string): boolean {
  return path === '/health' || path === '/ready';
}

function isStreamMode(request: Request): boolean {
  // §8: exactly this value selects stream mode; anything else (parameters included) is JSON.
  return request.headers.get('content-type') === 'application/octet-stream';
}

/** Body text of stream-mode decrypt failures (§8), by error code. */
const STREAM_ERROR_TEXT: Partial<Record<SpikeErrorCode, string>> = {
  crypto_failed_to_read_version: 'crypto_failed_to_read_version',
  crypto_unsupported_version: 'crypto_unsupported_version',
  crypto_failed_to_read_nonce: 'crypto_failed_to_read_nonce',
  crypto_decryption_failed: 'decryption failed',
};
