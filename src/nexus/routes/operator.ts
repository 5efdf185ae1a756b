/**
 * The break-glass and bootstrap routes of Nexus (docs/spike-api.md §9): recover (recover role),
 * restore and its reset (restore role) and bootstrap verify (bootstrap role). Recover and restore delegate to
 * `deps.operator`, the key-custody lifecycle; without it they answer `500 api_internal_error`
 * (recover: 503 while no key is held; restore: 409 once a key is held).
 */
import { errorResponse, jsonResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { toHex } from '../../core/bytes.ts';
import { decryptCipherParts } from '../../core/crypto/cipher.ts';
import { bufferSource } from '../../core/crypto/envelope.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import { RestoreRefusal, type RestoreStatus } from '../../core/shamir/restore-collector.ts';
import { parseShardEnvelope } from '../../core/shamir/shards.ts';
import type { NexusOperator } from '../app.ts';
import { requireNonce, TAG_BYTES } from './cipher.ts';
import { defineRoute, type NexusRoute, type RouteContext } from './route.ts';

/** The restore hooks, once no key is held (409) and restore is configured (500 otherwise). */
function restoreHooks(ctx: RouteContext): NexusOperator {
  if (ctx.deps.keys.keys() !== undefined) {
    throw new SpikeError('state_already_initialized', 'a root key is already held');
  }
  if (ctx.deps.operator === undefined) {
    throw new SpikeError('api_internal_error', 'restore is not configured');
  }
  return ctx.deps.operator;
}

/** The restore answer's body: upstream's three fields, then what is held [Ours]. */
function restoreBody(status: RestoreStatus): Record<string, unknown> {
  return {
    collected: status.collected,
    remaining: status.remaining,
    restored: status.restored,
    generation: status.generation,
    threshold: status.threshold,
  };
}

/** The operator and bootstrap routes. */
export const OPERATOR_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.recover,
    decode: (ctx) => ctx.json(REQUEST.none),
    guard: () => ({ role: 'recover' }),
    async handle(ctx) {
      ctx.keys();
      if (ctx.deps.operator === undefined) {
        throw new SpikeError('api_internal_error', 'recovery is not configured');
      }
      const shards = await ctx.deps.operator.recover();
      return jsonResponse(200, { shards: [...shards] });
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.restore,
    decode: (ctx) => ctx.json(REQUEST.envelope),
    guard: () => ({ role: 'restore' }),
    async handle(ctx, req) {
      const operator = restoreHooks(ctx);
      const envelope = parseShardEnvelope({ ...req });
      try {
        return jsonResponse(200, restoreBody(await operator.restore(envelope)));
      } catch (error) {
        if (!(error instanceof RestoreRefusal)) throw error;
        // The refusal names its rule and says what stays held (§9 "Restore" [Ours]).
        const { response, err } = errorResponse(
          error.code,
          { ...restoreBody(error.held), reason: error.message },
          error.message,
        );
        ctx.setAuditError(err);
        return response;
      }
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.restoreReset,
    decode: (ctx) => ctx.json(REQUEST.none),
    guard: () => ({ role: 'restore' }),
    async handle(ctx) {
      return jsonResponse(200, restoreBody(await restoreHooks(ctx).reset()));
    },
  }),
  defineRoute({
    spec: NEXUS_ROUTES.verify,
    decode: (ctx) => ctx.json(REQUEST.verify),
    guard: () => ({ role: 'bootstrap' }),
    async handle(ctx, req) {
      const nonce = requireNonce(req.nonce);
      const ciphertext = req.ciphertext ?? new Uint8Array(0);
      if (ciphertext.length < TAG_BYTES || ciphertext.length > ctx.deps.maxCipherBytes) {
        throw new SpikeError('api_bad_request', 'invalid ciphertext length');
      }
      let plaintext: Uint8Array;
      try {
        plaintext = await decryptCipherParts(ctx.keys().bootstrapVerify, nonce, ciphertext);
      } catch (error) {
        if (isSpikeError(error) && error.code === 'state_not_ready') throw error;
        // §9: a verify decrypt failure is a 500.
        throw new SpikeError('api_internal_error', 'bootstrap verification failed');
      }
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bufferSource(plaintext)));
      return jsonResponse(200, { hash: toHex(digest) });
    },
  }),
];
