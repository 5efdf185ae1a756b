/**
 * The break-glass and bootstrap routes of Nexus (docs/spike-api.md §9): recover (recover role),
 * restore (restore role) and bootstrap verify (bootstrap role). Recover and restore delegate to
 * `deps.operator`, the key-custody lifecycle; without it they answer `500 api_internal_error`
 * (recover: 503 while no key is held; restore: 409 once a key is held).
 */
import { jsonResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { toHex } from '../../core/bytes.ts';
import { decryptCipherParts } from '../../core/crypto/cipher.ts';
import { bufferSource } from '../../core/crypto/envelope.ts';
import { isSpikeError, SpikeError } from '../../core/errors.ts';
import { parseShardEnvelope } from '../../core/shamir/shards.ts';
import { requireNonce, TAG_BYTES } from './cipher.ts';
import { defineRoute, type NexusRoute } from './route.ts';

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
      if (ctx.deps.keys.keys() !== undefined) {
        throw new SpikeError('state_already_initialized', 'a root key is already held');
      }
      const envelope = parseShardEnvelope({ ...req });
      if (ctx.deps.operator === undefined) {
        throw new SpikeError('api_internal_error', 'restore is not configured');
      }
      const status = await ctx.deps.operator.restore(envelope);
      return jsonResponse(200, {
        collected: status.collected,
        remaining: status.remaining,
        restored: status.restored,
      });
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
