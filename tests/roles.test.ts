/**
 * SPIKE roles (docs/spike-api.md §1) and the wire peer ID re-check (§2), plus property tests tying
 * the role matcher and the SPIFFE ID parser (docs/spiffe.md §3) together.
 */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { isSpikeError } from '../src/core/errors.ts';
import { isSpiffeId, parseSpiffeId } from '../src/core/spiffe/id.ts';
import {
  hasRole,
  isWirePeerId,
  parseTrustRoots,
  ROLE_PATHS,
  roleOf,
  SPIKE_ROLES,
  type SpikeRole,
} from '../src/core/spike/roles.ts';

const DEFAULT_ROOTS = Object.fromEntries(SPIKE_ROLES.map((r) => [r, ['spike.ist']])) as Record<
  SpikeRole,
  string[]
>;

describe('SPIKE roles (docs/spike-api.md §1)', () => {
  it('role paths are the upstream ones', () => {
    expect(ROLE_PATHS).toEqual({
      nexus: '/spike/nexus',
      keeper: '/spike/keeper',
      bootstrap: '/spike/bootstrap',
      superuser: '/spike/pilot/role/superuser',
      recover: '/spike/pilot/role/recover',
      restore: '/spike/pilot/role/restore',
      'lite-workload': '/spike/workload/role/lite',
    });
  });

  it('matches the exact ID or a /-suffixed child, under a listed trust domain only', () => {
    const tds = ['spike.ist'];
    expect(hasRole('spiffe://spike.ist/spike/nexus', 'nexus', tds)).toBe(true);
    expect(hasRole('spiffe://spike.ist/spike/nexus/instance-1', 'nexus', tds)).toBe(true);
    expect(hasRole('spiffe://spike.ist/spike/nexu', 'nexus', tds)).toBe(false);
    expect(hasRole('spiffe://spike.ist/spike/nexus-2', 'nexus', tds)).toBe(false);
    expect(hasRole('spiffe://spike.ist/spike/nexusx/a', 'nexus', tds)).toBe(false);
    expect(hasRole('spiffe://other.org/spike/nexus', 'nexus', tds)).toBe(false);
    expect(hasRole('spiffe://other.org/spike/nexus', 'nexus', ['spike.ist', 'other.org'])).toBe(
      true,
    );
    expect(hasRole('spiffe://spike.ist/spike', 'nexus', tds)).toBe(false);
    expect(hasRole('spiffe://spike.ist/x/spike/nexus', 'nexus', tds)).toBe(false);
  });

  it('matches only after strict parsing', () => {
    const tds = ['spike.ist'];
    for (const bad of [
      'spiffe://spike.ist/spike/nexus/',
      'spiffe://spike.ist/spike/nexus/../keeper',
      'spiffe://spike.ist/spike/nexus//x',
      'spiffe://Spike.ist/spike/nexus',
      'SPIFFE://spike.ist/spike/nexus',
      'spiffe://spike.ist:443/spike/nexus',
      'spiffe://spike.ist/spike/nexus?x',
    ]) {
      expect(hasRole(bad, 'nexus', tds)).toBe(false);
    }
    // An invalid trust-root entry matches nothing (and does not throw).
    expect(hasRole('spiffe://spike.ist/spike/nexus', 'nexus', ['Spike.IST'])).toBe(false);
  });

  it('roleOf: each role under its own trust roots; everything else is a workload', () => {
    expect(roleOf('spiffe://spike.ist/spike/nexus', DEFAULT_ROOTS)).toBe('nexus');
    expect(roleOf('spiffe://spike.ist/spike/keeper/1', DEFAULT_ROOTS)).toBe('keeper');
    expect(roleOf('spiffe://spike.ist/spike/bootstrap', DEFAULT_ROOTS)).toBe('bootstrap');
    expect(roleOf('spiffe://spike.ist/spike/pilot/role/superuser', DEFAULT_ROOTS)).toBe(
      'superuser',
    );
    expect(roleOf('spiffe://spike.ist/spike/pilot/role/recover', DEFAULT_ROOTS)).toBe('recover');
    expect(roleOf('spiffe://spike.ist/spike/pilot/role/restore', DEFAULT_ROOTS)).toBe('restore');
    expect(roleOf('spiffe://spike.ist/spike/workload/role/lite/app', DEFAULT_ROOTS)).toBe(
      'lite-workload',
    );
    expect(roleOf('spiffe://spike.ist/spike/pilot', DEFAULT_ROOTS)).toBe('workload');
    expect(roleOf('spiffe://spike.ist/app/web', DEFAULT_ROOTS)).toBe('workload');
    expect(roleOf('not an id', DEFAULT_ROOTS)).toBe('workload');
    const roots = { ...DEFAULT_ROOTS, superuser: ['ops.example'] };
    expect(roleOf('spiffe://spike.ist/spike/pilot/role/superuser', roots)).toBe('workload');
    expect(roleOf('spiffe://ops.example/spike/pilot/role/superuser', roots)).toBe('superuser');
  });

  it('parseTrustRoots: comma separated, trimmed, default spike.ist', () => {
    expect(parseTrustRoots(undefined)).toEqual(['spike.ist']);
    expect(parseTrustRoots('')).toEqual(['spike.ist']);
    expect(parseTrustRoots('  ')).toEqual(['spike.ist']);
    expect(parseTrustRoots('a.org')).toEqual(['a.org']);
    expect(parseTrustRoots(' a.org , b.org,')).toEqual(['a.org', 'b.org']);
    expect(parseTrustRoots('a.org,a.org')).toEqual(['a.org']);
    for (const bad of ['A.org', 'a.org,b org', 'a.org:443', 'spiffe://a.org/x']) {
      let error: unknown;
      try {
        parseTrustRoots(bad);
      } catch (e) {
        error = e;
      }
      expect(isSpikeError(error) && error.code === 'config_invalid').toBe(true);
    }
  });
});

describe('peer ID re-check (docs/spike-api.md §2)', () => {
  it('accepts SPIFFE IDs of the wire alphabet and rejects the rest', () => {
    for (const ok of [
      'spiffe://spike.ist',
      'spiffe://spike.ist/spike/nexus',
      'spiffe://a-b.c/x_y/Z.9-',
    ]) {
      expect(isWirePeerId(ok)).toBe(true);
    }
    for (const bad of [
      '',
      'spiffe://',
      'spiffe://td/',
      'spiffe://td//a',
      'spiffe://t_d/a', // `_` is not in the §2 trust-domain class
      'spiffe://td/a b',
      'spiffe://td/a\n',
      'spiffe://td:1/a',
      'https://td/a',
      `spiffe://td/${'a'.repeat(2048)}`,
    ]) {
      expect(isWirePeerId(bad)).toBe(false);
    }
  });
});

// Generators for the property tests: valid IDs from the grammar of docs/spiffe.md §3.
const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const pathChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''),
);
const trustDomain = fc.string({ unit: tdChar, minLength: 1, maxLength: 20 });
const segment = fc
  .string({ unit: pathChar, minLength: 1, maxLength: 10 })
  .filter((s) => s !== '.' && s !== '..');
const path = fc.array(segment, { maxLength: 5 }).map((s) => s.map((x) => `/${x}`).join(''));

describe('properties', () => {
  it('every ID built from the grammar parses and round-trips byte for byte', () => {
    fc.assert(
      fc.property(trustDomain, path, (td, p) => {
        const id = parseSpiffeId(`spiffe://${td}${p}`);
        return id.trustDomain === td && id.path === p && id.toString() === `spiffe://${td}${p}`;
      }),
    );
  });

  it('any string the parser accepts re-serialises to itself (no normalisation)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const value = `spiffe://${s}`;
        if (!isSpiffeId(value)) return true;
        return parseSpiffeId(value).toString() === value;
      }),
      { numRuns: 2000 },
    );
  });

  it('a role matches exactly its path and /-children, never a sibling prefix', () => {
    const role = fc.constantFrom(...SPIKE_ROLES);
    fc.assert(
      fc.property(role, trustDomain, path, segment, (r, td, tail, extra) => {
        const base = `spiffe://${td}${ROLE_PATHS[r]}`;
        const child = `${base}${tail}`;
        const sibling = `${base}${extra}${tail}`;
        return (
          hasRole(base, r, [td]) &&
          hasRole(child, r, [td]) &&
          !hasRole(sibling, r, [td]) &&
          !hasRole(child, r, [`${td}x`]) &&
          roleOf(child, { ...DEFAULT_ROOTS, [r]: [td] }) === r
        );
      }),
    );
  });

  it('every strictly valid ID without `_` in its trust domain passes the wire re-check', () => {
    const unit = fc.constantFrom(...'aZ09._-/%:@?#A '.split(''));
    let valid = 0;
    fc.assert(
      fc.property(fc.string({ unit, minLength: 1, maxLength: 30 }), (s) => {
        const value = `spiffe://${s}`;
        if (!isSpiffeId(value) || parseSpiffeId(value).trustDomain.includes('_')) return true;
        valid++;
        return isWirePeerId(value);
      }),
      { numRuns: 3000 },
    );
    expect(valid).toBeGreaterThan(50);
  });
});
