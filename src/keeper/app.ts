/**
 * The Keeper: holds one Shamir shard of the Nexus root key, in memory only, and answers the two
 * Keeper routes (docs/spike-api.md §9 "Keeper routes", §3 envelope conventions, §12 health and the
 * 4 KiB body cap; docs/architecture.md "The flows that matter").
 *
 * Invariants:
 * - Shards live in this process's memory only, as bytes that are zeroed when replaced, dropped or
 *   wiped; they are never written to disk and never logged. Log lines carry the route, the caller,
 *   the index and the generation id, never the shard, the KCV or a request body.
 * - The Keeper keeps the latest envelope and the one before it from another generation: an
 *   envelope of the current generation replaces the current one; any other demotes the current
 *   one to `previous` (and the old previous is zeroed).
 * - Callers: nexus or bootstrap may contribute, only nexus may read. The peer ID comes from
 *   `peerOf(request)` (the transport's verified ID, never a header), is re-checked against the
 *   wire pattern of docs/spike-api.md §2 and matched against the trust roots (§1).
 *
 * Processing order (docs/spike-api.md §3): GET /health and /ready; method ≠ POST → 400; exact path
 * (and `action` absent or empty) → else 400; body (≤ 4 KiB, streamed) and JSON → 400;
 * authorisation → 401; envelope validation → 400; execute.
 */
import { errorResponse, jsonResponse, probeResponse } from '../api/v1/http.ts';
import { actionOf, KEEPER_PATHS, KEEPER_ROUTES, PROBE_PATHS } from '../api/v1/routes.ts';
import { REQUEST, ZERO } from '../api/v1/schemas.ts';
import { fromHex, toHex, zero } from '../core/bytes.ts';
import { isSpikeError, type SpikeErrorCode } from '../core/errors.ts';
import { readBodyCapped } from '../core/http/body.ts';
import { decodeGoJson, type GoJsonResult, type GoJsonSchema } from '../core/http/go-json.ts';
import type { Logger } from '../core/log.ts';
import { parseShardEnvelope, type ShardEnvelope } from '../core/shamir/shards.ts';
import { hasRole, isWirePeerId, type RoleMatch } from '../core/spike/roles.ts';

/** Keeper request body cap in bytes (docs/spike-api.md §12 "Limits"). */
const KEEPER_MAX_BODY_BYTES = 4096;

/** What the Keeper needs of a logger (src/core/log.ts); fields never hold secret material. */
type KeeperLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface KeeperAppOptions {
  /** The verified SPIFFE ID of the request's peer (the mTLS transport's `peerOf`). */
  readonly peerOf: (request: Request) => string | undefined;
  /** Trust domains of the roles allowed to call (`SPIKE_TRUST_ROOT_NEXUS`, `..._BOOTSTRAP`). */
  readonly trustRoots: { readonly nexus: readonly string[]; readonly bootstrap: readonly string[] };
  /** `SPIKE_KEEPER_ROLE_MATCH`: caller IDs match the role paths exactly (default) or by prefix. */
  readonly roleMatch?: RoleMatch;
  readonly log?: KeeperLogger;
}

export interface KeeperApp {
  /** Serves one request (the Web-standard handler the transport calls). */
  handle(request: Request): Promise<Response>;
  /** True while a shard is held (what `/ready` reports). */
  holding(): boolean;
  /** Zeroes and drops every held shard (on shutdown). */
  wipe(): void;
}

/** A held envelope, with the share as bytes so that it can be zeroed. */
interface HeldShard {
  readonly index: number;
  readonly generation: string;
  readonly kcv: string;
  readonly shard: Uint8Array;
}

/** An error answer with a route's zero-valued body (the one table, src/api/v1/errors.ts). */
function fail(code: SpikeErrorCode, zeroBody: Readonly<Record<string, unknown>>): Response {
  return errorResponse(code, zeroBody).response;
}

const NOOP_LOGGER: KeeperLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Reads at most `KEEPER_MAX_BODY_BYTES` of the streamed body with the shared capped reader
 * (src/core/http/body.ts, in its wiping mode: every chunk is zeroed once copied) and decodes it
 * with Go `encoding/json` semantics (docs/spike-api.md §3 "Request JSON"). The assembled bytes are
 * zeroed once decoded, since they may hold a shard. `undefined` (the route answers 400) after
 * logging at debug why the body was refused, never the body.
 */
async function readBody<S extends GoJsonSchema>(
  request: Request,
  schema: S,
  route: string,
  log: KeeperLogger,
): Promise<GoJsonResult<S> | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readBodyCapped(request, KEEPER_MAX_BODY_BYTES, { wipe: true });
  } catch (error) {
    // The reader's messages name the cap or the failure, never a byte of the body.
    const reason = isSpikeError(error) ? error.message : 'body could not be read';
    log.debug('bad request', { route, reason });
    return undefined;
  }
  try {
    return decodeGoJson(bytes, schema);
  } catch (error) {
    // The decoder's messages name at most a field, never a value.
    log.debug('bad request', {
      route,
      reason: isSpikeError(error) ? error.message : 'invalid JSON',
    });
    return undefined;
  } finally {
    zero(bytes);
  }
}

function toEnvelope(held: HeldShard): ShardEnvelope {
  return {
    version: 1,
    index: held.index,
    generation: held.generation,
    kcv: held.kcv,
    shard: toHex(held.shard),
  };
}

/** The caller check: the caller's ID when it has one of `roles`, otherwise `undefined` (→ 401). */
function createAuthoriser(options: KeeperAppOptions, log: KeeperLogger) {
  const nexusRoots = [...options.trustRoots.nexus];
  const bootstrapRoots = [...options.trustRoots.bootstrap];
  const match = options.roleMatch ?? 'exact';
  return function authorise(
    request: Request,
    route: string,
    roles: readonly ('nexus' | 'bootstrap')[],
  ): { id: string; role: 'nexus' | 'bootstrap' } | undefined {
    const id = options.peerOf(request);
    if (id === undefined || !isWirePeerId(id)) {
      log.warn('request denied: no valid peer ID', { route });
      return undefined;
    }
    const role = roles.find((r) =>
      hasRole(id, r, r === 'nexus' ? nexusRoots : bootstrapRoots, match),
    );
    if (role === undefined) {
      log.warn('request denied', { route, caller: id });
      return undefined;
    }
    return { id, role };
  };
}

/**
 * Creates the Keeper app (docs/spike-api.md §9 "Keeper routes", §12): `POST /v1/store/contribute`
 * (nexus, bootstrap), `POST /v1/store/shard` (nexus), `GET /health`, `GET /ready`.
 */
export function createKeeperApp(options: KeeperAppOptions): KeeperApp {
  const log = options.log ?? NOOP_LOGGER;
  const authorise = createAuthoriser(options, log);
  let current: HeldShard | undefined;
  let previous: HeldShard | undefined;

  async function contribute(request: Request): Promise<Response> {
    const { path: route, zero: zeroBody } = KEEPER_ROUTES.contribute;
    const body = await readBody(request, REQUEST.envelope, route, log);
    if (body === undefined) return fail('api_bad_request', zeroBody);
    const who = authorise(request, route, ['nexus', 'bootstrap']);
    if (who === undefined) return fail('access_unauthorized', zeroBody);
    const caller = who.id;
    // Bootstrap only fills an empty Keeper: once a shard is held, only Nexus replaces it
    // (docs/architecture.md "Shard custody").
    if (who.role === 'bootstrap' && current !== undefined) {
      log.info('shard refused: bootstrap contributions only fill an empty keeper', {
        route,
        caller,
      });
      return fail('state_already_initialized', zeroBody);
    }
    let envelope: ShardEnvelope;
    try {
      envelope = parseShardEnvelope(body);
    } catch (error) {
      // parseShardEnvelope's messages name the field, never its value.
      const reason = isSpikeError(error) ? error.message : 'invalid shard envelope';
      log.info('shard refused', { route, caller, reason });
      return fail('api_bad_request', zeroBody);
    }
    const held: HeldShard = {
      index: envelope.index,
      generation: envelope.generation,
      kcv: envelope.kcv,
      shard: fromHex(envelope.shard),
    };
    if (current !== undefined && current.generation === held.generation) {
      zero(current.shard);
    } else {
      if (previous !== undefined) zero(previous.shard);
      previous = current;
    }
    current = held;
    log.info('shard stored', {
      route,
      caller,
      index: held.index,
      generation: held.generation,
      previous: previous !== undefined,
    });
    return jsonResponse(200, {});
  }

  async function shard(request: Request): Promise<Response> {
    const { path: route, zero: zeroBody } = KEEPER_ROUTES.shard;
    // The request is `{}`: any JSON object (or `null`) decodes into Go's empty struct.
    if ((await readBody(request, REQUEST.none, route, log)) === undefined) {
      return fail('api_bad_request', zeroBody);
    }
    const caller = authorise(request, route, ['nexus'])?.id;
    if (caller === undefined) return fail('access_unauthorized', zeroBody);
    if (current === undefined) {
      log.debug('no shard held', { route, caller });
      return fail('api_not_found', zeroBody);
    }
    const shards = [toEnvelope(current)];
    if (previous !== undefined) shards.push(toEnvelope(previous));
    log.debug('shards served', { route, caller, count: shards.length });
    return jsonResponse(200, { shards });
  }

  /** Routes one request in the order of docs/spike-api.md §3 (three routes need no router). */
  async function route(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method === 'GET' && (path === PROBE_PATHS.health || path === PROBE_PATHS.ready)) {
      return probeResponse(path, current !== undefined);
    }
    const known = path === KEEPER_PATHS.contribute || path === KEEPER_PATHS.shard;
    if (request.method !== 'POST' || !known || actionOf(url.searchParams) !== '') {
      return fail('api_bad_request', ZERO.empty);
    }
    return path === KEEPER_PATHS.contribute ? contribute(request) : shard(request);
  }

  return {
    async handle(request) {
      try {
        return await route(request);
      } catch (error) {
        log.error('request failed', {
          code: isSpikeError(error) ? error.code : error instanceof Error ? error.name : 'unknown',
        });
        return fail('api_internal_error', ZERO.empty);
      }
    },
    holding() {
      return current !== undefined;
    },
    wipe() {
      zero(current?.shard, previous?.shard);
      current = undefined;
      previous = undefined;
    },
  };
}
