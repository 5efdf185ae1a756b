/**
 * The optional cipher context (docs/spike-api.md §8 "Context", issue 11 finding 8): the stored
 * vectors of tests/vectors/aes-gcm.json `cipherContext` (sealed with Python, independent of Web
 * Crypto), and the wire over real mTLS: JSON `context` field and the stream-mode
 * `spike-cipher-context` header, with wrong and missing contexts answered 400.
 */
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { fromBase64, fromHex, toBase64, toHex, utf8 } from '../src/core/bytes.ts';
import {
  decryptCipherStream,
  deriveContextKey,
  encryptCipherStream,
} from '../src/core/crypto/cipher.ts';
import { deriveKeys } from '../src/core/crypto/keys.ts';
import { isSpikeError } from '../src/core/errors.ts';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { createX509Source } from '../src/runtime/workload/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';
import gcmVectors from './vectors/aes-gcm.json';

setDefaultTimeout(60_000);

const vectors = gcmVectors.cipherContext;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isSpikeError(e)) return e.code;
    throw e;
  }
  return 'resolved';
}

describe('context vectors (§8 "Context")', () => {
  for (const v of vectors.valid) {
    it(`decrypts ${v.comment}`, async () => {
      const keys = await deriveKeys(fromHex(v.rootKey));
      const key = await deriveContextKey(keys.cipherContext, fromHex(v.context));
      expect(toHex(await decryptCipherStream(key, fromHex(v.stream)))).toBe(v.plaintext);
      // Without the context the ciphertext says it needs one.
      expect(await codeOf(decryptCipherStream(keys.cipher, fromHex(v.stream)))).toBe(
        'crypto_context_mismatch',
      );
    });
  }
  for (const v of vectors.invalid) {
    it(`refuses ${v.comment}`, async () => {
      const keys = await deriveKeys(fromHex(vectors.valid[0]!.rootKey));
      const key =
        v.context === ''
          ? keys.cipher
          : await deriveContextKey(keys.cipherContext, fromHex(v.context));
      expect(await codeOf(decryptCipherStream(key, fromHex(v.stream)))).toBe(v.code);
    });
  }
  it('keeps the no-context format: version 1, opened by the plain cipher key', async () => {
    const keys = await deriveKeys(fromHex(vectors.valid[0]!.rootKey));
    const stream = await encryptCipherStream(keys.cipher, utf8.encode('x'));
    expect(stream[0]).toBe(1);
    const bound = await encryptCipherStream(
      await deriveContextKey(keys.cipherContext, utf8.encode('a')),
      utf8.encode('x'),
    );
    expect(bound[0]).toBe(2);
    expect(utf8.decode(await decryptCipherStream(keys.cipher, stream))).toBe('x');
  });
});

describe('context over mTLS', () => {
  let nexus: NexusHarness;
  let source: X509Source;
  let client: MtlsClient;

  beforeAll(async () => {
    nexus = await startNexusHarness();
    source = createX509Source({ address: nexus.issuer.addressFor('pilot') });
    await source.ready();
    client = createMtlsClient({ source, authorizer: authorizeAny(), baseUrl: nexus.url });
  });
  afterAll(async () => {
    await client?.close();
    await source?.close();
    await nexus?.stop();
  });

  async function json(path: string, body: unknown) {
    const res = await client.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      reason: res.headers['spike-error-reason'],
      body: JSON.parse(new TextDecoder().decode(res.body)),
    };
  }

  it('JSON mode: version 2, opens only with the same context; others get a clear 400', async () => {
    const a = toBase64(utf8.encode('tenant-a'));
    const enc = await json('/v1/cipher/encrypt', {
      plaintext: toBase64(utf8.encode('s3')),
      context: a,
    });
    expect(enc.status).toBe(200);
    expect(enc.body.version).toBe(2);
    const ok = await json('/v1/cipher/decrypt', { ...enc.body, context: a });
    expect([ok.status, utf8.decode(fromBase64(ok.body.plaintext))]).toEqual([200, 's3']);
    const wrong = await json('/v1/cipher/decrypt', {
      ...enc.body,
      context: toBase64(utf8.encode('tenant-b')),
    });
    expect([wrong.status, wrong.body.err, wrong.body.plaintext]).toEqual([
      400,
      'api_bad_request',
      null,
    ]);
    expect(wrong.reason).toContain('wrong context');
    const missing = await json('/v1/cipher/decrypt', enc.body);
    expect([missing.status, missing.reason]).toEqual([
      400,
      'ciphertext is bound to a context: decrypt with the same context',
    ]);
    // A no-context ciphertext stays version 1 and refuses a context.
    const plain = await json('/v1/cipher/encrypt', { plaintext: toBase64(utf8.encode('p')) });
    expect(plain.body.version).toBe(1);
    const extra = await json('/v1/cipher/decrypt', { ...plain.body, context: a });
    expect([extra.status, extra.reason]).toEqual([
      400,
      'ciphertext has no context: decrypt without one',
    ]);
    const long = await json('/v1/cipher/encrypt', {
      plaintext: '',
      context: toBase64(new Uint8Array(1025)),
    });
    expect([long.status, long.reason]).toEqual([400, 'invalid context: over 1024 bytes']);
  });

  it('stream mode: the spike-cipher-context header; a mismatch is 400 crypto_context_mismatch', async () => {
    const send = (path: string, body: Uint8Array, context?: string) =>
      client.request(path, {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          ...(context === undefined ? {} : { 'spike-cipher-context': context }),
        },
        body,
      });
    const a = toBase64(utf8.encode('tenant-a'));
    const enc = await send('/v1/cipher/encrypt', utf8.encode('stream secret'), a);
    expect([enc.status, enc.body[0]]).toEqual([200, 2]);
    const ok = await send('/v1/cipher/decrypt', enc.body, a);
    expect([ok.status, utf8.decode(ok.body)]).toEqual([200, 'stream secret']);
    for (const context of [undefined, toBase64(utf8.encode('tenant-b'))]) {
      const bad = await send('/v1/cipher/decrypt', enc.body, context);
      expect([bad.status, new TextDecoder().decode(bad.body)]).toEqual([
        400,
        'crypto_context_mismatch\n',
      ]);
    }
    const garbled = await send('/v1/cipher/decrypt', enc.body, 'not base64!');
    expect(garbled.status).toBe(400);
    expect(JSON.parse(new TextDecoder().decode(garbled.body)).err).toBe('api_bad_request');
  });
});

describe('SDK context option (JSON mode)', () => {
  let nexus: NexusHarness;
  beforeAll(async () => {
    nexus = await startNexusHarness();
  });
  afterAll(async () => {
    await nexus?.stop();
  });

  it('encryptJson/decryptJson take { context }; another context is api_bad_request', async () => {
    const { createClient } = await import('../src/sdk/client.ts');
    const env = nexus.env('pilot');
    const spike = await createClient({
      apiUrl: env.SPIKE_NEXUS_API_URL,
      socket: env.SPIFFE_ENDPOINT_SOCKET,
    });
    try {
      const context = utf8.encode('billing');
      const sealed = await spike.encryptJson(utf8.encode('card'), { context });
      expect(sealed.version).toBe(2);
      expect(utf8.decode(await spike.decryptJson(sealed, { context }))).toBe('card');
      let code = '';
      try {
        await spike.decryptJson(sealed, { context: utf8.encode('payroll') });
      } catch (e) {
        code = isSpikeError(e) ? e.code : 'other';
      }
      expect(code).toBe('api_bad_request');
      // An empty context is no context: version 1.
      expect(
        (await spike.encryptJson(utf8.encode('x'), { context: new Uint8Array(0) })).version,
      ).toBe(1);
    } finally {
      await spike.close();
    }
  });
});
