/**
 * Shamir custody (src/core/shamir/shards.ts) against docs/spike-api.md §9 and §11: property tests
 * with fast-check (any t of n combine; t−1 never give the key; splits never mix; corruption never
 * yields a wrong key), the envelope and recovery-line grammars, and the restore table.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { combine } from 'shamir-secret-sharing';
import { equalBytes, fromHex, toHex } from '../../src/core/bytes.ts';
import { computeKcv } from '../../src/core/crypto/keys.ts';
import { isSpikeError, type SpikeErrorCode } from '../../src/core/errors.ts';
import { RestoreCollector, RestoreRefusal } from '../../src/core/shamir/restore-collector.ts';
import {
  combineShards,
  formatRecoveryLine,
  groupByGeneration,
  parseRecoveryLine,
  parseShardEnvelope,
  type ShardEnvelope,
  splitRootKey,
} from '../../src/core/shamir/shards.ts';
import type { Harness } from './harness.ts';

const RUNS = 25;

/** The upstream fields of a restore status (the held generation and threshold are checked apart). */
function progress(status: { collected: number; remaining: number; restored: boolean }) {
  return { collected: status.collected, remaining: status.remaining, restored: status.restored };
}

function randomKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** Asserts that `promise` rejects with a SpikeError of `code` whose message holds no shard. */
async function rejectsWith(
  promise: Promise<unknown>,
  codes: SpikeErrorCode | readonly SpikeErrorCode[],
  secrets: readonly string[] = [],
): Promise<void> {
  const wanted = typeof codes === 'string' ? [codes] : codes;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isSpikeError(error), `expected SpikeError, got ${String(error)}`);
    assert.ok(wanted.includes(error.code), `unexpected code ${error.code}`);
    for (const s of secrets) assert.ok(!error.message.includes(s), 'message leaks shard');
    return true;
  });
}

function throwsWith(fn: () => unknown, code: SpikeErrorCode, message?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isSpikeError(error), `expected SpikeError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  });
}

/** n, t with 2 ≤ t ≤ n ≤ 12 (small enough to run many cases quickly). */
const nt = fc
  .integer({ min: 2, max: 12 })
  .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 2, max: n })));

function withShard(envelope: ShardEnvelope, shard: string): ShardEnvelope {
  return { ...envelope, shard };
}

/** A valid envelope for grammar tests (not part of any real split). */
const SAMPLE: ShardEnvelope = {
  version: 1,
  index: 3,
  generation: '0123456789abcdef0123456789abcdef',
  kcv: 'fedcba9876543210fedcba9876543210',
  shard: `${'ab'.repeat(32)}07`,
};

export function suite(t: Harness): void {
  t.describe('shamir shards', () => {
    t.it('splitRootKey mints one generation and n well-formed envelopes', async () => {
      const key = randomKey();
      const kcv = await computeKcv(key);
      const envelopes = await splitRootKey(key, 5, 3);
      assert.equal(envelopes.length, 5);
      assert.deepEqual(
        envelopes.map((e) => e.index),
        [1, 2, 3, 4, 5],
      );
      const xs = new Set<string>();
      for (const e of envelopes) {
        assert.equal(e.version, 1);
        assert.equal(e.generation, envelopes[0]!.generation);
        assert.match(e.generation, /^[0-9a-f]{32}$/);
        assert.equal(e.kcv, kcv);
        assert.match(e.shard, /^[0-9a-f]{66}$/);
        assert.notEqual(e.shard.slice(-2), '00');
        xs.add(e.shard.slice(-2));
        assert.deepEqual(parseShardEnvelope(JSON.parse(JSON.stringify(e))), e);
      }
      assert.equal(xs.size, 5, 'x-coordinates are distinct');
      const again = await splitRootKey(key, 5, 3, kcv);
      assert.notEqual(again[0]!.generation, envelopes[0]!.generation);
      assert.notEqual(again[0]!.shard, envelopes[0]!.shard, 'splits are randomised');
      // The caller's key is untouched.
      assert.equal(await computeKcv(key), kcv);
    });

    t.it('splitRootKey refuses bad parameters', async () => {
      const key = randomKey();
      await assert.rejects(splitRootKey(new Uint8Array(31), 3, 2), RangeError);
      await assert.rejects(splitRootKey(key, 3, 1), RangeError);
      await assert.rejects(splitRootKey(key, 2, 3), RangeError);
      await assert.rejects(splitRootKey(key, 256, 2), RangeError);
      await assert.rejects(splitRootKey(key, 3.5, 2), RangeError);
      await assert.rejects(splitRootKey(key, 3, 2, '00'.repeat(16)), RangeError);
    });

    t.it('splits at the limits: n = t = 2 and n = 255', async () => {
      const key = randomKey();
      const two = await splitRootKey(key, 2, 2);
      assert.ok(equalBytes(await combineShards(two, 2), key));
      const many = await splitRootKey(key, 255, 3);
      assert.equal(many.length, 255);
      assert.equal(new Set(many.map((e) => e.shard.slice(-2))).size, 255);
      assert.ok(equalBytes(await combineShards([many[254]!, many[0]!, many[100]!], 3), key));
    });

    t.it('any t of n envelopes combine to the key', async () => {
      await fc.assert(
        fc.asyncProperty(
          nt.chain(([n, th]) =>
            fc.tuple(
              fc.constant(n),
              fc.constant(th),
              fc.shuffledSubarray(
                Array.from({ length: n }, (_, i) => i),
                { minLength: th, maxLength: n },
              ),
            ),
          ),
          async ([n, th, picks]) => {
            const key = randomKey();
            const envelopes = await splitRootKey(key, n, th);
            const chosen = picks.map((i) => envelopes[i]!);
            const got = await combineShards(chosen, th, envelopes[0]!.kcv);
            assert.ok(equalBytes(got, key));
          },
        ),
        { numRuns: RUNS },
      );
    });

    t.it('t−1 envelopes never reconstruct the key', async () => {
      await fc.assert(
        fc.asyncProperty(
          nt
            .filter(([, th]) => th >= 3)
            .chain(([n, th]) =>
              fc.tuple(
                fc.constant(n),
                fc.constant(th),
                fc.shuffledSubarray(
                  Array.from({ length: n }, (_, i) => i),
                  { minLength: th - 1, maxLength: th - 1 },
                ),
              ),
            ),
          async ([n, th, picks]) => {
            const key = randomKey();
            const envelopes = await splitRootKey(key, n, th);
            const chosen = picks.map((i) => envelopes[i]!);
            // Asking for t with t−1 shares is refused outright.
            await rejectsWith(combineShards(chosen, th), 'api_bad_request');
            // Interpolating the t−1 shares anyway gives another value, which the KCV rejects.
            const raw = await combine(chosen.map((e) => fromHex(e.shard)));
            assert.ok(!equalBytes(raw, key));
            await rejectsWith(combineShards(chosen, th - 1), 'crypto_cipher_verification_failed');
          },
        ),
        { numRuns: RUNS },
      );
    });

    t.it('one share of a t = 2 split is not the key', async () => {
      const key = randomKey();
      const [one] = await splitRootKey(key, 3, 2);
      assert.ok(!equalBytes(fromHex(one!.shard).subarray(0, 32), key));
      await rejectsWith(combineShards([one!], 2), 'api_bad_request');
    });

    t.it('envelopes of two splits never combine', async () => {
      await fc.assert(
        fc.asyncProperty(nt, fc.boolean(), async ([n, th], sameKey) => {
          const key = randomKey();
          const a = await splitRootKey(key, n, th);
          const b = await splitRootKey(sameKey ? key : randomKey(), n, th);
          const mixed = [...a.slice(0, th - 1), b[th - 1]!];
          await rejectsWith(combineShards(mixed, th), 'api_bad_request');
          // Even relabelled as one generation, shares of another split give no key.
          const forged = mixed.map((e) => ({ ...e, generation: a[0]!.generation, kcv: a[0]!.kcv }));
          const secrets = forged.map((e) => e.shard);
          await rejectsWith(
            combineShards(forged, th),
            ['crypto_cipher_verification_failed', 'api_bad_request'],
            secrets,
          );
        }),
        { numRuns: RUNS },
      );
    });

    t.it('a corrupted shard never yields a wrong key', async () => {
      await fc.assert(
        fc.asyncProperty(
          nt,
          fc.nat(),
          fc.integer({ min: 0, max: 32 }),
          fc.integer({ min: 1, max: 255 }),
          async ([n, th], which, byte, mask) => {
            const key = randomKey();
            const envelopes = (await splitRootKey(key, n, th)).slice(0, th);
            const victim = which % th;
            const bytes = fromHex(envelopes[victim]!.shard);
            bytes[byte] = bytes[byte]! ^ mask;
            const corrupted = envelopes.map((e, i) =>
              i === victim ? withShard(e, toHex(bytes)) : e,
            );
            try {
              const got = await combineShards(corrupted, th);
              // Only possible if the corruption left the interpolation unchanged.
              assert.ok(equalBytes(got, key), 'a wrong key was returned');
            } catch (error) {
              assert.ok(isSpikeError(error));
              assert.ok(
                error.code === 'crypto_cipher_verification_failed' ||
                  error.code === 'api_bad_request',
              );
              for (const e of corrupted) assert.ok(!error.message.includes(e.shard));
            }
          },
        ),
        { numRuns: RUNS * 2 },
      );
    });

    t.it('combineShards checks the expected KCV, duplicates and coordinates', async () => {
      const key = randomKey();
      const envelopes = await splitRootKey(key, 4, 2);
      const [e1, e2, e3] = envelopes as [ShardEnvelope, ShardEnvelope, ShardEnvelope];
      await rejectsWith(
        combineShards([e1, e2], 2, 'ff'.repeat(16)),
        'crypto_cipher_verification_failed',
      );
      // The same envelope twice counts once.
      await rejectsWith(combineShards([e1, e1], 2), 'api_bad_request');
      assert.ok(equalBytes(await combineShards([e1, e1, e2], 2), key));
      // Two different shards under one index.
      await rejectsWith(combineShards([e1, { ...e2, index: e1.index }], 2), 'api_bad_request');
      // Two indices with one x-coordinate.
      const sameX = withShard(e3, `${e3.shard.slice(0, 64)}${e1.shard.slice(64)}`);
      await rejectsWith(combineShards([e1, sameX], 2), 'api_bad_request');
      // More than t shares work too.
      assert.ok(equalBytes(await combineShards(envelopes, 2), key));
      await assert.rejects(combineShards(envelopes, 1), RangeError);
    });

    t.it('groupByGeneration keeps generations apart in order of appearance', async () => {
      const key = randomKey();
      const a = await splitRootKey(key, 3, 2);
      const b = await splitRootKey(key, 3, 2);
      const groups = groupByGeneration([b[0]!, a[0]!, b[1]!, a[2]!]);
      assert.deepEqual([...groups.keys()], [b[0]!.generation, a[0]!.generation]);
      assert.deepEqual(groups.get(b[0]!.generation), [b[0], b[1]]);
      assert.ok(equalBytes(await combineShards(groups.get(a[0]!.generation)!, 2), key));
    });
  });

  t.describe('shard envelope', () => {
    t.it('accepts a valid envelope, Go-style keys, and ignores unknown keys', () => {
      assert.deepEqual(parseShardEnvelope({ ...SAMPLE }), SAMPLE);
      assert.deepEqual(
        parseShardEnvelope({
          Version: 1,
          INDEX: 3,
          Generation: SAMPLE.generation,
          KCV: SAMPLE.kcv,
          Shard: SAMPLE.shard,
          extra: 'x',
        }),
        SAMPLE,
      );
      // An exact key wins over a case-folded one.
      assert.equal(parseShardEnvelope({ ...SAMPLE, Index: 9 }).index, 3);
      assert.equal(parseShardEnvelope({ ...SAMPLE, index: 1 }).index, 1);
      assert.equal(parseShardEnvelope({ ...SAMPLE, index: 255 }).index, 255);
    });

    const bad: [string, unknown][] = [
      ['null', null],
      ['array', [SAMPLE]],
      ['string', 'x'],
      ['number', 1],
      ['empty object', {}],
      ['version 2', { ...SAMPLE, version: 2 }],
      ['version 0', { ...SAMPLE, version: 0 }],
      ['version string', { ...SAMPLE, version: '1' }],
      ['missing index', { ...SAMPLE, index: undefined }],
      ['index 0', { ...SAMPLE, index: 0 }],
      ['index 256', { ...SAMPLE, index: 256 }],
      ['index -1', { ...SAMPLE, index: -1 }],
      ['index 1.5', { ...SAMPLE, index: 1.5 }],
      ['index string', { ...SAMPLE, index: '3' }],
      ['index NaN', { ...SAMPLE, index: Number.NaN }],
      ['generation uppercase', { ...SAMPLE, generation: SAMPLE.generation.toUpperCase() }],
      ['generation short', { ...SAMPLE, generation: SAMPLE.generation.slice(1) }],
      ['generation long', { ...SAMPLE, generation: `${SAMPLE.generation}0` }],
      ['generation number', { ...SAMPLE, generation: 1 }],
      ['kcv non-hex', { ...SAMPLE, kcv: `${SAMPLE.kcv.slice(1)}g` }],
      ['kcv missing', { ...SAMPLE, kcv: undefined }],
      ['shard 64 hex (upstream size)', { ...SAMPLE, shard: SAMPLE.shard.slice(2) }],
      ['shard 68 hex', { ...SAMPLE, shard: `${SAMPLE.shard}00` }],
      ['shard uppercase', { ...SAMPLE, shard: SAMPLE.shard.toUpperCase() }],
      ['shard int array (upstream)', { ...SAMPLE, shard: Array.from({ length: 32 }, () => 1) }],
      ['shard base64', { ...SAMPLE, shard: btoa('x'.repeat(33)) }],
      ['all-zero shard', { ...SAMPLE, shard: '00'.repeat(33) }],
      ['all-zero y bytes', { ...SAMPLE, shard: `${'00'.repeat(32)}05` }],
      ['x-coordinate 0', { ...SAMPLE, shard: `${'ab'.repeat(32)}00` }],
    ];
    for (const [name, value] of bad) {
      t.it(`rejects ${name} with api_bad_request and no shard in the message`, () => {
        assert.throws(
          () => parseShardEnvelope(value),
          (error: unknown) => {
            assert.ok(isSpikeError(error));
            assert.equal(error.code, 'api_bad_request');
            assert.ok(!error.message.includes('abab'), 'message echoes the shard');
            return true;
          },
        );
      });
    }
  });

  t.describe('recovery lines', () => {
    t.it('round-trip: format then parse gives the envelope back', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 2, max: 6 }), async (n) => {
          const envelopes = await splitRootKey(randomKey(), n, 2);
          for (const e of envelopes) {
            const line = formatRecoveryLine(e);
            assert.equal(line, `spike-recovery:1:${e.index}:${e.generation}:${e.kcv}:${e.shard}`);
            assert.ok(!line.includes('\n'));
            assert.deepEqual(parseRecoveryLine(line), e);
          }
        }),
        { numRuns: 10 },
      );
      assert.equal(parseRecoveryLine(formatRecoveryLine({ ...SAMPLE, index: 255 })).index, 255);
    });

    t.it('any t recovery lines of one generation restore the key', async () => {
      const key = randomKey();
      const lines = (await splitRootKey(key, 5, 3)).map(formatRecoveryLine);
      const parsed = [lines[4]!, lines[1]!, lines[2]!].map(parseRecoveryLine);
      assert.ok(equalBytes(await combineShards(parsed, 3), key));
    });

    const good = formatRecoveryLine(SAMPLE);
    const g = SAMPLE.generation;
    const k = SAMPLE.kcv;
    const s = SAMPLE.shard;
    const malformed: [string, string][] = [
      ['upstream spike:<id>:<hex64>', `spike:1:${'ab'.repeat(32)}`],
      ['upstream with our shard', `spike:3:${s}`],
      ['empty', ''],
      ['prefix only', 'spike-recovery:1:'],
      ['format version 2', `spike-recovery:2:3:${g}:${k}:${s}`],
      ['format version 01', `spike-recovery:01:3:${g}:${k}:${s}`],
      ['index 0', `spike-recovery:1:0:${g}:${k}:${s}`],
      ['index 256', `spike-recovery:1:256:${g}:${k}:${s}`],
      ['index 999', `spike-recovery:1:999:${g}:${k}:${s}`],
      ['index 1000', `spike-recovery:1:1000:${g}:${k}:${s}`],
      ['index leading zero', `spike-recovery:1:03:${g}:${k}:${s}`],
      ['index sign', `spike-recovery:1:+3:${g}:${k}:${s}`],
      ['index missing', `spike-recovery:1::${g}:${k}:${s}`],
      ['generation uppercase', `spike-recovery:1:3:${g.toUpperCase()}:${k}:${s}`],
      ['generation short', `spike-recovery:1:3:${g.slice(2)}:${k}:${s}`],
      ['kcv long', `spike-recovery:1:3:${g}:${k}00:${s}`],
      ['kcv missing', `spike-recovery:1:3:${g}:${s}`],
      ['shard 64 hex', `spike-recovery:1:3:${g}:${k}:${s.slice(2)}`],
      ['shard uppercase', `spike-recovery:1:3:${g}:${k}:${s.toUpperCase()}`],
      ['all-zero shard', `spike-recovery:1:3:${g}:${k}:${'00'.repeat(33)}`],
      ['x-coordinate 0', `spike-recovery:1:3:${g}:${k}:${'ab'.repeat(32)}00`],
      ['extra field', `${good}:00`],
      ['trailing newline', `${good}\n`],
      ['trailing CRLF', `${good}\r\n`],
      ['leading space', ` ${good}`],
      ['trailing space', `${good} `],
      ['uppercase prefix', good.replace('spike-recovery', 'SPIKE-RECOVERY')],
      ['JSON envelope', JSON.stringify(SAMPLE)],
      ['two lines', `${good}\n${good}`],
    ];
    for (const [name, line] of malformed) {
      t.it(`rejects ${name}`, () => {
        throwsWith(() => parseRecoveryLine(line), 'api_bad_request', 'invalid shard format');
      });
    }

    t.it('rejects random strings', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 200 }), (line) => {
          throwsWith(() => parseRecoveryLine(line), 'api_bad_request', 'invalid shard format');
        }),
        { numRuns: 200 },
      );
    });

    t.it('formatRecoveryLine refuses an invalid envelope', () => {
      throwsWith(
        () => formatRecoveryLine({ ...SAMPLE, shard: '00'.repeat(33) }),
        'api_bad_request',
      );
    });
  });

  t.describe('restore collector (docs/spike-api.md §9 restore table)', () => {
    t.it('collects to t, then returns the verified key and starts over', async () => {
      const key = randomKey();
      const kcv = await computeKcv(key);
      const envelopes = await splitRootKey(key, 5, 3);
      const collector = new RestoreCollector(3, kcv);
      assert.deepEqual(progress(collector.status()), {
        collected: 0,
        remaining: 3,
        restored: false,
      });
      let step = await collector.add(JSON.parse(JSON.stringify(envelopes[4])));
      assert.deepEqual(progress(step.status), { collected: 1, remaining: 2, restored: false });
      assert.equal(step.rootKey, undefined);
      step = await collector.add(envelopes[0]);
      assert.deepEqual(progress(step.status), { collected: 2, remaining: 1, restored: false });
      step = await collector.add(envelopes[2]);
      assert.deepEqual(progress(step.status), { collected: 3, remaining: 0, restored: true });
      assert.ok(step.rootKey !== undefined && equalBytes(step.rootKey, key));
      assert.ok(!JSON.stringify(step.status).includes(toHex(key)));
      assert.deepEqual(progress(collector.status()), {
        collected: 0,
        remaining: 3,
        restored: false,
      });
    });

    t.it(
      'the first envelope fixes generation and KCV; a mismatch leaves the set unchanged',
      async () => {
        const key = randomKey();
        const a = await splitRootKey(key, 3, 3);
        const b = await splitRootKey(key, 3, 3);
        const other = await splitRootKey(randomKey(), 3, 3);
        const collector = new RestoreCollector(3);
        await collector.add(a[0]);
        await rejectsWith(collector.add(b[1]), 'api_bad_request', [b[1]!.shard]);
        assert.deepEqual(progress(collector.status()), {
          collected: 1,
          remaining: 2,
          restored: false,
        });
        await rejectsWith(collector.add({ ...a[1]!, kcv: other[0]!.kcv }), 'api_bad_request');
        assert.deepEqual(progress(collector.status()), {
          collected: 1,
          remaining: 2,
          restored: false,
        });
        await rejectsWith(collector.add({ ...a[1]!, index: 0 }), 'api_bad_request');
        await rejectsWith(collector.add({ ...a[1]!, shard: '00'.repeat(33) }), 'api_bad_request');
        await rejectsWith(collector.add('spike:1:abcd'), 'api_bad_request');
        assert.deepEqual(progress(collector.status()), {
          collected: 1,
          remaining: 2,
          restored: false,
        });
        await collector.add(a[1]);
        const done = await collector.add(a[2]);
        assert.equal(done.status.restored, true);
        assert.ok(equalBytes(done.rootKey!, key));
      },
    );

    t.it('a duplicate index changes nothing', async () => {
      const envelopes = await splitRootKey(randomKey(), 3, 2);
      const collector = new RestoreCollector(2);
      await collector.add(envelopes[1]);
      const again = await collector.add(envelopes[1]);
      assert.deepEqual(progress(again.status), { collected: 1, remaining: 1, restored: false });
      // Another share under the same index is a duplicate index too.
      const other = await collector.add({ ...envelopes[2]!, index: envelopes[1]!.index });
      assert.deepEqual(progress(other.status), { collected: 1, remaining: 1, restored: false });
      assert.equal(other.rootKey, undefined);
    });

    t.it('a key that does not match the stored KCV is discarded with the shares', async () => {
      const key = randomKey();
      const stored = await computeKcv(randomKey());
      const envelopes = await splitRootKey(key, 3, 2);
      const collector = new RestoreCollector(2, stored);
      await collector.add(envelopes[0]);
      await rejectsWith(collector.add(envelopes[1]), 'crypto_cipher_verification_failed');
      assert.deepEqual(progress(collector.status()), {
        collected: 0,
        remaining: 2,
        restored: false,
      });
    });

    t.it('a corrupted share at t fails verification and empties the set', async () => {
      const key = randomKey();
      const envelopes = await splitRootKey(key, 3, 2);
      const bytes = fromHex(envelopes[1]!.shard);
      bytes[0] = bytes[0]! ^ 1;
      const collector = new RestoreCollector(2, envelopes[0]!.kcv);
      await collector.add(envelopes[0]);
      await rejectsWith(
        collector.add(withShard(envelopes[1]!, toHex(bytes))),
        'crypto_cipher_verification_failed',
      );
      assert.deepEqual(progress(collector.status()), {
        collected: 0,
        remaining: 2,
        restored: false,
      });
      // A fresh, correct set still restores.
      await collector.add(envelopes[2]);
      const done = await collector.add(envelopes[0]);
      assert.ok(equalBytes(done.rootKey!, key));
    });

    t.it('a repeated x-coordinate under another index is refused, set unchanged', async () => {
      const envelopes = await splitRootKey(randomKey(), 3, 3);
      const collector = new RestoreCollector(3);
      await collector.add(envelopes[0]);
      const sameX = withShard(
        envelopes[1]!,
        `${envelopes[1]!.shard.slice(0, 64)}${envelopes[0]!.shard.slice(64)}`,
      );
      await rejectsWith(collector.add(sameX), 'api_bad_request');
      assert.deepEqual(progress(collector.status()), {
        collected: 1,
        remaining: 2,
        restored: false,
      });
    });

    t.it('concurrent calls are serialised: exactly one restores', async () => {
      const key = randomKey();
      const envelopes = await splitRootKey(key, 4, 3);
      const collector = new RestoreCollector(3);
      const steps = await Promise.all(envelopes.slice(0, 3).map((e) => collector.add(e)));
      assert.deepEqual(
        steps.map((s) => s.status.collected),
        [1, 2, 3],
      );
      assert.equal(steps.filter((s) => s.status.restored).length, 1);
      assert.ok(equalBytes(steps[2]!.rootKey!, key));
    });

    t.it('reports what it holds; a refusal carries the held state (issue 11)', async () => {
      const a = await splitRootKey(randomKey(), 3, 2);
      const b = await splitRootKey(randomKey(), 3, 2);
      const collector = new RestoreCollector(2);
      assert.deepEqual(collector.status(), {
        collected: 0,
        remaining: 2,
        restored: false,
        generation: '',
        threshold: 2,
      });
      await collector.add(a[0]);
      const held = { collected: 1, remaining: 1, restored: false, generation: a[0]!.generation };
      assert.deepEqual(collector.status(), { ...held, threshold: 2 });
      const refused = await collector.add(b[1]).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof RestoreRefusal);
      assert.match(refused.message, /different generation/);
      assert.equal(refused.code, 'api_bad_request');
      assert.deepEqual(refused.held, { ...held, threshold: 2 });
      assert.ok(!refused.message.includes(b[1]!.shard));
      assert.deepEqual(collector.clear(), {
        collected: 0,
        remaining: 2,
        restored: false,
        generation: '',
        threshold: 2,
      });
      const step = await collector.add(b[1]);
      assert.equal(step.status.generation, b[1]!.generation);
    });

    t.it('every share handed over is zeroed: refused, duplicate, reset or combined', async () => {
      const a = await splitRootKey(randomKey(), 3, 2);
      const b = await splitRootKey(randomKey(), 3, 2);
      const bytesOf = (e: ShardEnvelope) => fromHex(e.shard);
      const zeroed = (bytes: Uint8Array) => bytes.every((x) => x === 0);
      const collector = new RestoreCollector(2);
      const first = bytesOf(a[0]!);
      await collector.add(a[0], first);
      assert.ok(!zeroed(first), 'a collected share is kept until it is used');
      const dup = bytesOf(a[0]!);
      await collector.add(a[0], dup);
      assert.ok(zeroed(dup), 'a duplicate is zeroed');
      const other = bytesOf(b[1]!);
      await rejectsWith(collector.add(b[1], other), 'api_bad_request');
      assert.ok(zeroed(other), 'a refused share is zeroed');
      const bad = new Uint8Array(33).fill(7);
      await assert.rejects(collector.add(a[1], bad), RangeError);
      assert.ok(zeroed(bad), 'bytes that do not match their envelope are zeroed');
      collector.clear();
      assert.ok(zeroed(first), 'reset zeroes the collected shares');
      const one = bytesOf(a[1]!);
      const two = bytesOf(a[2]!);
      await collector.add(a[1], one);
      const done = await collector.add(a[2], two);
      assert.equal(done.status.restored, true);
      assert.ok(zeroed(one) && zeroed(two), 'combined shares are zeroed');
      // Its job done, the collector takes nothing more (the caller answers 409).
      const late = bytesOf(a[0]!);
      await rejectsWith(collector.add(a[0], late), 'state_already_initialized');
      assert.ok(zeroed(late));
    });

    t.it('a failed verification zeroes the collected shares', async () => {
      const a = await splitRootKey(randomKey(), 3, 2);
      const collector = new RestoreCollector(2, await computeKcv(randomKey()));
      const one = fromHex(a[0]!.shard);
      const two = fromHex(a[1]!.shard);
      await collector.add(a[0], one);
      await rejectsWith(collector.add(a[1], two), 'crypto_cipher_verification_failed');
      assert.ok(one.every((x) => x === 0) && two.every((x) => x === 0));
    });

    t.it('refuses a bad threshold or stored KCV', () => {
      assert.throws(() => new RestoreCollector(1), RangeError);
      assert.throws(() => new RestoreCollector(256), RangeError);
      assert.throws(() => new RestoreCollector(2, 'ABC'), RangeError);
    });
  });
}
