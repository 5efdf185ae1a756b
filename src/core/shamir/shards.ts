/**
 * Shamir custody of the root key: shard envelopes, recovery lines and the restore collector
 * (docs/spike-api.md §9 "Shamir", "Shard envelope", "Restore"; §11 "Recovery file").
 *
 * Shares come from `shamir-secret-sharing` over GF(256): a 32-byte key gives 33-byte shares, the
 * 32 y-bytes then the x-coordinate (1–255). Its split is randomised, so every split is tagged with
 * a fresh 16-byte generation id and every share travels in a versioned envelope carrying its
 * index, the generation and the key-check value (KCV) of the key. Shares of different generations
 * are never combined, and a reconstructed key is returned only after its KCV matches
 * (docs/architecture.md decision 8).
 *
 * Invariants kept here: shard bytes and keys never appear in an error message; intermediate
 * buffers (decoded shares, rejected keys) are zeroed once used. Hex strings cannot be wiped by
 * JavaScript; callers that hold shards for long (the Keeper) keep them as bytes instead.
 */
import { combine, split } from 'shamir-secret-sharing';
import { equalBytes, fromHex, toHex, utf8, zero } from '../bytes.ts';
import { computeKcv, ROOT_KEY_LENGTH } from '../crypto/keys.ts';
import { SpikeError } from '../errors.ts';

/** Shard envelope format version (docs/spike-api.md §9). */
const SHARD_ENVELOPE_VERSION = 1;
/** Highest share count and index GF(256) allows (docs/spike-api.md §9: 2 ≤ t ≤ n ≤ 255). */
const MAX_SHARES = 255;

/**
 * One share on the wire, in recovery files and in Nexus memory (docs/spike-api.md §9 table
 * "Shard envelope"). All hex is lowercase.
 */
export interface ShardEnvelope {
  /** Envelope format, always `1`. */
  readonly version: 1;
  /** 1-based slot: the Keeper's position in `SPIKE_NEXUS_KEEPER_PEERS`, or the recovery file. */
  readonly index: number;
  /** 32 hex characters (16 random bytes) shared by all shares of one split. */
  readonly generation: string;
  /** 32 hex characters: the key-check value of the split key. */
  readonly kcv: string;
  /** 66 hex characters: the 33-byte share. */
  readonly shard: string;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX66 = /^[0-9a-f]{66}$/;

function badRequest(message: string): SpikeError {
  return new SpikeError('api_bad_request', message);
}

/** Constant-time comparison of two lowercase-hex KCVs (their length is public). */
function kcvEquals(a: string, b: string): boolean {
  return equalBytes(utf8.encode(a), utf8.encode(b));
}

/**
 * Splits a 32-byte root key into `n` shares, any `t` of which reconstruct it, under a freshly
 * minted generation id (docs/spike-api.md §9 "Shamir", "Lifecycle"). Envelope `i` (1..n) goes to the
 * i-th Keeper. `kcv`, when given, must be the key's KCV (a mismatch is a programming error);
 * when omitted it is computed.
 *
 * @throws RangeError for a key that is not 32 bytes, or n, t outside 2 ≤ t ≤ n ≤ 255.
 */
export async function splitRootKey(
  rootKey: Uint8Array,
  n: number,
  t: number,
  kcv?: string,
): Promise<ShardEnvelope[]> {
  if (!(rootKey instanceof Uint8Array) || rootKey.length !== ROOT_KEY_LENGTH) {
    throw new RangeError(`root key must be ${ROOT_KEY_LENGTH} bytes`);
  }
  if (!Number.isInteger(n) || !Number.isInteger(t) || t < 2 || n < t || n > MAX_SHARES) {
    throw new RangeError('shares and threshold must satisfy 2 <= t <= n <= 255');
  }
  const actualKcv = await computeKcv(rootKey);
  if (kcv !== undefined && !kcvEquals(kcv, actualKcv)) {
    throw new RangeError('kcv does not belong to this root key');
  }
  const generationBytes = crypto.getRandomValues(new Uint8Array(16));
  const generation = toHex(generationBytes);
  // `split` checks `secret.constructor === Uint8Array`, so hand it a plain copy (not a subclass).
  const secret = Uint8Array.from(rootKey);
  let shares: Uint8Array[] = [];
  try {
    shares = await split(secret, n, t);
    return shares.map((share, i) =>
      Object.freeze({
        version: SHARD_ENVELOPE_VERSION,
        index: i + 1,
        generation,
        kcv: actualKcv,
        shard: toHex(share),
      }),
    );
  } finally {
    zero(secret, ...shares);
  }
}

/** Finds a field the way Go's encoding/json does: exact key preferred, else ASCII case-folded. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  let found: unknown;
  for (const key of Object.keys(obj)) {
    // Later keys win, as in Go, where each matching key overwrites the field.
    if (key.toLowerCase() === name) found = obj[key];
  }
  return found;
}

/**
 * Decodes and checks the 33 share bytes of an already format-checked 66-hex string.
 * The caller owns (and zeroes) the returned bytes.
 */
function decodeShare(hex: string): Uint8Array {
  const bytes = fromHex(hex);
  let y = 0;
  for (let i = 0; i < ROOT_KEY_LENGTH; i++) y |= bytes[i]!;
  if (y === 0) {
    zero(bytes);
    throw badRequest('invalid shard envelope: all-zero shard');
  }
  if (bytes[ROOT_KEY_LENGTH] === 0) {
    zero(bytes);
    throw badRequest('invalid shard envelope: shard has an invalid x-coordinate');
  }
  return bytes;
}

/**
 * Parses a shard envelope from decoded JSON (docs/spike-api.md §9 "Shard envelope"), with Go's key
 * matching (exact, else case-insensitive; unknown keys ignored) and exact types: `version` 1,
 * `index` an integer 1..255, `generation` and `kcv` 32 lowercase hex, `shard` 66 lowercase hex
 * whose 32 y-bytes are not all zero and whose x-coordinate is not 0.
 *
 * @throws SpikeError `api_bad_request` naming the failing field, never echoing its value.
 */
export function parseShardEnvelope(json: unknown): ShardEnvelope {
  if (json === null) throw badRequest('invalid shard envelope: unsupported version');
  if (typeof json !== 'object' || Array.isArray(json)) {
    throw badRequest('invalid shard envelope: not a JSON object');
  }
  const obj = json as Record<string, unknown>;
  const version = field(obj, 'version');
  if (version !== SHARD_ENVELOPE_VERSION) {
    throw badRequest(
      typeof version === 'number' || version === undefined
        ? 'invalid shard envelope: unsupported version'
        : 'invalid shard envelope: version must be an integer',
    );
  }
  const index = field(obj, 'index');
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > MAX_SHARES) {
    throw badRequest('invalid shard envelope: index must be an integer from 1 to 255');
  }
  const generation = field(obj, 'generation');
  if (typeof generation !== 'string' || !HEX32.test(generation)) {
    throw badRequest('invalid shard envelope: generation must be 32 lowercase hex characters');
  }
  const kcv = field(obj, 'kcv');
  if (typeof kcv !== 'string' || !HEX32.test(kcv)) {
    throw badRequest('invalid shard envelope: kcv must be 32 lowercase hex characters');
  }
  const shard = field(obj, 'shard');
  if (typeof shard !== 'string' || !HEX66.test(shard)) {
    throw badRequest('invalid shard envelope: shard must be 66 lowercase hex characters');
  }
  zero(decodeShare(shard));
  return Object.freeze({ version: SHARD_ENVELOPE_VERSION, index, generation, kcv, shard });
}

/**
 * Groups envelopes by generation, in order of first appearance (docs/spike-api.md §9 "Lifecycle":
 * recovery combines the newest generation with at least t shares; the caller knows which is
 * newest, e.g. from the order Keepers answer `[current, previous]`).
 */
export function groupByGeneration(
  envelopes: readonly ShardEnvelope[],
): Map<string, ShardEnvelope[]> {
  const groups = new Map<string, ShardEnvelope[]>();
  for (const envelope of envelopes) {
    const group = groups.get(envelope.generation);
    if (group === undefined) groups.set(envelope.generation, [envelope]);
    else group.push(envelope);
  }
  return groups;
}

/**
 * Reconstructs the root key from envelopes of one generation and verifies it (docs/spike-api.md §9
 * "Lifecycle", "Restore"): the key is returned only if its recomputed KCV equals the envelopes'
 * `kcv` and, when given, `expectedKcv` (the stored KCV). Duplicate envelopes of one index are
 * ignored. All valid shares given are used (more than `t` is fine). The caller owns and zeroes
 * the returned key.
 *
 * @throws SpikeError `api_bad_request` for mixed generations or KCVs, conflicting shares of one
 *   index, repeated x-coordinates, or fewer than `t` distinct shares.
 * @throws SpikeError `crypto_cipher_verification_failed` when the key does not verify; the
 *   rejected key is zeroed and never returned.
 * @throws RangeError when `t` is not an integer in 2..255.
 */
export async function combineShards(
  envelopes: readonly ShardEnvelope[],
  t: number,
  expectedKcv?: string,
): Promise<Uint8Array> {
  if (!Number.isInteger(t) || t < 2 || t > MAX_SHARES) {
    throw new RangeError('threshold must be an integer from 2 to 255');
  }
  const checked = envelopes.map((envelope) => parseShardEnvelope(envelope));
  const first = checked[0];
  if (first === undefined) throw badRequest(`not enough shards: ${t} required`);
  for (const envelope of checked) {
    if (envelope.generation !== first.generation) {
      throw badRequest('shards from different generations cannot be combined');
    }
    if (envelope.kcv !== first.kcv) {
      throw badRequest('shards carry different key-check values');
    }
  }
  if (expectedKcv !== undefined && !kcvEquals(expectedKcv, first.kcv)) {
    throw new SpikeError('crypto_cipher_verification_failed', 'shards belong to a different key');
  }
  const byIndex = new Map<number, ShardEnvelope>();
  for (const envelope of checked) {
    const seen = byIndex.get(envelope.index);
    if (seen === undefined) byIndex.set(envelope.index, envelope);
    else if (seen.shard !== envelope.shard) {
      throw badRequest('conflicting shards for one index');
    }
  }
  if (byIndex.size < t) throw badRequest(`not enough shards: ${t} required`);

  const shares: Uint8Array[] = [];
  let key: Uint8Array | undefined;
  try {
    const xs = new Set<number>();
    for (const envelope of byIndex.values()) {
      const share = decodeShare(envelope.shard);
      shares.push(share);
      const x = share[ROOT_KEY_LENGTH]!;
      if (xs.has(x)) throw badRequest('two shards share one x-coordinate');
      xs.add(x);
    }
    key = await combine(shares);
    const kcv = await computeKcv(key);
    if (!kcvEquals(kcv, first.kcv)) {
      throw new SpikeError(
        'crypto_cipher_verification_failed',
        'reconstructed key failed verification',
      );
    }
    const result = key;
    key = undefined;
    return result;
  } finally {
    zero(key, ...shares);
  }
}

const RECOVERY_LINE =
  /^spike-recovery:1:([1-9][0-9]{0,2}):([0-9a-f]{32}):([0-9a-f]{32}):([0-9a-f]{66})$/;

/**
 * Formats an envelope as a recovery-file line, without a newline (docs/spike-api.md §11
 * "Recovery file"): `spike-recovery:1:<index>:<generation>:<kcv>:<shard>`.
 *
 * @throws SpikeError `api_bad_request` when the envelope is invalid.
 */
export function formatRecoveryLine(envelope: ShardEnvelope): string {
  const e = parseShardEnvelope(envelope);
  return `spike-recovery:${e.version}:${e.index}:${e.generation}:${e.kcv}:${e.shard}`;
}

/**
 * Parses one recovery-file line (docs/spike-api.md §11 grammar; index ≤ 255; shard rules of §9). The
 * line is taken as is: trimming user input is the caller's business. Upstream `spike:<id>:<hex>`
 * lines and every other form are rejected with one message.
 *
 * @throws SpikeError `api_bad_request` with message `invalid shard format`.
 */
export function parseRecoveryLine(line: string): ShardEnvelope {
  const invalid = (): SpikeError => badRequest('invalid shard format');
  if (typeof line !== 'string') throw invalid();
  const m = RECOVERY_LINE.exec(line);
  if (m === null) throw invalid();
  try {
    return parseShardEnvelope({
      version: SHARD_ENVELOPE_VERSION,
      index: Number(m[1]),
      generation: m[2],
      kcv: m[3],
      shard: m[4],
    });
  } catch {
    throw invalid();
  }
}
