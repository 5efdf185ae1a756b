/**
 * From a decoded `X509SVIDResponse` to a validated `X509Context` (docs/spiffe.md §1.5, §4, §8
 * rows 19–23).
 *
 * Every message is the complete state, so a context is built from scratch each time: a trust
 * domain missing from a later message is simply absent from the new context (row 23). The rules:
 *
 * - no SVIDs → error (row 19): the caller reports it and keeps its previous good state;
 * - two SVIDs with the same non-empty `hint` → the first wins, later ones are dropped (row 20);
 * - the SVID's own `bundle` is keyed by the trust domain of its `spiffe_id`; empty bytes are a
 *   bundle with zero roots, so nothing verifies against it (fail closed, row 21);
 * - `federated_bundles` keys are accepted as `other.org` or `spiffe://other.org` and nothing else;
 *   other keys are ignored and logged (row 22), as is a federated entry for a trust domain whose
 *   bundle the SVIDs already carry (the SVID's own bundle is authoritative);
 * - every remaining SVID goes through `validateOwnX509Svid` (§4); one failure rejects the message.
 */
import { SpikeError } from '../errors.ts';
import { parseSpiffeId, parseTrustDomain } from '../spiffe/id.ts';
import type { X509Context, X509Svid } from '../spiffe/types.ts';
import { parseX509Bundle, validateOwnX509Svid } from '../spiffe/x509svid.ts';
import type { X509SvidMessage, X509SvidResponse } from './proto.ts';

/** Receives warnings about ignored parts of a message (no secret material is ever passed). */
export type WarnFn = (message: string) => void;

function bundleRoots(bytes: Uint8Array): Uint8Array[] {
  return bytes.length === 0 ? [] : parseX509Bundle(bytes);
}

/** Drops SVIDs whose non-empty hint repeats an earlier one (row 20). */
function firstPerHint(svids: readonly X509SvidMessage[]): X509SvidMessage[] {
  const seen = new Set<string>();
  const out: X509SvidMessage[] = [];
  for (const svid of svids) {
    if (svid.hint.length > 0) {
      if (seen.has(svid.hint)) continue;
      seen.add(svid.hint);
    }
    out.push(svid);
  }
  return out;
}

/**
 * Validates a decoded `X509SVIDResponse` and returns the context it describes.
 *
 * @throws SpikeError `svid_invalid` (no SVIDs, bad bundle bytes, bad `spiffe_id`) or whatever
 *   `validateOwnX509Svid` throws (`svid_invalid`, `svid_untrusted`, `spiffe_invalid_id`).
 */
export async function toX509Context(
  response: X509SvidResponse,
  now: Date,
  warn: WarnFn = () => {},
): Promise<X509Context> {
  if (response.svids.length === 0) {
    throw new SpikeError('svid_invalid', 'X509SVIDResponse contains no SVIDs');
  }
  const svids = firstPerHint(response.svids);
  if (svids.length < response.svids.length) {
    warn(`ignored ${response.svids.length - svids.length} SVID(s) with a duplicate hint`);
  }

  const bundles = new Map<string, readonly Uint8Array[]>();
  for (const svid of svids) {
    const td = parseSpiffeId(svid.spiffeId).trustDomain;
    // The first SVID of a trust domain supplies its bundle (the default SVID comes first).
    if (!bundles.has(td)) bundles.set(td, bundleRoots(svid.bundle));
  }
  const own = new Set(bundles.keys());
  for (const [key, value] of response.federatedBundles) {
    let td: string;
    try {
      td = parseTrustDomain(key);
    } catch {
      warn(
        'ignored a federated bundle whose key is not a trust domain (other.org or spiffe://other.org)',
      );
      continue;
    }
    if (own.has(td)) {
      warn(`ignored a federated bundle for the SVIDs' own trust domain ${td}`);
      continue;
    }
    bundles.set(td, bundleRoots(value));
  }

  const validated: X509Svid[] = [];
  for (const svid of svids) {
    validated.push(
      await validateOwnX509Svid(
        {
          spiffeId: svid.spiffeId,
          chain: svid.x509Svid,
          privateKey: svid.x509SvidKey,
          hint: svid.hint,
        },
        bundles,
        now,
      ),
    );
  }
  return { svids: validated, bundles };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same length and `same` item by item, in order. */
function sameItems<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  return a.length === b.length && a.every((x, i) => same(x, b[i]!));
}

/** Same keys, and `same` value by value (map order ignored). */
function sameEntries<V>(
  a: ReadonlyMap<string, V>,
  b: ReadonlyMap<string, V>,
  same: (x: V, y: V) => boolean,
): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !same(v, w)) return false;
  }
  return true;
}

const sameList = (a: readonly Uint8Array[], b: readonly Uint8Array[]) => sameItems(a, b, sameBytes);

/** What makes two SVIDs the same: ID, hint and every byte string, in order. */
interface SvidState {
  readonly id: string;
  readonly hint: string;
  readonly bytes: readonly Uint8Array[];
}

/** Same SVIDs in the same order, compared by the `state` of each. */
function sameSvids<T>(a: readonly T[], b: readonly T[], state: (svid: T) => SvidState): boolean {
  return sameItems(a, b, (x, y) => {
    const s = state(x);
    const t = state(y);
    return s.id === t.id && s.hint === t.hint && sameList(s.bytes, t.bytes);
  });
}

/**
 * True when two decoded responses carry the same state (map order ignored). Lets the client skip
 * re-validating SPIRE's repeated, identical `FetchX509SVID` pushes (row 42).
 */
export function sameX509SvidResponse(a: X509SvidResponse, b: X509SvidResponse): boolean {
  return (
    sameSvids(a.svids, b.svids, (s) => ({
      id: s.spiffeId,
      hint: s.hint,
      bytes: [s.x509Svid, s.x509SvidKey, s.bundle],
    })) &&
    sameList(a.crl, b.crl) &&
    sameEntries(a.federatedBundles, b.federatedBundles, sameBytes)
  );
}

/** True when two contexts hold the same SVIDs (chains, keys, hints, order) and bundles. */
export function sameX509Context(a: X509Context, b: X509Context): boolean {
  return (
    sameSvids(a.svids, b.svids, (s) => ({
      id: s.id,
      hint: s.hint,
      bytes: [...s.chain, s.privateKey],
    })) && sameEntries(a.bundles, b.bundles, sameList)
  );
}
