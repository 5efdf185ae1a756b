/** Authorizers (docs/spiffe.md §5): allow/deny and go-spiffe-style error messages. */
import { describe, expect, it } from 'bun:test';
import { isSpikeError } from '../src/core/errors.ts';
import {
  type Authorizer,
  authorizeAny,
  authorizeId,
  authorizeMatching,
  authorizeMemberOf,
  authorizeOneOf,
} from '../src/core/spiffe/authorizer.ts';
import { parseSpiffeId } from '../src/core/spiffe/id.ts';
import { hasRole } from '../src/core/spike/roles.ts';

const id = (s: string) => parseSpiffeId(s);

function denial(authorizer: Authorizer, value: string): string {
  try {
    authorizer(id(value));
  } catch (error) {
    if (isSpikeError(error) && error.code === 'svid_unauthorized') return error.message;
    throw error;
  }
  throw new Error(`expected ${value} to be denied`);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isSpikeError(error) ? error.code : 'not a SpikeError';
  }
  return undefined;
}

describe('authorizers (docs/spiffe.md §5)', () => {
  it('authorizeAny allows any validated ID', () => {
    expect(authorizeAny()(id('spiffe://any.org/x'))).toBeUndefined();
  });

  it('authorizeId: exact equality, `unexpected ID "…"`', () => {
    const a = authorizeId('spiffe://example.org/svc');
    expect(a(id('spiffe://example.org/svc'))).toBeUndefined();
    expect(denial(a, 'spiffe://example.org/svc2')).toBe(
      'unexpected ID "spiffe://example.org/svc2"',
    );
    expect(denial(a, 'spiffe://example.org/svc/x')).toBe(
      'unexpected ID "spiffe://example.org/svc/x"',
    );
    expect(denial(a, 'spiffe://example.org/Svc')).toBe('unexpected ID "spiffe://example.org/Svc"');
    expect(codeOf(() => authorizeId('spiffe://example.org/a/../svc'))).toBe('spiffe_invalid_id');
  });

  it('authorizeOneOf: set membership', () => {
    const a = authorizeOneOf('spiffe://example.org/a', 'spiffe://other.org/b');
    expect(a(id('spiffe://example.org/a'))).toBeUndefined();
    expect(a(id('spiffe://other.org/b'))).toBeUndefined();
    expect(denial(a, 'spiffe://other.org/a')).toBe('unexpected ID "spiffe://other.org/a"');
    expect(denial(authorizeOneOf(), 'spiffe://example.org/a')).toBe(
      'unexpected ID "spiffe://example.org/a"',
    );
    expect(codeOf(() => authorizeOneOf('spiffe://ok.org/a', 'SPIFFE://bad/a'))).toBe(
      'spiffe_invalid_id',
    );
  });

  it('authorizeMemberOf: trust-domain equality, `unexpected trust domain "td"`', () => {
    const a = authorizeMemberOf('example.org');
    expect(a(id('spiffe://example.org/x'))).toBeUndefined();
    expect(a(id('spiffe://example.org'))).toBeUndefined();
    expect(authorizeMemberOf('spiffe://example.org')(id('spiffe://example.org/y'))).toBeUndefined();
    expect(denial(a, 'spiffe://other.org/x')).toBe('unexpected trust domain "other.org"');
    expect(denial(a, 'spiffe://example.org.evil/x')).toBe(
      'unexpected trust domain "example.org.evil"',
    );
    expect(codeOf(() => authorizeMemberOf('Example.org'))).toBe('spiffe_invalid_trust_domain');
  });

  it('authorizeMatching adapts a matcher such as a SPIKE role', () => {
    const nexusOnly = authorizeMatching(
      (peer) => hasRole(peer.toString(), 'nexus', ['spike.ist']),
      'a SPIKE Nexus ID',
    );
    expect(nexusOnly(id('spiffe://spike.ist/spike/nexus'))).toBeUndefined();
    expect(denial(nexusOnly, 'spiffe://spike.ist/spike/keeper')).toBe(
      'unexpected ID "spiffe://spike.ist/spike/keeper": expected a SPIKE Nexus ID',
    );
  });
});
