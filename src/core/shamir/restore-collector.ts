/**
 * The operator restore collector (docs/spike-api.md §9 "Restore"): shards arrive one call at a
 * time; the collector holds them, as bytes, until `t` of one generation rebuild the verified key.
 *
 * Invariants: every share it was handed is zeroed once it is refused, replaced by nothing
 * (duplicate index), combined, or discarded (`clear()`, a failed verification); the rebuilt key
 * is handed to the caller, who owns and zeroes it. What it reports (`RestoreStatus`) is what it
 * holds: the generation of the collected shards, how many, the threshold and what remains.
 */
import { combine } from 'shamir-secret-sharing';
import { equalBytes, fromHex, utf8, zero } from '../bytes.ts';
import { computeKcv, ROOT_KEY_LENGTH } from '../crypto/keys.ts';
import { SpikeError } from '../errors.ts';
import { parseShardEnvelope, type ShardEnvelope } from './shards.ts';

const HEX32 = /^[0-9a-f]{32}$/;
const MAX_SHARES = 255;

/**
 * Progress of an operator restore: the `/v1/operator/restore` 200 body (docs/spike-api.md §9).
 * `collected`, `remaining` and `restored` are upstream's fields; `generation` (`""` while nothing
 * is held) and `threshold` say what is held [Ours].
 */
export interface RestoreStatus {
  readonly collected: number;
  readonly remaining: number;
  readonly restored: boolean;
  readonly generation: string;
  readonly threshold: number;
}

/** Outcome of one `RestoreCollector.add`: the status and, once restored, the root key. */
export interface RestoreStep {
  /** Safe to serialise as the response body. */
  readonly status: RestoreStatus;
  /** The verified root key when `status.restored`; the caller owns and zeroes it. */
  readonly rootKey?: Uint8Array;
}

/** One collected shard: the envelope's public fields and the share as bytes. */
interface Held {
  readonly index: number;
  readonly generation: string;
  readonly kcv: string;
  readonly share: Uint8Array;
}

/** A refused shard (a 400) carrying what stays held, for the answer's body. */
export class RestoreRefusal extends SpikeError {
  readonly held: RestoreStatus;

  constructor(
    message: string,
    held: RestoreStatus,
    code: 'api_bad_request' | 'crypto_cipher_verification_failed' = 'api_bad_request',
  ) {
    super(code, message);
    this.held = held;
  }
}

function kcvEquals(a: string, b: string): boolean {
  return equalBytes(utf8.encode(a), utf8.encode(b));
}

/**
 * Collects operator restore shards (docs/spike-api.md §9 table "Restore"): the first envelope
 * fixes the generation and KCV; a later one that differs is refused (`RestoreRefusal`) with the
 * set unchanged; a repeated index changes nothing; at `t` shards the key is combined and verified
 * against the envelopes' KCV and the stored KCV. Success or failure, the collected shares are then
 * zeroed. Calls are serialised, so concurrent requests cannot interleave. The "key already held →
 * 409" row belongs to the caller, which owns the key.
 */
export class RestoreCollector {
  readonly #threshold: number;
  readonly #storedKcv: string | undefined;
  #collected = new Map<number, Held>();
  #queue: Promise<unknown> = Promise.resolve();
  /** Set once a set was combined into a verified key: the collector's job is done. */
  #done = false;

  /**
   * @param threshold t, 2..255.
   * @param storedKcv the KCV persisted in the store, if any; a key that does not match it is
   *   never returned.
   * @throws RangeError for a threshold outside 2..255 or a stored KCV that is not 32 hex.
   */
  constructor(threshold: number, storedKcv?: string) {
    if (!Number.isInteger(threshold) || threshold < 2 || threshold > MAX_SHARES) {
      throw new RangeError('threshold must be an integer from 2 to 255');
    }
    if (storedKcv !== undefined && !HEX32.test(storedKcv)) {
      throw new RangeError('stored kcv must be 32 lowercase hex characters');
    }
    this.#threshold = threshold;
    this.#storedKcv = storedKcv;
  }

  /** What is held now (never `restored`: a restored set is discarded at once). */
  status(): RestoreStatus {
    const collected = this.#collected.size;
    const first = this.#collected.values().next().value;
    return {
      collected,
      remaining: this.#threshold - collected,
      restored: false,
      generation: first?.generation ?? '',
      threshold: this.#threshold,
    };
  }

  /**
   * Adds one envelope (decoded JSON, checked with `parseShardEnvelope`). `share`, when given, is
   * the envelope's 33 share bytes, which the collector then owns: it zeroes them once they are
   * refused, combined or discarded (the caller keeps no other copy).
   *
   * @throws SpikeError `api_bad_request` for a bad envelope; `RestoreRefusal` for one of another
   *   generation or KCV or a repeated x-coordinate (the collected set is unchanged);
   *   `crypto_cipher_verification_failed` when the t shares do not give a verified key (the
   *   collected set is discarded); `state_already_initialized` once a set was combined.
   */
  add(json: unknown, share?: Uint8Array): Promise<RestoreStep> {
    const run = this.#queue.then(() => this.#add(json, share));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Discards and zeroes every collected share; returns the (empty) status. */
  clear(): RestoreStatus {
    for (const held of this.#collected.values()) zero(held.share);
    this.#collected = new Map();
    return this.status();
  }

  async #add(json: unknown, given: Uint8Array | undefined): Promise<RestoreStep> {
    if (this.#done) {
      zero(given);
      throw new SpikeError('state_already_initialized', 'the collected shards were combined');
    }
    let envelope: ShardEnvelope;
    try {
      envelope = parseShardEnvelope(json);
    } catch (error) {
      zero(given);
      throw error;
    }
    let share = fromHex(envelope.shard);
    if (given !== undefined) {
      const same = equalBytes(given, share);
      zero(share);
      share = given;
      if (!same) {
        zero(given);
        throw new RangeError('share bytes do not belong to the envelope');
      }
    }
    const refusal = this.#refusal(envelope, share);
    if (refusal !== undefined) {
      zero(share);
      if (refusal === 'duplicate') return { status: this.status() };
      throw new RestoreRefusal(refusal, this.status());
    }
    const { index, generation, kcv } = envelope;
    this.#collected.set(index, { index, generation, kcv, share });
    if (this.#collected.size < this.#threshold) return { status: this.status() };
    const rootKey = await this.#combine();
    this.#done = true;
    const status = { collected: this.#threshold, remaining: 0, restored: true, generation };
    return { status: { ...status, threshold: this.#threshold }, rootKey };
  }

  /** Why `envelope` cannot join the set (a message, or `duplicate`), or `undefined`. */
  #refusal(envelope: ShardEnvelope, share: Uint8Array): string | undefined {
    const first = this.#collected.values().next().value;
    if (first !== undefined && envelope.generation !== first.generation) {
      return 'shard belongs to a different generation than the collected ones: reset the restore to start over with another generation';
    }
    if (first !== undefined && !kcvEquals(envelope.kcv, first.kcv)) {
      return 'shard carries a different key-check value than the collected ones';
    }
    if (this.#collected.has(envelope.index)) return 'duplicate';
    for (const held of this.#collected.values()) {
      if (held.share[ROOT_KEY_LENGTH] === share[ROOT_KEY_LENGTH]) {
        return 'shard repeats the x-coordinate of a collected one';
      }
    }
    return undefined;
  }

  /** Combines the full set, verifies the key and zeroes every share, whatever the outcome. */
  async #combine(): Promise<Uint8Array> {
    const held = [...this.#collected.values()];
    this.#collected = new Map();
    const kcv = held[0]!.kcv;
    let key: Uint8Array | undefined;
    try {
      if (this.#storedKcv !== undefined && !kcvEquals(this.#storedKcv, kcv)) {
        throw new SpikeError(
          'crypto_cipher_verification_failed',
          'shards belong to a different key',
        );
      }
      key = await combine(held.map((h) => h.share));
      if (!kcvEquals(await computeKcv(key), kcv)) {
        throw new SpikeError(
          'crypto_cipher_verification_failed',
          'reconstructed key failed verification',
        );
      }
      const result = key;
      key = undefined;
      return result;
    } finally {
      zero(key, ...held.map((h) => h.share));
    }
  }
}
