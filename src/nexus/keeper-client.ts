/**
 * How Nexus talks to one Keeper (docs/spike-api.md §9 "Keeper routes", §2 "Clients verify",
 * §12 `/ready`): an mTLS client that only accepts a server whose SPIFFE ID has the keeper role.
 *
 * Three calls: `shards()` (`POST /v1/store/shard`, what the Keeper holds), `contribute(envelope)`
 * (`POST /v1/store/contribute`) and `holding()` (`GET /ready`, the cheap probe the refill monitor
 * uses, which carries no shard over the wire).
 *
 * Invariants: shard bytes never appear in an error or log line made here; request and response
 * bodies that carried a shard are zeroed once used (the hex strings parsed out of them cannot be,
 * JavaScript strings being immutable). A call that times out discards the pooled connection, so a
 * frozen or vanished Keeper does not keep a dead session around.
 */
import { httpErrorOf } from '../api/v1/errors.ts';
import { CONTENT_TYPES } from '../api/v1/http.ts';
import { KEEPER_PATHS, PROBE_PATHS } from '../api/v1/routes.ts';
import { utf8, zero } from '../core/bytes.ts';
import { isSpikeError, SpikeError } from '../core/errors.ts';
import { parseShardEnvelope, type ShardEnvelope } from '../core/shamir/shards.ts';
import { authorizeMatching } from '../core/spiffe/authorizer.ts';
import type { X509Source } from '../core/spiffe/types.ts';
import { hasRole } from '../core/spike/roles.ts';
import { createMtlsClient, type MtlsClient, type MtlsResponse } from '../runtime/tls/client.ts';

/** What one `POST /v1/store/shard` gave: the Keeper's envelopes, or nothing held (404). */
type KeeperShards =
  | {
      readonly kind: 'held';
      /** Envelopes that passed `parseShardEnvelope`, in the Keeper's order (current first). */
      readonly envelopes: readonly ShardEnvelope[];
      /** Why each other entry was set aside (field names only, never values). */
      readonly rejected: readonly string[];
    }
  | { readonly kind: 'empty' };

/** One Keeper as the key lifecycle sees it (src/nexus/root-key/lifecycle.ts). */
export interface KeeperLink {
  /** 1-based slot: the position in `SPIKE_NEXUS_KEEPER_PEERS` and the envelope index it holds. */
  readonly index: number;
  /** `https://host:port`. */
  readonly url: string;
  /**
   * Asks for the held envelopes.
   *
   * @throws SpikeError `net_peer_connection` when unreachable or too slow, `svid_*` when the
   *   server is not a Keeper, `api_internal_error` for any other answer.
   */
  shards(): Promise<KeeperShards>;
  /** Stores `envelope` on the Keeper; same errors as `shards`. */
  contribute(envelope: ShardEnvelope): Promise<void>;
  /** `GET /ready`: true while the Keeper holds an envelope. Same errors as `shards`. */
  holding(): Promise<boolean>;
  /** Closes the connection. */
  close(): Promise<void>;
}

export interface KeeperClientOptions {
  /** Nexus's own identity and the trust bundles. */
  readonly source: X509Source;
  /** `https://host:port` of the Keeper. */
  readonly url: string;
  /** 1-based slot in `SPIKE_NEXUS_KEEPER_PEERS`. */
  readonly index: number;
  /** `SPIKE_TRUST_ROOT_KEEPER`: trust domains whose keeper IDs we talk to. */
  readonly keeperTrustRoots: readonly string[];
  /** Per call, connection included; default 3 s (a Keeper answers in milliseconds). */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 3000;
const JSON_HEADERS = { 'content-type': CONTENT_TYPES.json } as const;

function unexpected(route: string, status: number): SpikeError {
  return new SpikeError('api_internal_error', `keeper answered ${route} with status ${status}`);
}

/**
 * Creates the client of one Keeper (docs/spike-api.md §9, §2). No connection is made until the first
 * call.
 */
export function createKeeperClient(options: KeeperClientOptions): KeeperLink {
  const roots = [...options.keeperTrustRoots];
  const authorizer = authorizeMatching(
    (id) => hasRole(id.toString(), 'keeper', roots),
    'a keeper ID (SPIKE_TRUST_ROOT_KEEPER)',
  );
  const make = (): MtlsClient =>
    createMtlsClient({
      source: options.source,
      authorizer,
      baseUrl: options.url,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxResponseBytes: 64 * 1024,
    });
  let client = make();
  let closed = false;

  async function call(
    path: string,
    init: { method: string; body?: Uint8Array },
  ): Promise<MtlsResponse> {
    if (closed) throw new SpikeError('net_peer_connection', 'keeper client is closed');
    const used = client;
    try {
      return await used.request(path, {
        method: init.method,
        ...(init.body === undefined ? {} : { headers: JSON_HEADERS, body: init.body }),
      });
    } catch (error) {
      // Start over with a fresh connection next time: a Keeper that stopped answering may have
      // been replaced, and a session stuck on a frozen peer should not be reused.
      if (isSpikeError(error) && error.code === 'net_peer_connection' && client === used) {
        client = make();
        void used.close().catch(() => undefined);
      }
      throw error;
    }
  }

  return {
    index: options.index,
    url: options.url,

    async shards() {
      const route = KEEPER_PATHS.shard;
      const response = await call(route, { method: 'POST', body: utf8.encode('{}') });
      try {
        if (response.status === httpErrorOf('api_not_found').status) return { kind: 'empty' };
        if (response.status !== 200) throw unexpected(route, response.status);
        let parsed: unknown;
        try {
          parsed = JSON.parse(utf8.decode(response.body));
        } catch {
          throw new SpikeError('api_internal_error', 'keeper answer is not JSON');
        }
        const list = (parsed as { shards?: unknown } | null)?.shards;
        if (!Array.isArray(list)) {
          throw new SpikeError('api_internal_error', 'keeper answer has no shard list');
        }
        const envelopes: ShardEnvelope[] = [];
        const rejected: string[] = [];
        for (const item of list) {
          try {
            envelopes.push(parseShardEnvelope(item));
          } catch (error) {
            // parseShardEnvelope names the failing field, never its value.
            rejected.push(isSpikeError(error) ? error.message : 'invalid shard envelope');
          }
        }
        return { kind: 'held', envelopes, rejected };
      } finally {
        zero(response.body);
      }
    },

    async contribute(envelope) {
      const route = KEEPER_PATHS.contribute;
      const body = utf8.encode(
        JSON.stringify({
          version: envelope.version,
          index: envelope.index,
          generation: envelope.generation,
          kcv: envelope.kcv,
          shard: envelope.shard,
        }),
      );
      try {
        const response = await call(route, { method: 'POST', body });
        if (response.status !== 200) throw unexpected(route, response.status);
      } finally {
        zero(body);
      }
    },

    async holding() {
      const response = await call(PROBE_PATHS.ready, { method: 'GET' });
      if (response.status === 200) return true;
      if (response.status === httpErrorOf('state_not_ready').status) return false;
      throw unexpected(PROBE_PATHS.ready, response.status);
    },

    async close() {
      closed = true;
      await client.close();
    },
  };
}
