/**
 * SPIFFE ID parsing (docs/spiffe.md §3 rows 1–14, §8 hostile rows 24–26), portable.
 *
 * Vectors are the spec table's own examples (taken from the SPIFFE-ID standard and go-spiffe's
 * behaviour); each invalid one must fail with `spiffe_invalid_id` and go-spiffe's message.
 */
import assert from 'node:assert/strict';
import { isSpikeError } from '../../src/core/errors.ts';
import {
  formatSpiffeId,
  isMemberOf,
  isSpiffeId,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdEquals,
} from '../../src/core/spiffe/id.ts';
import type { Harness } from './harness.ts';

const TD_CHARS =
  'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
const PATH_CHARS =
  'path segment characters are limited to letters, numbers, dots, dashes, and underscores';

function rejects(value: string, message: string | RegExp): void {
  assert.throws(
    () => parseSpiffeId(value),
    (error: unknown) => {
      assert.ok(isSpikeError(error), 'expected a SpikeError');
      assert.equal(error.code, 'spiffe_invalid_id');
      if (typeof message === 'string') assert.equal(error.message, message);
      else assert.match(error.message, message);
      return true;
    },
    `expected ${JSON.stringify(value.slice(0, 80))} to be rejected`,
  );
  assert.equal(isSpiffeId(value), false);
}

function accepts(value: string, trustDomain: string, path: string): void {
  const id = parseSpiffeId(value);
  assert.equal(id.trustDomain, trustDomain);
  assert.equal(id.path, path);
  assert.equal(id.toString(), value);
  assert.equal(`${id}`, value);
  assert.equal(isSpiffeId(value), true);
}

export function suite(t: Harness): void {
  t.describe('SPIFFE IDs (docs/spiffe.md §3)', () => {
    t.it('row 1: non-empty', () => {
      accepts('spiffe://td', 'td', '');
      rejects('', 'cannot be empty');
    });

    t.it('row 2: scheme exactly spiffe://, lower case', () => {
      accepts('spiffe://td/a', 'td', '/a');
      for (const bad of ['s', 'spiffe:/', 'Spiffe://td', 'SPIFFE://td/a', 'https://td/a']) {
        rejects(bad, 'scheme is missing or invalid');
      }
    });

    t.it('row 3: trust domain non-empty', () => {
      accepts('spiffe://td', 'td', '');
      rejects('spiffe://', 'trust domain is missing');
      rejects('spiffe:///', 'trust domain is missing');
      rejects('spiffe:///a', 'trust domain is missing');
    });

    t.it('row 4: trust-domain characters [a-z0-9._-] only', () => {
      accepts('spiffe://trust_domain-1.example.org/x', 'trust_domain-1.example.org', '/x');
      accepts('spiffe://192.168.1.1/x', '192.168.1.1', '/x');
      for (const bad of [
        'spiffe://Example.org/x',
        'spiffe://%62%61%64/x',
        'spiffe://td$/x',
        'spiffe://[::1]/x',
        'spiffe://tD',
        'spiffe://t\u0000d/x',
        'spiffe://t\u00e9d/x',
        'spiffe://t d/x',
      ]) {
        rejects(bad, TD_CHARS);
      }
    });

    t.it('row 5: no port, no userinfo', () => {
      rejects('spiffe://td:443/x', TD_CHARS);
      rejects('spiffe://u@td/x', TD_CHARS);
      rejects('spiffe://u:p@td/x', TD_CHARS);
    });

    t.it('row 6: path optional; if present it starts with /', () => {
      accepts('spiffe://td', 'td', '');
      accepts('spiffe://td/a/b', 'td', '/a/b');
      assert.equal(formatSpiffeId('td', '/a/b'), 'spiffe://td/a/b');
      assert.equal(formatSpiffeId('td', ''), 'spiffe://td');
      assert.throws(
        () => formatSpiffeId('td', 'a/b'),
        (e: unknown) =>
          isSpikeError(e) &&
          e.code === 'spiffe_invalid_id' &&
          e.message === 'path must have a leading slash',
      );
    });

    t.it('row 7: path segment characters [a-zA-Z0-9._-], case-sensitive', () => {
      accepts('spiffe://td/Path_1/x-y.z', 'td', '/Path_1/x-y.z');
      assert.equal(spiffeIdEquals('spiffe://td/A', 'spiffe://td/a'), false);
      for (const bad of [
        'spiffe://td/a%2Fb',
        'spiffe://td/a b',
        'spiffe://td/\u00e9',
        'spiffe://td/p$',
        'spiffe://td/a\u0000',
        'spiffe://td/a\\b',
        'spiffe://td/a\u00ff',
      ]) {
        rejects(bad, PATH_CHARS);
      }
    });

    t.it('row 8: no query, no fragment', () => {
      rejects('spiffe://td/a?x=1', PATH_CHARS);
      rejects('spiffe://td/a#f', PATH_CHARS);
      rejects('spiffe://td?x=1', TD_CHARS);
      rejects('spiffe://td#f', TD_CHARS);
    });

    t.it('row 9: no empty segments', () => {
      rejects('spiffe://td//a', 'path cannot contain empty segments');
      rejects('spiffe://td//', 'path cannot contain empty segments');
      rejects('spiffe://td/a//b', 'path cannot contain empty segments');
    });

    t.it('row 10: no trailing slash', () => {
      rejects('spiffe://td/', 'path cannot have a trailing slash');
      rejects('spiffe://td/a/', 'path cannot have a trailing slash');
    });

    t.it('row 11: no . or .. segments (other all-dot names are fine)', () => {
      accepts('spiffe://td/.a', 'td', '/.a');
      accepts('spiffe://td/..a', 'td', '/..a');
      accepts('spiffe://td/...', 'td', '/...');
      accepts('spiffe://td/a./b..', 'td', '/a./b..');
      for (const bad of [
        'spiffe://td/.',
        'spiffe://td/./a',
        'spiffe://td/a/..',
        'spiffe://td/a/../b',
        'spiffe://td/..',
      ]) {
        rejects(bad, 'path cannot contain dot segments');
      }
    });

    t.it('row 12: ID ≤ 2048 bytes, trust domain ≤ 255 bytes', () => {
      const prefix = 'spiffe://td/';
      const id2048 = prefix + 'a'.repeat(2048 - prefix.length);
      assert.equal(id2048.length, 2048);
      accepts(id2048, 'td', id2048.slice('spiffe://td'.length));
      rejects(`${id2048}b`, /longer than 2048 bytes/);
      const td255 = 'a'.repeat(255);
      accepts(`spiffe://${td255}/x`, td255, '/x');
      rejects(`spiffe://${'a'.repeat(256)}/x`, /trust domain cannot be longer than 255 bytes/);
      assert.throws(
        () => parseTrustDomain('a'.repeat(256)),
        (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_trust_domain',
      );
    });

    t.it('row 13: a leaf ID has a non-root path (parser accepts the root ID itself)', () => {
      // The parser accepts `spiffe://td` (it is the trust domain's ID); the leaf rule is
      // enforced by the X.509-SVID validator (x509svid suite, hostile #4).
      const id = parseSpiffeId('spiffe://td');
      assert.equal(id.path, '');
      assert.notEqual(parseSpiffeId('spiffe://td/svc').path, '');
    });

    t.it('row 14: comparison is byte equality after strict parse; member-of is td equality', () => {
      assert.equal(spiffeIdEquals('spiffe://td/a', 'spiffe://td/a'), true);
      assert.equal(spiffeIdEquals(parseSpiffeId('spiffe://td/a'), 'spiffe://td/a'), true);
      assert.equal(spiffeIdEquals('spiffe://td/a', 'spiffe://td/b'), false);
      assert.equal(spiffeIdEquals('spiffe://td/a', 'spiffe://other/a'), false);
      // Invalid IDs equal nothing, not even themselves; nothing is normalised.
      assert.equal(spiffeIdEquals('spiffe://td/a/../a', 'spiffe://td/a/../a'), false);
      assert.equal(spiffeIdEquals('spiffe://TD/a', 'spiffe://td/a'), false);
      assert.equal(isMemberOf('spiffe://td/a', 'td'), true);
      assert.equal(isMemberOf('spiffe://td/a', 'spiffe://td'), true);
      assert.equal(isMemberOf(parseSpiffeId('spiffe://td'), 'td'), true);
      assert.equal(isMemberOf('spiffe://td/a', 'other'), false);
      assert.equal(isMemberOf('spiffe://td.evil/a', 'td'), false);
      assert.equal(isMemberOf('spiffe://td/a', 'TD'), false);
      assert.equal(isMemberOf('spiffe://Td/a', 'td'), false);
    });

    t.it('parseTrustDomain accepts exactly `td` and `spiffe://td`', () => {
      assert.equal(parseTrustDomain('example.org'), 'example.org');
      assert.equal(parseTrustDomain('spiffe://example.org'), 'example.org');
      for (const bad of [
        '',
        'spiffe://',
        'Example.org',
        'spiffe://example.org/x',
        'spiffe://example.org/',
        'example.org:443',
        'SPIFFE://example.org',
        'https://example.org',
      ]) {
        assert.throws(
          () => parseTrustDomain(bad),
          (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_trust_domain',
          bad,
        );
      }
    });

    t.it('formatSpiffeId validates both parts', () => {
      assert.throws(
        () => formatSpiffeId('Bad', '/x'),
        (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_trust_domain',
      );
      assert.throws(
        () => formatSpiffeId('td', '/a/../b'),
        (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_id',
      );
      assert.throws(
        () => formatSpiffeId('td', `/${'a'.repeat(2048)}`),
        (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_id',
      );
    });
  });

  t.describe('SPIFFE IDs: hostile input (docs/spiffe.md §8)', () => {
    t.it('hostile #24: upper-case scheme or trust domain is rejected, never normalised', () => {
      rejects('spiffe://Example.org/x', TD_CHARS);
      rejects('SPIFFE://example.org/x', 'scheme is missing or invalid');
      rejects('Spiffe://example.org/x', 'scheme is missing or invalid');
      rejects('spiffe://EXAMPLE.ORG', TD_CHARS);
    });

    t.it(
      'hostile #25: trailing /, //, /./, /../, %2F, ?q, #f, :port, user@, NUL, non-ASCII',
      () => {
        const cases: [string, string][] = [
          ['spiffe://example.org/x/', 'path cannot have a trailing slash'],
          ['spiffe://example.org//x', 'path cannot contain empty segments'],
          ['spiffe://example.org/a/./x', 'path cannot contain dot segments'],
          ['spiffe://example.org/a/../x', 'path cannot contain dot segments'],
          ['spiffe://example.org/a%2Fb', PATH_CHARS],
          ['spiffe://example.org/x?q', PATH_CHARS],
          ['spiffe://example.org/x#f', PATH_CHARS],
          ['spiffe://example.org:443/x', TD_CHARS],
          ['spiffe://user@example.org/x', TD_CHARS],
          ['spiffe://example.org/x\u0000', PATH_CHARS],
          ['spiffe://example.org\u0000/x', TD_CHARS],
          ['spiffe://example.org/\u0445', PATH_CHARS],
          ['spiffe://exаmple.org/x', TD_CHARS], // Cyrillic 'а'
          ['spiffe://example.org/x\n', PATH_CHARS],
        ];
        for (const [value, message] of cases) rejects(value, message);
        // WHATWG URL would have "fixed" this one to /x; we must not.
        assert.equal(new URL('spiffe://example.org/a/../x').pathname, '/x');
        assert.equal(isSpiffeId('spiffe://example.org/a/../x'), false);
      },
    );

    t.it('hostile #26: ID of 2049+ bytes or trust domain of 256+ bytes is rejected', () => {
      rejects(`spiffe://example.org/${'a'.repeat(2049)}`, /longer than 2048 bytes/);
      rejects(`spiffe://example.org/${'a'.repeat(100_000)}`, /longer than 2048 bytes/);
      rejects(`spiffe://${'b'.repeat(256)}`, /trust domain cannot be longer than 255 bytes/);
      // Errors never echo the input.
      try {
        parseSpiffeId(`spiffe://example.org/${'secret'.repeat(50)}/..`);
        assert.fail('expected rejection');
      } catch (error) {
        assert.ok(isSpikeError(error));
        assert.ok(!error.message.includes('secret'));
      }
    });
  });
}
