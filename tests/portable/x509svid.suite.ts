/**
 * X.509-SVID validation (docs/spiffe.md §4; hostile rows 1–18, 21, 27 of §8), portable.
 *
 * Every bad certificate is minted by tests/support/cert-factory.ts with exactly one defect and a
 * chain to the trust domain's real root, so the defect is the only possible reason to reject.
 * "Own" runs `validateOwnX509Svid` on the Workload API fields; "peer" runs `verifyPeerX509Svid`
 * on the chain as a TLS stack hands it over.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import {
  BasicConstraintsExtension,
  Extension,
  type JsonNameParams,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { concatBytes } from '../../src/core/bytes.ts';
import { isSpikeError, type SpikeErrorCode } from '../../src/core/errors.ts';
import {
  type DerElement,
  readDerElement,
  splitDerCertificates,
} from '../../src/core/spiffe/der.ts';
import type { X509Bundles } from '../../src/core/spiffe/types.ts';
import {
  parseX509Bundle,
  validateOwnX509Svid,
  verifyPeerX509Svid,
} from '../../src/core/spiffe/x509svid.ts';
import { issueX509Svid } from '../../src/dev/mint.ts';
import {
  createTestPki,
  createTestRoot,
  derTlv,
  encodePrivateKey,
  type TestPki,
  type TestSvid,
  toPem,
  unknownCriticalExtension,
} from '../support/cert-factory.ts';
import type { Harness } from './harness.ts';

const TD = 'example.org';

interface Fixture {
  pki: TestPki;
  other: TestPki;
  bundles: X509Bundles;
}

let fixture: Promise<Fixture> | undefined;
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const pki = await createTestPki({ trustDomain: TD });
    const other = await createTestPki({ trustDomain: 'other.org' });
    return { pki, other, bundles: pki.bundles() };
  })();
  return fixture;
}

function own(
  svid: TestSvid,
  bundles: X509Bundles,
  overrides: { spiffeId?: string; chain?: Uint8Array; privateKey?: Uint8Array; now?: Date } = {},
) {
  return validateOwnX509Svid(
    {
      spiffeId: overrides.spiffeId ?? svid.id,
      chain: overrides.chain ?? svid.chainBytes,
      privateKey: overrides.privateKey ?? svid.privateKey,
      hint: 'test',
    },
    bundles,
    overrides.now ?? new Date(),
  );
}

function peer(chain: readonly Uint8Array[], bundles: X509Bundles, now = new Date()) {
  return verifyPeerX509Svid(chain, bundles, now);
}

async function rejectsWith(
  promise: Promise<unknown> | (() => unknown),
  code: SpikeErrorCode,
  message: RegExp,
): Promise<void> {
  await assert.rejects(
    async () => (typeof promise === 'function' ? promise() : promise),
    (error: unknown) => {
      assert.ok(isSpikeError(error), `expected a SpikeError, got ${String(error)}`);
      assert.equal(error.code, code, `code for: ${error.message}`);
      assert.match(error.message, message);
      return true;
    },
  );
}

/** Own and peer must both reject with this code and message. */
async function bothReject(
  svid: TestSvid,
  bundles: X509Bundles,
  code: SpikeErrorCode,
  message: RegExp,
): Promise<void> {
  await rejectsWith(own(svid, bundles), code, message);
  await rejectsWith(peer(svid.chain, bundles), code, message);
}

/** One leaf (`spiffe://example.org/alg`) under a fresh root whose keys and signatures are given. */
async function chainSignedWith(
  keyAlgorithm: Algorithm | RsaHashedKeyGenParams | EcKeyGenParams,
  signingAlgorithm: Algorithm | RsaPssParams | EcdsaParams,
  leafIssuer?: JsonNameParams,
) {
  const caKeys = (await crypto.subtle.generateKey(keyAlgorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const hour = 3600_000;
  const root = await X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=algorithm test root',
    notBefore: new Date(Date.now() - hour),
    notAfter: new Date(Date.now() + hour),
    keys: caKeys,
    signingAlgorithm,
    extensions: [
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true),
    ],
  });
  const leafKeys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const leaf = await X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'O=SPIRE',
    issuer: leafIssuer === undefined ? root.subject : new Name(leafIssuer),
    notBefore: new Date(Date.now() - hour),
    notAfter: new Date(Date.now() + hour),
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm,
    extensions: [
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/alg' }]),
    ],
  });
  const leafDer = new Uint8Array(leaf.rawData);
  return {
    leaf: leafDer,
    privateKey: new Uint8Array(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey)),
    bundles: new Map([[TD, [new Uint8Array(root.rawData)]]]) as X509Bundles,
  };
}

/** The top-level elements of a DER SEQUENCE. */
function derChildren(der: Uint8Array): DerElement[] {
  const outer = readDerElement(der, 0);
  const out: DerElement[] = [];
  for (let at = outer.contentStart; at < outer.end; at = out[out.length - 1]!.end) {
    out.push(readDerElement(der, at, outer.end));
  }
  return out;
}

/**
 * Rebuilds `cert` (signed by an ECDSA P-256 key with SHA-256) with its tbsCertificate fields
 * passed through `edit`, and signs it again with `issuerKey`: the edit is then the only defect.
 */
async function reissue(
  cert: Uint8Array,
  issuerKey: CryptoKey,
  edit: (fields: Uint8Array[]) => Uint8Array[],
): Promise<Uint8Array> {
  const [tbs, signatureAlgorithm] = derChildren(cert);
  const fields = derChildren(cert.subarray(tbs!.start, tbs!.end)).map((el) =>
    cert.subarray(tbs!.start + el.start, tbs!.start + el.end),
  );
  const newTbs = new Uint8Array(derTlv(0x30, concatBytes(...edit(fields))));
  const p1363 = new Uint8Array(
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, issuerKey, newTbs),
  );
  const integer = (bytes: Uint8Array) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const v = bytes.subarray(i);
    return derTlv(0x02, v[0]! & 0x80 ? concatBytes(new Uint8Array([0]), v) : v);
  };
  const signature = derTlv(
    0x30,
    concatBytes(integer(p1363.subarray(0, 32)), integer(p1363.subarray(32))),
  );
  return derTlv(
    0x30,
    concatBytes(
      newTbs,
      cert.subarray(signatureAlgorithm!.start, signatureAlgorithm!.end),
      derTlv(0x03, concatBytes(new Uint8Array([0]), signature)),
    ),
  );
}

export function suite(t: Harness): void {
  t.describe('X.509-SVID validation: valid chains (docs/spiffe.md §4)', () => {
    t.it('leaf directly under the root: own and peer', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/svc');
      const result = await own(svid, bundles);
      assert.equal(result.id, 'spiffe://example.org/svc');
      assert.equal(result.trustDomain, TD);
      assert.equal(result.hint, 'test');
      assert.equal(result.chain.length, 1);
      assert.deepEqual(result.chain[0], svid.leaf);
      assert.deepEqual(result.privateKey, svid.privateKey);
      assert.equal(result.serial, svid.serial.toLowerCase());
      assert.equal(result.notAfter.getTime(), Math.floor(svid.notAfter.getTime() / 1000) * 1000);
      assert.equal(await peer(svid.chain, bundles), 'spiffe://example.org/svc');
    });

    t.it('leaf under an intermediate: own and peer', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/deep/svc', { via: 'intermediate' });
      assert.equal(svid.chain.length, 2);
      const result = await own(svid, bundles);
      assert.equal(result.chain.length, 2);
      assert.deepEqual(result.chain[1], pki.intermediate.certificate);
      assert.equal(await peer(svid.chain, bundles), 'spiffe://example.org/deep/svc');
    });

    t.it('leaf under two intermediates', async () => {
      const { pki, bundles } = await setup();
      const second = await pki.issueIntermediate({ parent: pki.intermediate });
      const svid = await pki.issue('spiffe://example.org/deeper', { via: second });
      assert.equal(svid.chain.length, 3);
      await own(svid, bundles);
      assert.equal(await peer(svid.chain, bundles), 'spiffe://example.org/deeper');
    });

    t.it('chain including the root (as some TLS stacks send it)', async () => {
      const { pki, bundles } = await setup();
      const direct = await pki.issue('spiffe://example.org/a');
      const deep = await pki.issue('spiffe://example.org/b', { via: 'intermediate' });
      assert.equal(await peer([...direct.chain, pki.rootDer], bundles), 'spiffe://example.org/a');
      assert.equal(await peer([...deep.chain, pki.rootDer], bundles), 'spiffe://example.org/b');
      const withRoot = concatBytes(deep.chainBytes, pki.rootDer);
      assert.equal((await own(deep, bundles, { chain: withRoot })).id, 'spiffe://example.org/b');
    });

    t.it('the production minting code (mint.ts) produces valid SVIDs', async () => {
      const { pki, bundles } = await setup();
      const minted = await issueX509Svid(pki.intermediate, 'spiffe://example.org/minted');
      const result = await validateOwnX509Svid(
        {
          spiffeId: 'spiffe://example.org/minted',
          chain: concatBytes(...minted.chain),
          privateKey: minted.privateKey,
          hint: '',
        },
        bundles,
        new Date(),
      );
      assert.equal(result.serial, minted.serial);
      assert.equal(await peer(minted.chain, bundles), 'spiffe://example.org/minted');
    });

    t.it('leaf keys: ECDSA P-384, RSA and Ed25519 are accepted with a matching key', async () => {
      const { pki, bundles } = await setup();
      for (const keyType of ['P-384', 'RSA', 'Ed25519'] as const) {
        const svid = await pki.issue(`spiffe://example.org/${keyType}`, { keyType });
        const result = await own(svid, bundles);
        assert.equal(result.id, `spiffe://example.org/${keyType}`);
        assert.equal(await peer(svid.chain, bundles), `spiffe://example.org/${keyType}`);
      }
    });

    t.it('federation: a peer of another trust domain verifies against its own bundle', async () => {
      const { pki, other } = await setup();
      const svid = await other.issue('spiffe://other.org/partner');
      assert.equal(await peer(svid.chain, pki.bundles(other)), 'spiffe://other.org/partner');
    });

    t.it(
      'validity boundaries: valid exactly at notBefore and notAfter, not 1 ms outside',
      async () => {
        const { pki, bundles } = await setup();
        const svid = await pki.issue('spiffe://example.org/window');
        const nb = Math.floor(svid.notBefore.getTime() / 1000) * 1000;
        const na = Math.floor(svid.notAfter.getTime() / 1000) * 1000;
        assert.equal(await peer(svid.chain, bundles, new Date(nb)), 'spiffe://example.org/window');
        assert.equal(await peer(svid.chain, bundles, new Date(na)), 'spiffe://example.org/window');
        await rejectsWith(peer(svid.chain, bundles, new Date(nb - 1)), 'svid_untrusted', /expired/);
        await rejectsWith(
          own(svid, bundles, { now: new Date(na + 1) }),
          'svid_untrusted',
          /expired/,
        );
      },
    );

    t.it('parseX509Bundle: concatenated roots, each a copy', async () => {
      const { pki, other } = await setup();
      const both = concatBytes(pki.rootDer, other.rootDer);
      const roots = parseX509Bundle(both);
      assert.equal(roots.length, 2);
      assert.deepEqual(roots[0], pki.rootDer);
      assert.deepEqual(roots[1], other.rootDer);
      both.fill(0);
      assert.deepEqual(roots[0], pki.rootDer);
    });
  });

  t.describe('X.509-SVID validation: hostile input (docs/spiffe.md §8)', () => {
    t.it('hostile #1: leaf with two URI SANs (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.twoUriSans();
      await bothReject(svid, bundles, 'svid_invalid', /more than one URI SAN/);
    });

    t.it('hostile #2: leaf with a DNS SAN only (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.dnsOnlySan();
      await rejectsWith(
        own(svid, bundles, { spiffeId: 'spiffe://example.org/x' }),
        'svid_invalid',
        /no URI SAN/,
      );
      await rejectsWith(peer(svid.chain, bundles), 'svid_invalid', /no URI SAN/);
      const noSan = await pki.issue('spiffe://example.org/x', { noSan: true });
      await rejectsWith(peer(noSan.chain, bundles), 'svid_invalid', /no URI SAN/);
    });

    t.it('hostile #3: URI SAN https://example.org/x (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.httpsUriSan();
      await bothReject(svid, bundles, 'svid_invalid', /scheme is missing or invalid/);
    });

    t.it('hostile #4: leaf ID spiffe://example.org with a root path (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.rootPathId();
      await bothReject(svid, bundles, 'svid_invalid', /non-root path/);
    });

    t.it('hostile #5: leaf with CA:TRUE (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.caLeaf();
      await bothReject(svid, bundles, 'svid_invalid', /CA flag set to true/);
    });

    t.it('hostile #6: leaf with keyCertSign or cRLSign (own and peer)', async () => {
      const { pki, bundles } = await setup();
      await bothReject(await pki.bad.leafWithKeyCertSign(), bundles, 'svid_invalid', /KeyCertSign/);
      await bothReject(await pki.bad.leafWithCrlSign(), bundles, 'svid_invalid', /KeyCrlSign/);
    });

    t.it(
      'hostile #7: leaf without digitalSignature, or without keyUsage (own and peer)',
      async () => {
        const { pki, bundles } = await setup();
        await bothReject(
          await pki.bad.leafWithoutDigitalSignature(),
          bundles,
          'svid_invalid',
          /digitalSignature/,
        );
        await bothReject(
          await pki.bad.leafWithoutKeyUsage(),
          bundles,
          'svid_invalid',
          /key usage extension/,
        );
      },
    );

    t.it(
      'hostile #8: intermediate with CA:FALSE or without keyCertSign (own and peer)',
      async () => {
        const { pki, bundles } = await setup();
        await bothReject(
          await pki.bad.intermediateNotCa(),
          bundles,
          'svid_invalid',
          /CA flag set to true/,
        );
        await bothReject(
          await pki.bad.intermediateWithoutKeyCertSign(),
          bundles,
          'svid_invalid',
          /keyCertSign/,
        );
      },
    );

    t.it('hostile #9: expired or not-yet-valid leaf or intermediate (own and peer)', async () => {
      const { pki, bundles } = await setup();
      for (const svid of [
        await pki.bad.expiredLeaf(),
        await pki.bad.notYetValidLeaf(),
        await pki.bad.expiredIntermediate(),
        await pki.bad.notYetValidIntermediate(),
      ]) {
        await bothReject(svid, bundles, 'svid_untrusted', /expired or is not yet valid/);
      }
    });

    t.it('hostile #9: an expired root in the bundle anchors nothing', async () => {
      const { pki } = await setup();
      const now = Date.now();
      const oldRoot = await createTestRoot(TD, {
        notBefore: new Date(now - 3 * 3600_000),
        notAfter: new Date(now - 3600_000),
      });
      const svid = await pki.issue('spiffe://example.org/x', { via: oldRoot });
      const bundles = new Map([[TD, [oldRoot.certificate]]]);
      await bothReject(svid, bundles, 'svid_untrusted', /expired or is not yet valid/);
    });

    t.it(
      'hostile #10: chain to an other.org root while the leaf says example.org (union ca)',
      async () => {
        const { pki, other } = await setup();
        const union = pki.bundles(other);
        const svid = await other.issue('spiffe://example.org/impostor');
        await bothReject(svid, union, 'svid_untrusted', /signed by unknown authority/);
        // Sending the foreign root along does not help.
        await rejectsWith(
          peer([...svid.chain, other.rootDer], union),
          'svid_untrusted',
          /signed by unknown authority/,
        );
        const deep = await other.issue('spiffe://example.org/impostor', { via: 'intermediate' });
        await bothReject(deep, union, 'svid_untrusted', /signed by unknown authority/);
      },
    );

    t.it("hostile #11: the leaf's trust domain has no bundle (own and peer)", async () => {
      const { other, bundles } = await setup();
      const svid = await other.issue('spiffe://other.org/svc');
      await bothReject(
        svid,
        bundles,
        'svid_untrusted',
        /no X\.509 bundle found for trust domain: "other\.org"/,
      );
    });

    t.it('hostile #12: self-signed leaf with the correct ID (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.bad.selfSignedLeaf();
      await bothReject(svid, bundles, 'svid_untrusted', /signed by unknown authority/);
      await rejectsWith(
        peer([...svid.chain, pki.rootDer], bundles),
        'svid_untrusted',
        /signed by unknown authority/,
      );
    });

    t.it('hostile #13: x509_svid with the intermediate first (own and peer)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/svc', { via: 'intermediate' });
      const reversed = [svid.chain[1]!, svid.chain[0]!];
      await rejectsWith(
        own(svid, bundles, { chain: concatBytes(...reversed) }),
        'svid_invalid',
        /non-root path/,
      );
      await rejectsWith(peer(reversed, bundles), 'svid_invalid', /non-root path/);
      // An intermediate without a URI SAN first: no URI SAN.
      const bare = await pki.issueIntermediate({ uris: [] });
      const leaf = await pki.issue('spiffe://example.org/svc', { via: bare });
      await rejectsWith(peer([leaf.chain[1]!, leaf.chain[0]!], bundles), 'svid_invalid', /URI/);
    });

    t.it('hostile #14: x509_svid_key does not match the leaf (own)', async () => {
      const { pki, bundles } = await setup();
      const a = await pki.issue('spiffe://example.org/a');
      const b = await pki.issue('spiffe://example.org/b');
      await rejectsWith(
        own(a, bundles, { privateKey: b.privateKey }),
        'svid_invalid',
        /leaf certificate does not match private key/,
      );
      const p384 = await pki.issue('spiffe://example.org/c', { keyType: 'P-384' });
      await rejectsWith(
        own(a, bundles, { privateKey: p384.privateKey }),
        'svid_invalid',
        /does not match private key/,
      );
      const rsa = await pki.issue('spiffe://example.org/d', { keyType: 'RSA' });
      await rejectsWith(
        own(rsa, bundles, { privateKey: a.privateKey }),
        'svid_invalid',
        /does not match private key/,
      );
    });

    t.it('hostile #15: key as PEM, SEC1, PKCS#1 DER or encrypted PKCS#8 (own)', async () => {
      const { pki, bundles } = await setup();
      const ec = await pki.issue('spiffe://example.org/ec');
      const rsa = await pki.issue('spiffe://example.org/rsa', { keyType: 'RSA' });
      const cases: [TestSvid, Uint8Array][] = [
        [ec, await encodePrivateKey(ec, 'pem')],
        [ec, await encodePrivateKey(ec, 'sec1')],
        [ec, await encodePrivateKey(ec, 'encrypted-pkcs8')],
        [rsa, await encodePrivateKey(rsa, 'pkcs1')],
        [rsa, await encodePrivateKey(rsa, 'pem')],
        [ec, new Uint8Array(0)],
      ];
      for (const [svid, key] of cases) {
        await rejectsWith(
          own(svid, bundles, { privateKey: key }),
          'svid_invalid',
          /unencrypted PKCS#8 DER/,
        );
      }
      // The right encoding of the same keys is accepted (the rejection is about the encoding).
      await own(ec, bundles);
      await own(rsa, bundles);
    });

    t.it('hostile #16: certificates as PEM instead of DER (own, bundle)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/svc');
      await rejectsWith(own(svid, bundles, { chain: toPem(svid.leaf) }), 'svid_invalid', /PEM/);
      await rejectsWith(() => parseX509Bundle(toPem(pki.rootDer)), 'svid_invalid', /PEM/);
      await rejectsWith(peer([toPem(svid.leaf)], bundles), 'svid_invalid', /not DER/);
    });

    t.it(
      'hostile #17: truncated, trailing junk, indefinite length, zero-length element',
      async () => {
        const { pki, bundles } = await setup();
        const svid = await pki.issue('spiffe://example.org/svc', { via: 'intermediate' });
        const full = svid.chainBytes;
        const leafLen = svid.leaf.length;
        // Indefinite length: rewrite the leaf's header as 0x30 0x80 … 0x00 0x00 (BER).
        const leafContent = svid.leaf.subarray(4);
        assert.equal(svid.leaf[1], 0x82, 'leaf uses a two-byte length');
        const indefinite = concatBytes(
          new Uint8Array([0x30, 0x80]),
          leafContent,
          new Uint8Array([0, 0]),
          svid.chain[1]!,
        );
        // Non-minimal length: 0x83 00 xx xx instead of 0x82 xx xx.
        const nonMinimal = concatBytes(
          new Uint8Array([0x30, 0x83, 0x00, svid.leaf[2]!, svid.leaf[3]!]),
          leafContent,
        );
        const cases: [string, Uint8Array, RegExp][] = [
          ['truncated', full.subarray(0, full.length - 1), /truncated/],
          ['truncated header', concatBytes(svid.leaf, new Uint8Array([0x30])), /truncated/],
          ['trailing junk', concatBytes(full, new Uint8Array([0x00])), /DER SEQUENCE/],
          ['trailing text', concatBytes(full, new TextEncoder().encode('junk')), /DER SEQUENCE/],
          ['indefinite length', indefinite, /indefinite/],
          ['non-minimal length', nonMinimal, /minimally/],
          ['zero-length element', concatBytes(svid.leaf, new Uint8Array([0x30, 0x00])), /empty/],
          ['zero-length first', concatBytes(new Uint8Array([0x30, 0x00]), full), /empty/],
          ['wrong tag', concatBytes(svid.leaf, new Uint8Array([0x31, 0x01, 0x00])), /SEQUENCE/],
          ['empty', new Uint8Array(0), /empty certificates chain/],
        ];
        for (const [name, bytes, message] of cases) {
          await rejectsWith(own(svid, bundles, { chain: bytes }), 'svid_invalid', message).catch(
            (error: unknown) => {
              throw new Error(`${name}: ${String(error)}`);
            },
          );
        }
        assert.equal(splitDerCertificates(full).length, 2);
        assert.equal(splitDerCertificates(full)[0]!.length, leafLen);
        await rejectsWith(
          () => parseX509Bundle(concatBytes(pki.rootDer, new Uint8Array([1]))),
          'svid_invalid',
          /DER SEQUENCE/,
        );
        // A peer certificate with bytes after its own SEQUENCE.
        await rejectsWith(
          peer([concatBytes(svid.leaf, new Uint8Array([0])), svid.chain[1]!], bundles),
          'svid_invalid',
          /trailing data/,
        );
      },
    );

    t.it('hostile #18: spiffe_id field differs from the URI SAN (own)', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/svc');
      for (const spiffeId of ['spiffe://example.org/other', 'spiffe://example.org/svc/', '']) {
        await rejectsWith(own(svid, bundles, { spiffeId }), 'svid_invalid', /does not match/);
      }
    });

    t.it(
      'hostile #21: empty bundle bytes → zero roots, nothing verifies (own and peer)',
      async () => {
        const { pki } = await setup();
        assert.deepEqual(parseX509Bundle(new Uint8Array(0)), []);
        const empty = new Map([[TD, parseX509Bundle(new Uint8Array(0))]]);
        const svid = await pki.issue('spiffe://example.org/svc');
        await bothReject(svid, empty, 'svid_untrusted', /signed by unknown authority/);
        await rejectsWith(
          peer([...svid.chain, pki.rootDer], empty),
          'svid_untrusted',
          /signed by unknown authority/,
        );
      },
    );

    t.it('hostile #27: unknown critical extension in leaf, intermediate or root', async () => {
      const { pki, bundles } = await setup();
      await bothReject(
        await pki.bad.leafWithUnknownCriticalExtension(),
        bundles,
        'svid_invalid',
        /unhandled critical extension/,
      );
      await bothReject(
        await pki.bad.intermediateWithUnknownCriticalExtension(),
        bundles,
        'svid_invalid',
        /unhandled critical extension/,
      );
      const root = await createTestRoot(TD, { extensions: [unknownCriticalExtension()] });
      const svid = await pki.issue('spiffe://example.org/svc', { via: root });
      await bothReject(
        svid,
        new Map([[TD, [root.certificate]]]),
        'svid_untrusted',
        /signed by unknown authority/,
      );
      // The same extension, non-critical, is fine.
      const benign = new Extension('2.25.1', false, new Uint8Array([0x05, 0x00]));
      await own(await pki.issue('spiffe://example.org/ok', { extensions: [benign] }), bundles);
    });
  });

  t.describe('X.509-SVID validation: further profile rules (docs/spiffe.md §4)', () => {
    t.it('leaf keyUsage must be critical', async () => {
      const { pki, bundles } = await setup();
      const svid = await pki.issue('spiffe://example.org/x', { keyUsageCritical: false });
      await bothReject(svid, bundles, 'svid_invalid', /must be critical/);
    });

    t.it('leaf EKU, when present, has serverAuth and clientAuth; absent is fine', async () => {
      const { pki, bundles } = await setup();
      const serverOnly = await pki.issue('spiffe://example.org/x', {
        extKeyUsage: ['1.3.6.1.5.5.7.3.1'],
      });
      await bothReject(serverOnly, bundles, 'svid_invalid', /serverAuth and clientAuth/);
      const none = await pki.issue('spiffe://example.org/y', { extKeyUsage: null });
      assert.equal(await peer(none.chain, bundles), 'spiffe://example.org/y');
    });

    t.it('empty subject requires a critical SAN', async () => {
      const { pki, bundles } = await setup();
      const weak = await pki.issue('spiffe://example.org/x', { subject: '' });
      await bothReject(weak, bundles, 'svid_invalid', /empty subject/);
      const ok = await pki.issue('spiffe://example.org/y', { subject: '', sanCritical: true });
      assert.equal(await peer(ok.chain, bundles), 'spiffe://example.org/y');
    });

    t.it('signing certificate URI SAN must be a trust domain ID without a path', async () => {
      const { pki, bundles } = await setup();
      const inter = await pki.issueIntermediate({ uris: ['spiffe://example.org/ca'] });
      const svid = await pki.issue('spiffe://example.org/x', { via: inter });
      await bothReject(svid, bundles, 'svid_invalid', /must not have a path/);
    });

    t.it('pathLen constraints are enforced', async () => {
      const { pki, bundles } = await setup();
      const limited = await pki.issueIntermediate({ pathLength: 0 });
      const below = await pki.issueIntermediate({ parent: limited });
      const svid = await pki.issue('spiffe://example.org/x', { via: below });
      await bothReject(svid, bundles, 'svid_invalid', /path length/);
      const direct = await pki.issue('spiffe://example.org/y', { via: limited });
      assert.equal(await peer(direct.chain, bundles), 'spiffe://example.org/y');
    });

    t.it('forged signatures: right issuer name, wrong key (leaf and intermediate)', async () => {
      const { pki, bundles } = await setup();
      const rogue = await createTestRoot(TD);
      // Claims the real intermediate (and sends it along) but is signed by a rogue key.
      const forgedUnderInter = await pki.issue('spiffe://example.org/x', {
        via: { ...pki.intermediate, keys: rogue.keys },
      });
      assert.deepEqual(forgedUnderInter.chain[1], pki.intermediate.certificate);
      await bothReject(forgedUnderInter, bundles, 'svid_untrusted', /unknown authority/);
      // Claims the real root directly.
      const forgedUnderRoot = await pki.issue('spiffe://example.org/y', {
        via: { ...pki.root, keys: rogue.keys },
      });
      await bothReject(forgedUnderRoot, bundles, 'svid_untrusted', /unknown authority/);
      // A forged intermediate under the real root, with a correctly signed leaf below it.
      const forgedInter = await pki.issueIntermediate({
        parent: { ...pki.root, keys: rogue.keys },
      });
      const leaf = await pki.issue('spiffe://example.org/z', { via: forgedInter });
      await bothReject(leaf, bundles, 'svid_untrusted', /unknown authority/);
    });

    t.it('name chaining: a valid signature under a different issuer name is rejected', async () => {
      const { pki, bundles } = await setup();
      // The intermediate's key, but the leaf names another CA (the other root) as its issuer.
      const { other } = await setup();
      const svid = await pki.issue('spiffe://example.org/x', {
        via: { ...pki.intermediate, certificate: other.rootDer },
      });
      await bothReject(
        {
          ...svid,
          chain: [svid.leaf, pki.intermediate.certificate],
          chainBytes: concatBytes(svid.leaf, pki.intermediate.certificate),
        },
        bundles,
        'svid_untrusted',
        /unknown authority/,
      );
    });

    t.it('signature algorithms: SHA-1 is refused, SHA-384/512 accepted', async () => {
      const { pki, bundles } = await setup();
      const weak = await pki.issue('spiffe://example.org/sha1', { signatureHash: 'SHA-1' });
      await bothReject(weak, bundles, 'svid_invalid', /insecure or unsupported algorithm/);
      for (const signatureHash of ['SHA-384', 'SHA-512'] as const) {
        const ok = await pki.issue('spiffe://example.org/strong', { signatureHash });
        assert.equal(await peer(ok.chain, bundles), 'spiffe://example.org/strong');
      }
    });

    t.it(
      'chain elements may be views into a larger buffer (as TLS stacks hand them over)',
      async () => {
        const { pki, bundles } = await setup();
        const svid = await pki.issue('spiffe://example.org/view', { via: 'intermediate' });
        const pool = concatBytes(new Uint8Array(7), svid.leaf, new Uint8Array(3), svid.chain[1]!);
        const leafView = pool.subarray(7, 7 + svid.leaf.length);
        const interStart = 7 + svid.leaf.length + 3;
        const interView = pool.subarray(interStart, interStart + svid.chain[1]!.length);
        assert.equal(await peer([leafView, interView], bundles), 'spiffe://example.org/view');
        // Reusing the pool afterwards must not affect later verifications.
        pool.fill(0);
        assert.equal(await peer(svid.chain, bundles), 'spiffe://example.org/view');
      },
    );

    t.it('peer chain: empty, too long, or extra certificates beyond the root', async () => {
      const { pki, other, bundles } = await setup();
      await rejectsWith(peer([], bundles), 'svid_invalid', /empty certificates chain/);
      const svid = await pki.issue('spiffe://example.org/x');
      await rejectsWith(
        peer(
          Array.from({ length: 17 }, () => svid.leaf),
          bundles,
        ),
        'svid_invalid',
        /too long/,
      );
      await rejectsWith(
        peer([...svid.chain, pki.rootDer, other.rootDer], bundles),
        'svid_untrusted',
        /beyond its root/,
      );
    });
  });

  t.describe(
    'X.509-SVID validation: signature algorithms and encodings (docs/spiffe.md §4)',
    () => {
      const rsa = (name: string, hash: string): RsaHashedKeyGenParams => ({
        name,
        hash,
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
      });
      const accepted: [string, Algorithm | RsaHashedKeyGenParams | EcKeyGenParams, Algorithm][] = [
        [
          'ECDSA P-384 / SHA-384',
          { name: 'ECDSA', namedCurve: 'P-384' } as EcKeyGenParams,
          {
            name: 'ECDSA',
            hash: 'SHA-384',
          } as EcdsaParams,
        ],
        [
          'ECDSA P-521 / SHA-512',
          { name: 'ECDSA', namedCurve: 'P-521' } as EcKeyGenParams,
          {
            name: 'ECDSA',
            hash: 'SHA-512',
          } as EcdsaParams,
        ],
        [
          'RSA PKCS#1 v1.5 / SHA-256',
          rsa('RSASSA-PKCS1-v1_5', 'SHA-256'),
          {
            name: 'RSASSA-PKCS1-v1_5',
          },
        ],
        [
          'RSASSA-PSS / SHA-256',
          rsa('RSA-PSS', 'SHA-256'),
          {
            name: 'RSA-PSS',
            saltLength: 32,
          } as RsaPssParams,
        ],
        ['Ed25519', { name: 'Ed25519' }, { name: 'Ed25519' }],
      ];
      for (const [name, keyAlgorithm, signingAlgorithm] of accepted) {
        t.it(`CA signing with ${name}: accepted; a tampered signature is not`, async () => {
          const { leaf, privateKey, bundles } = await chainSignedWith(
            keyAlgorithm,
            signingAlgorithm,
          );
          assert.equal(await peer([leaf], bundles), 'spiffe://example.org/alg');
          const svid = await validateOwnX509Svid(
            { spiffeId: 'spiffe://example.org/alg', chain: leaf, privateKey, hint: '' },
            bundles,
            new Date(),
          );
          assert.equal(svid.serial, '02');
          // The signature is the certificate's last bytes.
          const tampered = leaf.slice();
          tampered[tampered.length - 2]! ^= 0x01;
          await rejectsWith(peer([tampered], bundles), 'svid_untrusted', /unknown authority/);
        });
      }

      t.it('RSASSA-PSS over SHA-1 is refused like every SHA-1 signature', async () => {
        const { leaf, bundles } = await chainSignedWith(rsa('RSA-PSS', 'SHA-1'), {
          name: 'RSA-PSS',
          saltLength: 20,
        } as RsaPssParams);
        await rejectsWith(peer([leaf], bundles), 'svid_invalid', /insecure or unsupported/);
      });

      t.it('issuer and subject names are compared byte for byte (as Go does)', async () => {
        // The root's CN is a PrintableString; the leaf names it as a UTF8String with the same text.
        const { leaf, bundles } = await chainSignedWith(
          { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams,
          { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
          [{ CN: [{ utf8String: 'algorithm test root' }] }],
        );
        await rejectsWith(peer([leaf], bundles), 'svid_untrusted', /unknown authority/);
      });

      t.it('tbsCertificate must be strict DER at its top level, even when signed', async () => {
        const { pki, bundles } = await setup();
        const svid = await pki.issue('spiffe://example.org/layout', { via: 'intermediate' });
        const key = pki.intermediate.keys.privateKey;
        const inter = svid.chain[1]!;
        // The control: re-signing the fields unchanged gives a valid certificate.
        const same = await reissue(svid.leaf, key, (fields) => fields);
        assert.equal(await peer([same, inter], bundles), 'spiffe://example.org/layout');
        // subjectPublicKeyInfo (the 7th field after [0] version) tagged [0] instead of SEQUENCE.
        const mistagged = await reissue(svid.leaf, key, (fields) =>
          fields.map((f, i) => (i === 6 ? concatBytes(new Uint8Array([0xa0]), f.subarray(1)) : f)),
        );
        // An element after the extensions.
        const trailing = await reissue(svid.leaf, key, (fields) => [
          ...fields,
          new Uint8Array([0x05, 0x00]),
        ]);
        for (const leaf of [mistagged, trailing]) {
          await rejectsWith(peer([leaf, inter], bundles), 'svid_invalid', /failed to parse/);
        }
      });
    },
  );
}
