/**
 * Authorizers: decide whether an already validated peer SPIFFE ID may talk to us
 * (docs/spiffe.md §5, after go-spiffe's `tlsconfig` authorizers).
 *
 * An authorizer runs only after the peer's X.509-SVID chain has been verified
 * (`verifyPeerX509Svid`), on the ID re-read from that leaf. It returns nothing when the ID is
 * allowed and throws `SpikeError('svid_unauthorized', …)` otherwise. Configured IDs and trust
 * domains are strictly parsed when the authorizer is built, so a typo fails at start-up instead of
 * silently denying (or allowing) every peer.
 */
import { SpikeError } from '../errors.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from './id.ts';

/** Throws `SpikeError('svid_unauthorized', …)` when `id` is not allowed. */
export type Authorizer = (id: SpiffeId) => void;

function unexpectedId(id: SpiffeId): SpikeError {
  return new SpikeError('svid_unauthorized', `unexpected ID "${id.toString()}"`);
}

/** `AuthorizeAny()`: any validated ID (docs/spiffe.md §5). */
export function authorizeAny(): Authorizer {
  return () => {};
}

/**
 * `AuthorizeID(id)`: exactly this ID, byte equality after strict parsing (docs/spiffe.md §3 rule
 * 14, §5). Error: `unexpected ID "spiffe://…"`.
 *
 * @throws SpikeError `spiffe_invalid_id` at construction when `expected` is not a valid ID.
 */
export function authorizeId(expected: string): Authorizer {
  const want = parseSpiffeId(expected).toString();
  return (id) => {
    if (id.toString() !== want) throw unexpectedId(id);
  };
}

/**
 * `AuthorizeOneOf(ids…)`: any of these IDs (docs/spiffe.md §5). Error: `unexpected ID "…"`.
 *
 * @throws SpikeError `spiffe_invalid_id` at construction when one of `ids` is not a valid ID.
 */
export function authorizeOneOf(...ids: string[]): Authorizer {
  const allowed = new Set(ids.map((v) => parseSpiffeId(v).toString()));
  return (id) => {
    if (!allowed.has(id.toString())) throw unexpectedId(id);
  };
}

/**
 * `AuthorizeMemberOf(td)`: any ID of this trust domain, given as `td` or `spiffe://td`
 * (docs/spiffe.md §5). Error: `unexpected trust domain "td"` naming the peer's trust domain.
 *
 * @throws SpikeError `spiffe_invalid_trust_domain` at construction.
 */
export function authorizeMemberOf(trustDomain: string): Authorizer {
  const want = parseTrustDomain(trustDomain);
  return (id) => {
    if (id.trustDomain !== want) {
      throw new SpikeError('svid_unauthorized', `unexpected trust domain "${id.trustDomain}"`);
    }
  };
}

/**
 * `AdaptMatcher(m)`: any predicate, e.g. a SPIKE role match (docs/spike-api.md §1). `description`
 * names what was expected and appears in the error: `unexpected ID "…": expected <description>`.
 */
export function authorizeMatching(
  predicate: (id: SpiffeId) => boolean,
  description: string,
): Authorizer {
  return (id) => {
    if (!predicate(id)) {
      throw new SpikeError(
        'svid_unauthorized',
        `unexpected ID "${id.toString()}": expected ${description}`,
      );
    }
  };
}
