/**
 * One generation's shares of the root key, as the lifecycle keeps them (docs/spike-api.md §9):
 * bytes, so that they can be zeroed, and the envelopes made from them for Keepers and operators.
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { isSpikeError } from '../../core/errors.ts';
import type { ShardEnvelope } from '../../core/shamir/shards.ts';

/** One generation's shares, as bytes so that they can be zeroed; `shares[i]` has index i + 1. */
export interface ShareSet {
  readonly generation: string;
  readonly kcv: string;
  readonly shares: Uint8Array[];
}

/** The share set of one generation's envelopes (all of one generation, indexes 1..n in order). */
export function toShareSet(envelopes: readonly ShardEnvelope[]): ShareSet {
  const first = envelopes[0]!;
  return {
    generation: first.generation,
    kcv: first.kcv,
    shares: envelopes.map((e) => fromHex(e.shard)),
  };
}

/** The envelope of share `index` (1-based) of `set`. */
export function envelopeOf(set: ShareSet, index: number): ShardEnvelope {
  return {
    version: 1,
    index,
    generation: set.generation,
    kcv: set.kcv,
    shard: toHex(set.shares[index - 1]!),
  };
}

/** A log-safe identifier of an error: its `SpikeError` code, else its name. */
export function codeOf(error: unknown): string {
  if (isSpikeError(error)) return error.code;
  return error instanceof Error ? error.name : 'unknown';
}
