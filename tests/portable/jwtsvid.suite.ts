/**
 * JWT-SVID validation (docs/spiffe.md §6; hostile rows 44–46 of §8), portable.
 *
 * Tokens are minted here with `jose`'s `SignJWT` from Web Crypto keys, or, when a test needs a
 * header `jose` would refuse to write, signed by hand with Web Crypto (ES256 signatures are raw
 * r‖s, exactly the JWS form). Every bad token carries a real signature from a bundle key unless
 * the signature itself is the defect, so the named defect is the only reason to reject.
 */
import assert from 'node:assert/strict';
import {
  base64url,
  createLocalJWKSet,
  exportJWK,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { utf8 } from '../../src/core/bytes.ts';
import { isSpikeError, type SpikeErrorCode } from '../../src/core/errors.ts';
import {
  type JwtBundles,
  parseJwtBundle,
  parseJwtBundles,
  validateJwtSvid,
} from '../../src/core/spiffe/jwtsvid.ts';
import type { Harness } from './harness.ts';

/** One trust domain's JWT bundle, as the source's bundles map holds it. */
type JwtBundleOf = JwtBundles extends ReadonlyMap<string, infer B> ? B : never;

const AUD = 'spike-nexus';
const SUB = 'spiffe://example.org/workload';

interface KeyPair {
  privateKey: CryptoKey;
  publicJwk: JWK;
}

interface Fixture {
  ec: KeyPair;
  rsa: KeyPair & { privateJwk: JWK };
  /** Not in any bundle; its public JWK carries the same `kid` as `ec`. */
  stranger: KeyPair;
  jwks: string;
  bundles: JwtBundles;
}

async function keyPair(algorithm: EcKeyGenParams | RsaHashedKeyGenParams, kid: string) {
  const pair = (await crypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid };
  return { privateKey: pair.privateKey, publicJwk };
}

let fixture: Promise<Fixture> | undefined;
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const ec = await keyPair({ name: 'ECDSA', namedCurve: 'P-256' }, 'ec-1');
    const rsaPair = await keyPair(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      'rsa-1',
    );
    const rsa = { ...rsaPair, privateJwk: await exportJWK(rsaPair.privateKey) };
    const stranger = await keyPair({ name: 'ECDSA', namedCurve: 'P-256' }, 'ec-1');
    // What SPIRE's FetchJWTBundles sends: a plain JWKS, `use` stripped.
    const jwks = JSON.stringify({ keys: [ec.publicJwk, rsa.publicJwk] });
    const bundles = new Map([['example.org', parseJwtBundle(utf8.encode(jwks))]]);
    return { ec, rsa, stranger, jwks, bundles };
  })();
  return fixture;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  const base: Record<string, unknown> = { sub: SUB, aud: [AUD], exp: now + 300, iat: now };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base as JWTPayload;
}

/** A token minted by jose's SignJWT. */
function mint(
  key: CryptoKey | Uint8Array,
  payload: JWTPayload,
  header: { alg: string; kid?: string; typ?: string },
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

/** A compact JWS with any header at all, signed with Web Crypto (ES256 unless told). */
async function rawSign(
  privateKey: CryptoKey,
  header: Record<string, unknown>,
  payload: unknown,
  algorithm: AlgorithmIdentifier | EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' },
): Promise<string> {
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}`;
  const signature = await crypto.subtle.sign(
    algorithm,
    privateKey,
    utf8.encode(input) as Uint8Array<ArrayBuffer>,
  );
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

function validate(token: string, bundles: JwtBundles, extra: { now?: Date; tol?: number } = {}) {
  return validateJwtSvid(token, bundles, {
    audience: AUD,
    now: extra.now,
    clockToleranceSeconds: extra.tol,
  });
}

/** Rejects with `code` and `message`, and the message echoes no part of the token. */
async function rejects(
  token: string,
  bundles: JwtBundles,
  code: SpikeErrorCode,
  message: RegExp,
  extra: { now?: Date; tol?: number } = {},
): Promise<void> {
  await assert.rejects(validate(token, bundles, extra), (error: unknown) => {
    assert.ok(isSpikeError(error), `expected a SpikeError, got ${String(error)}`);
    assert.equal(error.code, code, `code for: ${error.message}`);
    assert.match(error.message, message);
    for (const part of token.split('.')) {
      if (part.length >= 8) assert.ok(!error.message.includes(part), 'message echoes the token');
    }
    return true;
  });
}

function rejectsParse(input: string, message: RegExp): void {
  assert.throws(
    () => parseJwtBundle(input),
    (error: unknown) => {
      assert.ok(isSpikeError(error));
      assert.equal(error.code, 'svid_invalid');
      assert.match(error.message, message);
      return true;
    },
  );
}

export function suite(t: Harness): void {
  t.describe('JWT-SVID validation: valid tokens (docs/spiffe.md §6)', () => {
    t.it('ES256 with typ JWT', async () => {
      const { ec, bundles } = await setup();
      const payload = claims({ jti: 'abc' });
      const token = await mint(ec.privateKey, payload, { alg: 'ES256', kid: 'ec-1', typ: 'JWT' });
      const svid = await validate(token, bundles);
      assert.equal(svid.id, SUB);
      assert.equal(svid.trustDomain, 'example.org');
      assert.deepEqual(svid.audience, [AUD]);
      assert.equal(svid.expiry.getTime(), (payload.exp as number) * 1000);
      assert.equal(svid.claims.jti, 'abc');
      assert.equal(svid.claims.sub, SUB);
    });

    t.it('ES256 with typ absent and with typ JOSE', async () => {
      const { ec, bundles } = await setup();
      const absent = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      assert.equal((await validate(absent, bundles)).id, SUB);
      const jose = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1', typ: 'JOSE' });
      assert.equal((await validate(jose, bundles)).id, SUB);
    });

    t.it('RS256 and PS256 under the same RSA authority', async () => {
      const { rsa, bundles } = await setup();
      const rs = await mint(rsa.privateKey, claims(), { alg: 'RS256', kid: 'rsa-1', typ: 'JWT' });
      assert.equal((await validate(rs, bundles)).id, SUB);
      const pssKey = (await importJWK(rsa.privateJwk, 'PS256')) as CryptoKey;
      const ps = await mint(pssKey, claims(), { alg: 'PS256', kid: 'rsa-1' });
      assert.equal((await validate(ps, bundles)).id, SUB);
    });

    t.it('multiple audiences, and a single-string aud', async () => {
      const { ec, bundles } = await setup();
      const many = await mint(ec.privateKey, claims({ aud: ['a', AUD, 'c'] }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      assert.deepEqual((await validate(many, bundles)).audience, ['a', AUD, 'c']);
      const single = await mint(ec.privateKey, claims({ aud: AUD }), { alg: 'ES256', kid: 'ec-1' });
      assert.deepEqual((await validate(single, bundles)).audience, [AUD]);
    });

    t.it('bundles straight from FetchJWTBundles bytes (parseJwtBundles)', async () => {
      const { ec, jwks } = await setup();
      const bundles = parseJwtBundles(new Map([['example.org', utf8.encode(jwks)]]));
      const token = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      assert.equal((await validate(token, bundles)).trustDomain, 'example.org');
    });

    t.it(
      'clock tolerance: exp, nbf and iat within the leeway (default 30 s, up to 60 s)',
      async () => {
        const { ec, bundles } = await setup();
        const now = nowSeconds();
        const sign = (c: Record<string, unknown>) =>
          mint(ec.privateKey, claims(c), { alg: 'ES256', kid: 'ec-1' });
        const expired20 = await sign({ exp: now - 20, iat: now - 300 });
        assert.equal((await validate(expired20, bundles)).id, SUB);
        await rejects(expired20, bundles, 'svid_untrusted', /^token has expired$/, { tol: 0 });
        const expired45 = await sign({ exp: now - 45, iat: now - 300 });
        await rejects(expired45, bundles, 'svid_untrusted', /^token has expired$/);
        assert.equal((await validate(expired45, bundles, { tol: 60 })).id, SUB);
        const expired90 = await sign({ exp: now - 90, iat: now - 300 });
        await rejects(expired90, bundles, 'svid_untrusted', /expired/, { tol: 60 });

        const early = await sign({ nbf: now + 20 });
        assert.equal((await validate(early, bundles)).id, SUB);
        await rejects(early, bundles, 'svid_untrusted', /not valid yet/, { tol: 0 });
        await rejects(await sign({ nbf: now + 45 }), bundles, 'svid_untrusted', /not valid yet/);

        const issuedAhead = await sign({ iat: now + 20 });
        assert.equal((await validate(issuedAhead, bundles)).id, SUB);
        await rejects(issuedAhead, bundles, 'svid_untrusted', /issued in the future/, { tol: 0 });
      },
    );

    t.it('`now` decides the window', async () => {
      const { ec, bundles } = await setup();
      const token = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      const later = new Date(Date.now() + 3600_000);
      await rejects(token, bundles, 'svid_untrusted', /expired/, { now: later });
      const earlier = new Date(Date.now() - 3600_000);
      await rejects(token, bundles, 'svid_untrusted', /issued in the future/, { now: earlier });
    });

    t.it('bad options are programmer errors', async () => {
      const { ec, bundles } = await setup();
      const token = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      for (const tol of [61, -1, Number.NaN]) {
        await assert.rejects(validate(token, bundles, { tol }), RangeError);
      }
      await assert.rejects(validateJwtSvid(token, bundles, { audience: '' }), TypeError);
      await assert.rejects(validate(token, bundles, { now: new Date(Number.NaN) }), RangeError);
    });
  });

  t.describe('JWT-SVID hostile inputs (docs/spiffe.md §8 rows 44–46)', () => {
    t.it('hostile #44: alg none is rejected (empty signature, and with a signature)', async () => {
      const { ec, bundles } = await setup();
      const unsecured = new UnsecuredJWT(claims()).encode();
      assert.ok(unsecured.endsWith('.'));
      await rejects(unsecured, bundles, 'svid_invalid', /algorithm not allowed/);
      const withKid = await rawSign(ec.privateKey, { alg: 'none', kid: 'ec-1' }, claims());
      await rejects(withKid, bundles, 'svid_invalid', /algorithm not allowed/);
      await rejects(
        `${withKid.slice(0, withKid.lastIndexOf('.'))}.`,
        bundles,
        'svid_invalid',
        /algorithm not allowed/,
      );
    });

    t.it('hostile #44: HS256 signed with an HMAC secret is rejected', async () => {
      const { ec, bundles } = await setup();
      const secret = crypto.getRandomValues(new Uint8Array(32));
      const hs = await mint(secret, claims(), { alg: 'HS256', kid: 'ec-1', typ: 'JWT' });
      await rejects(hs, bundles, 'svid_invalid', /algorithm not allowed/);
      // Key confusion: the HMAC secret is the public key as the verifier knows it.
      const confused = await mint(utf8.encode(JSON.stringify(ec.publicJwk)), claims(), {
        alg: 'HS256',
        kid: 'ec-1',
      });
      await rejects(confused, bundles, 'svid_invalid', /algorithm not allowed/);
      const hs512 = await mint(secret, claims(), { alg: 'HS512', kid: 'ec-1' });
      await rejects(hs512, bundles, 'svid_invalid', /algorithm not allowed/);
    });

    t.it('hostile #44: EdDSA and non-JWS algorithm names are rejected', async () => {
      const { ec, bundles } = await setup();
      const ed = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const bundleWithEd = new Map([
        [
          'example.org',
          { keys: [{ ...(await exportJWK(ed.publicKey)), kid: 'ed-1' }] } as JwtBundleOf,
        ],
      ]);
      const eddsa = await mint(ed.privateKey, claims(), { alg: 'EdDSA', kid: 'ed-1' });
      await rejects(eddsa, bundleWithEd, 'svid_invalid', /algorithm not allowed/);
      for (const alg of ['es256', 'RS1', 'ES256K', 'Ed25519', '']) {
        const token = await rawSign(ec.privateKey, { alg, kid: 'ec-1' }, claims());
        await rejects(token, bundles, 'svid_invalid', /algorithm not allowed/);
      }
      const noAlg = await rawSign(ec.privateKey, { kid: 'ec-1' }, claims());
      await rejects(noAlg, bundles, 'svid_invalid', /algorithm not allowed/);
    });

    t.it(
      'hostile #44: a token without kid (absent, empty or not a string) is rejected',
      async () => {
        const { ec, bundles } = await setup();
        const none = await mint(ec.privateKey, claims(), { alg: 'ES256', typ: 'JWT' });
        await rejects(none, bundles, 'svid_invalid', /^token header missing key id$/);
        for (const kid of ['', 7, null]) {
          const token = await rawSign(ec.privateKey, { alg: 'ES256', kid }, claims());
          await rejects(token, bundles, 'svid_invalid', /^token header missing key id$/);
        }
      },
    );

    t.it('hostile #45: exp missing is rejected (jose alone would accept it)', async () => {
      const { ec, bundles } = await setup();
      const token = await mint(ec.privateKey, claims({ exp: undefined }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      // The pitfall: without requiredClaims, jose verifies a token that never expires.
      const bare = await jwtVerify(token, createLocalJWKSet({ keys: [ec.publicJwk] }), {
        audience: AUD,
      });
      assert.equal(bare.payload.exp, undefined);
      await rejects(token, bundles, 'svid_invalid', /^token missing exp claim$/);
      const stringExp = await mint(ec.privateKey, claims({ exp: String(nowSeconds() + 300) }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      await rejects(stringExp, bundles, 'svid_invalid', /invalid exp claim/);
      const hugeExp = await rawSign(
        ec.privateKey,
        { alg: 'ES256', kid: 'ec-1' },
        claims({ exp: 1e300 }),
      );
      await rejects(hugeExp, bundles, 'svid_invalid', /invalid exp claim/);
    });

    t.it('hostile #45: exp in the past is rejected', async () => {
      const { ec, bundles } = await setup();
      const now = nowSeconds();
      const token = await mint(ec.privateKey, claims({ exp: now - 3600, iat: now - 7200 }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      await rejects(token, bundles, 'svid_untrusted', /^token has expired$/);
    });

    t.it('hostile #45: aud missing, empty or not ours is rejected', async () => {
      const { ec, bundles } = await setup();
      const sign = (aud: unknown) =>
        mint(ec.privateKey, claims({ aud }), { alg: 'ES256', kid: 'ec-1' });
      await rejects(await sign(undefined), bundles, 'svid_invalid', /^token missing aud claim$/);
      await rejects(
        await sign([]),
        bundles,
        'svid_invalid',
        /^expected audience in \["spike-nexus"\]$/,
      );
      await rejects(await sign(['other', 'x']), bundles, 'svid_invalid', /expected audience in/);
      await rejects(await sign('spike-nexus-2'), bundles, 'svid_invalid', /expected audience in/);
      // Prefix and case do not match.
      await rejects(await sign(['SPIKE-NEXUS']), bundles, 'svid_invalid', /expected audience in/);
      // Ours is there, but a member is not a string.
      await rejects(
        await sign([AUD, 5]),
        bundles,
        'svid_invalid',
        /^token has an invalid aud claim$/,
      );
    });

    t.it('hostile #45: a bad sub is rejected (strict SPIFFE ID parse)', async () => {
      const { ec, bundles } = await setup();
      const sign = (sub: unknown) =>
        rawSign(ec.privateKey, { alg: 'ES256', kid: 'ec-1' }, claims({ sub }));
      for (const sub of [
        'spiffe://Example.org/x',
        'https://x/y',
        'SPIFFE://example.org/x',
        'spiffe://example.org/a/../b',
        'spiffe://example.org:443/x',
        'spiffe://example.org/x/',
        '',
        42,
        null,
        ['spiffe://example.org/x'],
      ]) {
        await rejects(
          await sign(sub),
          bundles,
          'svid_invalid',
          /^token has an invalid subject claim$/,
        );
      }
      const missing = await mint(ec.privateKey, claims({ sub: undefined }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      await rejects(missing, bundles, 'svid_invalid', /^token missing subject claim$/);
    });

    t.it('hostile #45: typ other than JWT or JOSE (at+jwt, …) is rejected', async () => {
      const { ec, bundles } = await setup();
      for (const typ of ['at+jwt', 'jwt', 'application/jwt', 'JWS', '']) {
        const token = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1', typ });
        await rejects(
          token,
          bundles,
          'svid_invalid',
          /^token header type not equal to either JWT or JOSE$/,
        );
      }
      const numeric = await rawSign(ec.privateKey, { alg: 'ES256', kid: 'ec-1', typ: 1 }, claims());
      await rejects(numeric, bundles, 'svid_invalid', /type not equal to either JWT or JOSE/);
    });

    t.it('hostile #45: a trust domain without bundle is rejected (fail closed)', async () => {
      const { ec, bundles } = await setup();
      // Signed by a key that the example.org bundle trusts: the bundle must follow sub.
      const token = await mint(ec.privateKey, claims({ sub: 'spiffe://other.org/x' }), {
        alg: 'ES256',
        kid: 'ec-1',
      });
      await rejects(
        token,
        bundles,
        'svid_untrusted',
        /^no bundle found for trust domain "other\.org"$/,
      );
      await rejects(token, new Map(), 'svid_untrusted', /no bundle found for trust domain/);
      const empty = new Map([['example.org', parseJwtBundle('{"keys":[]}')]]);
      const ours = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      await rejects(ours, empty, 'svid_untrusted', /no JWT authority found/);
    });

    t.it('hostile #45: unknown kid, a foreign key with a known kid, or tampering', async () => {
      const { ec, rsa, stranger, bundles } = await setup();
      const unknownKid = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-2' });
      await rejects(unknownKid, bundles, 'svid_untrusted', /no JWT authority found/);
      const foreign = await mint(stranger.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      await rejects(foreign, bundles, 'svid_untrusted', /signature verification failed/);
      // kid of the RSA authority with an EC algorithm: no usable key.
      const mismatch = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'rsa-1' });
      await rejects(mismatch, bundles, 'svid_untrusted', /no JWT authority found/);
      const signed = await mint(rsa.privateKey, claims(), { alg: 'RS256', kid: 'rsa-1' });
      const [h, , s] = signed.split('.');
      const forged = base64url.encode(
        JSON.stringify(claims({ sub: 'spiffe://example.org/admin' })),
      );
      await rejects(
        `${h}.${forged}.${s}`,
        bundles,
        'svid_untrusted',
        /signature verification failed/,
      );
    });

    t.it('an RSA authority under 2048 bits fails closed', async () => {
      const weak = await keyPair(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 1024,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        'weak',
      );
      const bundles = new Map([
        ['example.org', parseJwtBundle(JSON.stringify({ keys: [weak.publicJwk] }))],
      ]);
      // jose refuses to sign with it, so sign by hand.
      const header = { alg: 'RS256', kid: 'weak' };
      const token = await rawSign(weak.privateKey, header, claims(), 'RSASSA-PKCS1-v1_5');
      await rejects(token, bundles, 'svid_untrusted', /unable to verify token/);
    });

    t.it('hostile #45: header parameters other than alg, kid, typ are rejected', async () => {
      const { ec, bundles } = await setup();
      const extras: Record<string, unknown>[] = [
        { crit: ['exp'], exp: 1 },
        { jku: 'https://attacker.example/jwks.json' },
        { x5u: 'https://attacker.example/cert.pem' },
        { jwk: ec.publicJwk },
        { x5c: ['MIIB'] },
        { b64: false, crit: ['b64'] },
        { b64: true },
        { cty: 'JWT' },
        { x5t: 'abc' },
        JSON.parse('{"__proto__": {"alg": "ES256"}}') as Record<string, unknown>,
      ];
      for (const extra of extras) {
        const token = await rawSign(
          ec.privateKey,
          { alg: 'ES256', kid: 'ec-1', ...extra },
          claims(),
        );
        await rejects(
          token,
          bundles,
          'svid_invalid',
          /^token header has an unsupported parameter$/,
        );
      }
    });

    t.it('hostile #45: anything but JWS compact is rejected', async () => {
      const { ec, bundles } = await setup();
      const good = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
      const [h, p, s] = good.split('.') as [string, string, string];
      const cases: [string, RegExp][] = [
        [`${h}.${p}`, /compact serialisation/],
        [`${good}.${s}`, /compact serialisation/],
        [
          JSON.stringify({ protected: h, payload: p, signature: s }),
          /compact serialisation|malformed/,
        ],
        [`${h}=.${p}.${s}`, /header is malformed/],
        [`${h}.${p}.${s}=`, /signature is missing or malformed/],
        [`${h}.${p}.`, /signature is missing or malformed/],
        [`${base64url.encode('[1]')}.${p}.${s}`, /header is malformed/],
        [`${h}.${base64url.encode('"x"')}.${s}`, /claims are malformed/],
        [`${h}.${p}+.${s}`, /claims are malformed/],
        [` ${good}`, /header is malformed/],
        ['', /compact serialisation/],
      ];
      for (const [token, message] of cases) await rejects(token, bundles, 'svid_invalid', message);
      await assert.rejects(
        validateJwtSvid(7 as unknown as string, bundles, { audience: AUD }),
        TypeError,
      );
    });

    t.it(
      'hostile #46: a `use: "jwt-svid"` key passed to jose gives ERR_JWKS_NO_MATCHING_KEY',
      async () => {
        const { ec } = await setup();
        const token = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
        const federated = { keys: [{ ...ec.publicJwk, use: 'jwt-svid' }] };
        await assert.rejects(
          jwtVerify(token, createLocalJWKSet(federated), { audience: AUD }),
          (error: unknown) => {
            assert.equal((error as { code?: unknown }).code, 'ERR_JWKS_NO_MATCHING_KEY');
            return true;
          },
        );
        // Unparsed, our validator fails closed on the same set.
        const raw = new Map([['example.org', federated as JwtBundleOf]]);
        await rejects(token, raw, 'svid_untrusted', /no JWT authority found/);
        // Through parseJwtBundle (which strips `use`) the same key verifies.
        const parsed = parseJwtBundle(JSON.stringify(federated));
        assert.equal(parsed.keys.length, 1);
        assert.equal(parsed.keys[0]?.use, undefined);
        assert.equal(parsed.keys[0]?.kid, 'ec-1');
        const svid = await validate(token, new Map([['example.org', parsed]]));
        assert.equal(svid.id, SUB);
      },
    );

    t.it(
      'hostile #46: a SPIFFE federation bundle: x509-svid keys dropped, jwt-svid kept',
      async () => {
        const { ec, rsa } = await setup();
        const bundle = parseJwtBundle(
          JSON.stringify({
            keys: [
              { ...ec.publicJwk, kid: 'x509-ca', use: 'x509-svid', x5c: ['MIIBAA=='] },
              { ...rsa.publicJwk, use: 'jwt-svid' },
              { ...ec.publicJwk, kid: 'enc-1', use: 'enc' },
            ],
            spiffe_sequence: 3,
            spiffe_refresh_hint: 300,
          }),
        );
        assert.deepEqual(
          bundle.keys.map((k) => k.kid),
          ['rsa-1'],
        );
        const bundles = new Map([['example.org', bundle]]);
        const rs = await mint(rsa.privateKey, claims(), { alg: 'RS256', kid: 'rsa-1' });
        assert.equal((await validate(rs, bundles)).id, SUB);
        // The X.509 CA key signs a token: it is not a JWT authority.
        const byCa = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'x509-ca' });
        await rejects(byCa, bundles, 'svid_untrusted', /no JWT authority found/);
        const byEnc = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'enc-1' });
        await rejects(byEnc, bundles, 'svid_untrusted', /no JWT authority found/);
      },
    );

    t.it(
      'hostile #46: parseJwtBundle: use sig/absent kept; bad JWKS, missing kid, private keys rejected',
      async () => {
        const { ec, rsa, stranger } = await setup();
        const kept = parseJwtBundle(
          JSON.stringify({ keys: [{ ...ec.publicJwk, use: 'sig' }, rsa.publicJwk] }),
        );
        assert.deepEqual(
          kept.keys.map((k) => [k.kid, k.use]),
          [
            ['ec-1', undefined],
            ['rsa-1', undefined],
          ],
        );
        assert.ok(
          Object.isFrozen(kept) && Object.isFrozen(kept.keys) && Object.isFrozen(kept.keys[0]),
        );
        rejectsParse('not json', /not JSON/);
        rejectsParse('[]', /missing keys/);
        rejectsParse('{"keys":{}}', /missing keys/);
        rejectsParse('{"keys":[1]}', /not an object/);
        const { kid: _kid, ...noKid } = ec.publicJwk;
        rejectsParse(JSON.stringify({ keys: [noKid] }), /missing key id/);
        rejectsParse(
          JSON.stringify({ keys: [{ ...noKid, use: 'jwt-svid', kid: '' }] }),
          /missing key id/,
        );
        rejectsParse(JSON.stringify({ keys: [{ ...rsa.privateJwk, kid: 'p' }] }), /public key/);
        rejectsParse(
          JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }] }),
          /public key/,
        );
        // An x509-svid key needs no kid: it is dropped before the check.
        assert.equal(
          parseJwtBundle(JSON.stringify({ keys: [{ ...noKid, use: 'x509-svid' }] })).keys.length,
          0,
        );
        // Key types no allowed algorithm uses are dropped.
        const okp = {
          kty: 'OKP',
          crv: 'Ed25519',
          x: base64url.encode(new Uint8Array(32)),
          kid: 'ed',
        };
        assert.equal(parseJwtBundle(JSON.stringify({ keys: [okp] })).keys.length, 0);

        // Duplicate kid: the last key listed is the authority (as go-spiffe).
        const dup = new Map([
          [
            'example.org',
            parseJwtBundle(JSON.stringify({ keys: [ec.publicJwk, stranger.publicJwk] })),
          ],
        ]);
        assert.equal(dup.get('example.org')?.keys.length, 1);
        const byStranger = await mint(stranger.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
        assert.equal((await validate(byStranger, dup)).id, SUB);
        const byFirst = await mint(ec.privateKey, claims(), { alg: 'ES256', kid: 'ec-1' });
        await rejects(byFirst, dup, 'svid_untrusted', /signature verification failed/);
      },
    );
  });
}
