/**
 * The pure rules of versioned KV secrets (src/core/kv/semantics.ts, docs/spike-api.md §6). The same
 * rules run against both real backends in tests/store.test.ts; here they are checked alone,
 * including the edge cases that are awkward to reach through a store.
 */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import {
  applyChanges,
  currentVersion,
  effectiveMaxVersions,
  isDeleted,
  isLive,
  nextVersion,
  oldestVersion,
  planDelete,
  planDestroy,
  planUndelete,
  resolveTargets,
  selectPrune,
  selectReadVersion,
  updatedTimeAfter,
  type VersionState,
} from '../src/core/kv/semantics.ts';

const NOW = 1_000_000;
const live = (version: number): VersionState => ({
  version,
  createdAt: version,
  deletedAt: null,
  destroyed: false,
});
const deleted = (version: number, at = NOW - 1): VersionState => ({
  ...live(version),
  deletedAt: at,
});
const destroyed = (version: number): VersionState => ({
  ...live(version),
  deletedAt: NOW - 1,
  destroyed: true,
});
const numbers = (vs: readonly VersionState[]) => vs.map((v) => v.version);

describe('liveness, current and oldest', () => {
  it('a version is live unless deleted (deletedAt ≤ now) or destroyed', () => {
    expect(isLive(live(1), NOW)).toBe(true);
    expect(isLive(deleted(1, NOW), NOW)).toBe(false);
    expect(isLive(deleted(1, NOW + 1), NOW)).toBe(true); // scheduled, not yet effective
    expect(isDeleted(deleted(1, NOW + 1), NOW)).toBe(false);
    expect(isLive({ ...live(1), destroyed: true }, NOW)).toBe(false);
  });

  it('current = highest live, oldest = lowest live, 0 when none', () => {
    const vs = [deleted(1), live(2), live(3), deleted(4), destroyed(5)];
    expect(currentVersion(vs, NOW)).toBe(3);
    expect(oldestVersion(vs, NOW)).toBe(2);
    expect(currentVersion([deleted(1), destroyed(2)], NOW)).toBe(0);
    expect(oldestVersion([deleted(1), destroyed(2)], NOW)).toBe(0);
    expect(currentVersion([], NOW)).toBe(0);
  });

  it('put writes highest ever written + 1', () => {
    expect(nextVersion(0)).toBe(1);
    expect(nextVersion(41)).toBe(42);
  });
});

describe('read resolution (get / metadata)', () => {
  const vs = [live(1), deleted(2), live(3), destroyed(4), deleted(5)];
  it('0 or absent = current; a live older version by number', () => {
    expect(selectReadVersion(vs, undefined, NOW)?.version).toBe(3);
    expect(selectReadVersion(vs, 0, NOW)?.version).toBe(3);
    expect(selectReadVersion(vs, 1, NOW)?.version).toBe(1);
  });
  it('deleted, destroyed, missing, negative and fractional versions resolve to nothing', () => {
    for (const n of [2, 4, 5, 6, 99, -1, -3, 1.5, Number.NaN]) {
      expect(selectReadVersion(vs, n, NOW)).toBeUndefined();
    }
  });
  it('current 0 → nothing', () => {
    expect(selectReadVersion([deleted(1)], undefined, NOW)).toBeUndefined();
    expect(selectReadVersion([], 0, NOW)).toBeUndefined();
  });
});

describe('targets of delete and destroy', () => {
  it('[] = current, 0 = current, negatives and fractions ignored, sorted and unique', () => {
    expect(resolveTargets([], 7)).toEqual([7]);
    expect(resolveTargets([0], 7)).toEqual([7]);
    expect(resolveTargets([3, 0, 3, -1, 2.5, 1], 7)).toEqual([1, 3, 7]);
    expect(resolveTargets([], 0)).toEqual([]);
    expect(resolveTargets([0, -5], 0)).toEqual([]);
  });
});

describe('delete', () => {
  it('stamps now on the listed versions that exist, ignoring unknown ones', () => {
    const vs = [live(1), live(2), live(3)];
    const changes = planDelete(vs, [1, 3, 99, -1], NOW);
    expect(changes).toEqual([
      { ...live(1), deletedAt: NOW },
      { ...live(3), deletedAt: NOW },
    ]);
  });
  it('[] deletes the current version; then the previous live one is current', () => {
    const vs = [live(1), live(2)];
    const after = applyChanges(vs, planDelete(vs, [], NOW));
    expect(currentVersion(after, NOW)).toBe(1);
    expect(isDeleted(after[1]!, NOW)).toBe(true);
  });
  it('re-stamps an already deleted version but leaves destroyed ones alone', () => {
    const vs = [deleted(1, 5), destroyed(2)];
    expect(planDelete(vs, [1, 2], NOW)).toEqual([{ ...deleted(1), deletedAt: NOW }]);
  });
  it('nothing to do when current is 0 and no version is named', () => {
    expect(planDelete([deleted(1)], [], NOW)).toEqual([]);
  });
});

describe('undelete', () => {
  it('clears deletedAt on listed deleted versions', () => {
    const vs = [deleted(1), deleted(2), live(3)];
    expect(numbers(planUndelete(vs, [1, 2, 3, 99], NOW))).toEqual([1, 2]);
    expect(planUndelete(vs, [2], NOW)).toEqual([live(2)]);
  });
  it('[] with a current version names it; it is live, so nothing is undeleted', () => {
    expect(planUndelete([deleted(1), live(2)], [], NOW)).toEqual([]);
  });
  it('[] with current 0 picks the highest deleted version', () => {
    expect(numbers(planUndelete([deleted(1), deleted(3), deleted(2)], [], NOW))).toEqual([3]);
  });
  it('[] with current 0 skips destroyed versions (they can never come back)', () => {
    expect(numbers(planUndelete([deleted(1), deleted(2), destroyed(3)], [], NOW))).toEqual([2]);
    expect(planUndelete([destroyed(1)], [], NOW)).toEqual([]);
  });
  it('0 = current, skipped when current is 0', () => {
    expect(planUndelete([deleted(1)], [0], NOW)).toEqual([]);
    expect(numbers(planUndelete([deleted(1)], [0, 1], NOW))).toEqual([1]);
  });
  it('destroyed, negative and unknown versions are never undeleted', () => {
    expect(planUndelete([destroyed(1), deleted(2)], [1, -2, 7], NOW)).toEqual([]);
  });
  it('a scheduled (future) deletion is not a deletion to undo', () => {
    expect(planUndelete([deleted(1, NOW + 10)], [1], NOW)).toEqual([]);
  });
});

describe('destroy', () => {
  it('marks the named versions destroyed; a live one also becomes deleted now', () => {
    const vs = [live(1), deleted(2, 5), live(3)];
    expect(planDestroy(vs, [1, 2, 42], NOW)).toEqual([
      { ...live(1), destroyed: true, deletedAt: NOW },
      { ...deleted(2, 5), destroyed: true },
    ]);
  });
  it('[] destroys the current version; already destroyed versions are unchanged', () => {
    expect(numbers(planDestroy([live(1), live(2)], [], NOW))).toEqual([2]);
    expect(planDestroy([destroyed(1)], [1], NOW)).toEqual([]);
  });
});

describe('pruning and max versions', () => {
  it('keeps the newest max version numbers', () => {
    expect(selectPrune([1, 2, 3, 4, 5], 3)).toEqual([1, 2]);
    expect(selectPrune([5, 3, 4], 3)).toEqual([]);
    expect(selectPrune([9, 1, 7], 1)).toEqual([1, 7]);
    expect(() => selectPrune([1], 0)).toThrow(RangeError);
  });
  it('effective max = larger of key and mount, else the default', () => {
    expect(effectiveMaxVersions(null, undefined, 10)).toBe(10);
    expect(effectiveMaxVersions(3, 0, 10)).toBe(3);
    expect(effectiveMaxVersions(3, 5, 10)).toBe(5);
    expect(effectiveMaxVersions(0, 0, 7)).toBe(7);
  });
  it('property: prune leaves exactly min(n, max) versions, all newer than every pruned one', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { maxLength: 40 }),
        fc.integer({ min: 1, max: 20 }),
        (versions, max) => {
          const pruned = selectPrune(versions, max);
          const kept = versions.filter((v) => !pruned.includes(v));
          expect(kept.length).toBe(Math.min(versions.length, max));
          if (pruned.length > 0) expect(Math.min(...kept)).toBeGreaterThan(Math.max(...pruned));
        },
      ),
    );
  });
});

describe('updatedTime', () => {
  it('moves only when currentVersion changes', () => {
    const before = [live(1), live(2)];
    expect(
      updatedTimeAfter(before, applyChanges(before, planDelete(before, [1], NOW)), 5, NOW),
    ).toBe(5);
    expect(
      updatedTimeAfter(before, applyChanges(before, planDelete(before, [2], NOW)), 5, NOW),
    ).toBe(NOW);
  });
});

describe('properties over random operation sequences', () => {
  type Op = { op: 'put' } | { op: 'delete' | 'undelete' | 'destroy'; versions: number[] };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.constant<Op>({ op: 'put' }),
    fc.record({
      op: fc.constantFrom('delete' as const, 'undelete' as const, 'destroy' as const),
      versions: fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 3 }),
    }),
  );

  it('current is live or 0; destroyed never comes back; numbers are never reused', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 5 }),
        (ops, max) => {
          let versions: VersionState[] = [];
          let latest = 0;
          const everDestroyed = new Set<number>();
          const written = new Set<number>();
          for (const o of ops) {
            if (o.op === 'put') {
              const v = nextVersion(latest);
              expect(written.has(v)).toBe(false);
              written.add(v);
              latest = v;
              versions = [...versions, live(v)];
              const pruned = new Set(selectPrune(numbers(versions), max));
              versions = versions.filter((x) => !pruned.has(x.version));
              expect(versions.length).toBeLessThanOrEqual(max);
            } else {
              const plan =
                o.op === 'delete' ? planDelete : o.op === 'undelete' ? planUndelete : planDestroy;
              versions = applyChanges(versions, plan(versions, o.versions, NOW));
            }
            for (const v of versions) if (v.destroyed) everDestroyed.add(v.version);
            for (const n of everDestroyed) {
              const v = versions.find((x) => x.version === n);
              if (v !== undefined) expect(v.destroyed).toBe(true);
            }
            const cur = currentVersion(versions, NOW);
            if (cur !== 0) expect(isLive(versions.find((x) => x.version === cur)!, NOW)).toBe(true);
            expect(versions.every((x) => !isLive(x, NOW) || x.version <= cur)).toBe(true);
          }
        },
      ),
    );
  });
});
