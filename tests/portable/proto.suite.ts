/**
 * Workload API building blocks, portable: the hand-written protobuf codec (docs/spiffe.md §1.2,
 * §8 rows 39–40 at the codec level), gRPC framing (§1.6; §8 rows 34–36, 41), status helpers,
 * endpoint addresses (§2), Go durations and the backoff schedule (§1.4).
 *
 * The codec is cross-checked against protobufjs (through @grpc/proto-loader and the same
 * workload.proto the grpc-js double uses), an implementation we did not write.
 */
import assert from 'node:assert/strict';
import { BACKOFF_JITTER, backoffDelay, DEFAULT_BACKOFF } from '../../src/core/backoff.ts';
import { concatBytes, fromHex, toHex, utf8 } from '../../src/core/bytes.ts';
import { parseGoDuration } from '../../src/core/duration.ts';
import { isSpikeError } from '../../src/core/errors.ts';
import { formatUnixAddress, parseEndpointAddress } from '../../src/core/workload/address.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeGrpcFrame,
  MessageDecoder,
} from '../../src/core/workload/framing.ts';
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidResponse,
  decodeX509BundlesResponse,
  decodeX509SvidResponse,
  encodeJwtSvidRequest,
  type X509SvidResponse,
} from '../../src/core/workload/proto.ts';
import {
  decodeGrpcMessage,
  GrpcCode,
  grpcCodeName,
  parseGrpcStatus,
} from '../../src/core/workload/status.ts';
import {
  encodeGrpcMessage,
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
} from '../../src/dev/workload-proto.ts';
import { decodeWithProtobufjs, encodeResponseWithProtobufjs } from '../support/workload-double.ts';
import {
  decodeJwtSvidRequest,
  encodeJwtBundlesResponse,
  encodeJwtSvidResponse,
} from '../support/workload-proto.ts';
import type { Harness } from './harness.ts';

const bytes = (...xs: number[]) => Uint8Array.from(xs);
const hex = (s: string) => fromHex(s.replace(/\s+/g, ''));

function rejectsProto(buf: Uint8Array, reason: RegExp): void {
  assert.throws(
    () => decodeX509SvidResponse(buf),
    (error: unknown) => {
      assert.ok(isSpikeError(error));
      assert.equal(error.code, 'workload_api_error');
      assert.match(error.message, reason);
      return true;
    },
  );
}

/** A tag + length prefix for field `field` of wire type 2. */
function ld(field: number, payload: Uint8Array): Uint8Array {
  assert.ok(payload.length < 128);
  return concatBytes(bytes((field << 3) | 2, payload.length), payload);
}

const SAMPLE: X509SvidResponse = {
  svids: [
    {
      spiffeId: 'spiffe://example.org/a',
      x509Svid: bytes(0x30, 1, 2),
      x509SvidKey: bytes(0x30, 3),
      bundle: bytes(0x30, 4, 5, 6),
      hint: 'internal',
    },
    {
      spiffeId: 'spiffe://example.org/b',
      x509Svid: bytes(0x30, 9),
      x509SvidKey: bytes(0x30, 8),
      bundle: bytes(),
      hint: '',
    },
  ],
  crl: [bytes(0x30, 0x00)],
  federatedBundles: new Map([
    ['spiffe://other.org', bytes(0x30, 7)],
    ['spiffe://third.org', bytes(0x30, 8, 8)],
  ]),
};

export function suite(t: Harness): void {
  t.describe('Workload API protobuf codec (docs/spiffe.md §1.2)', () => {
    t.it('round-trips an X509SVIDResponse', () => {
      const decoded = decodeX509SvidResponse(encodeX509SvidResponse(SAMPLE));
      assert.deepEqual(decoded, SAMPLE);
    });

    t.it('decodes what protobufjs encodes, and protobufjs decodes what we encode', () => {
      const reply = {
        svids: SAMPLE.svids.map((s) => ({ ...s })),
        crl: [...SAMPLE.crl],
        federatedBundles: Object.fromEntries(SAMPLE.federatedBundles),
      };
      const theirs = encodeResponseWithProtobufjs('FetchX509SVID', reply);
      assert.deepEqual(decodeX509SvidResponse(theirs), SAMPLE);

      const ours = decodeWithProtobufjs('FetchX509SVID', encodeX509SvidResponse(SAMPLE)) as {
        svids: { spiffeId: string; x509Svid: Uint8Array; hint: string }[];
        federatedBundles: Record<string, Uint8Array>;
      };
      assert.equal(ours.svids.length, 2);
      assert.equal(ours.svids[0]!.spiffeId, 'spiffe://example.org/a');
      assert.equal(toHex(ours.svids[0]!.x509Svid), '300102');
      assert.equal(ours.svids[0]!.hint, 'internal');
      assert.deepEqual(Object.keys(ours.federatedBundles).sort(), [
        'spiffe://other.org',
        'spiffe://third.org',
      ]);
    });

    t.it('tags match the spec table (0x0A svids, 0x1A federated_bundles, 0x2A hint)', () => {
      const one = encodeX509SvidResponse({
        svids: [
          {
            spiffeId: 'spiffe://t/x',
            x509Svid: bytes(1),
            x509SvidKey: bytes(2),
            bundle: bytes(3),
            hint: 'h',
          },
        ],
        crl: [],
        federatedBundles: new Map([['k', bytes(9)]]),
      });
      assert.equal(
        toHex(one),
        '0a1a0a0c7370696666653a2f2f742f781201011a0102220103' + '2a0168' + '1a060a016b120109',
      );
    });

    t.it('an empty request message encodes to zero bytes (X509SVIDRequest)', () => {
      assert.equal(encodeX509BundlesResponse({ crl: [], bundles: new Map() }).length, 0);
      assert.equal(toHex(encodeGrpcFrame(new Uint8Array(0))), '0000000000');
    });

    t.it('hostile #40: unknown fields of wire types 0, 1, 2 and 5 are skipped', () => {
      const svid = concatBytes(
        ld(1, utf8.encode('spiffe://td/x')),
        hex('c8 06 96 01'), // field 105, varint 150
        hex('d1 06 0102030405060708'), // field 106, fixed64
        hex('dd 06 01020304'), // field 107, fixed32
        hex('e2 06 02 aabb'), // field 108, bytes
        ld(5, utf8.encode('h')),
      );
      const msg = concatBytes(hex('08 01'), ld(1, svid), hex('95 01 00000000'), ld(9, bytes(1, 2)));
      const decoded = decodeX509SvidResponse(msg);
      assert.equal(decoded.svids.length, 1);
      assert.equal(decoded.svids[0]!.spiffeId, 'spiffe://td/x');
      assert.equal(decoded.svids[0]!.hint, 'h');
      assert.equal(decoded.crl.length, 0);
    });

    t.it('hostile #40: an explicitly empty string field (2a 00) equals an absent one', () => {
      const decoded = decodeX509SvidResponse(
        ld(1, concatBytes(ld(1, utf8.encode('spiffe://td/x')), hex('2a00'))),
      );
      assert.equal(decoded.svids[0]!.hint, '');
      // protobufjs writes exactly this for an explicitly set empty hint.
      const theirs = encodeResponseWithProtobufjs('FetchX509SVID', {
        svids: [
          {
            spiffeId: 'spiffe://td/x',
            x509Svid: bytes(),
            x509SvidKey: bytes(),
            bundle: bytes(),
            hint: '',
          },
        ],
      });
      assert.ok(toHex(theirs).includes('2a00'));
      assert.equal(decodeX509SvidResponse(theirs).svids[0]!.hint, '');
    });

    t.it(
      'a known field number with an unexpected wire type is skipped like an unknown field',
      () => {
        const decoded = decodeX509SvidResponse(
          concatBytes(hex('08 05'), ld(1, ld(1, utf8.encode('spiffe://td/y')))),
        );
        assert.equal(decoded.svids.length, 1);
      },
    );

    t.it('the last value wins for a singular field seen twice', () => {
      const svid = concatBytes(
        ld(1, utf8.encode('spiffe://td/first')),
        ld(1, utf8.encode('spiffe://td/last')),
        ld(5, utf8.encode('a')),
        ld(5, utf8.encode('b')),
      );
      const decoded = decodeX509SvidResponse(ld(1, svid));
      assert.equal(decoded.svids[0]!.spiffeId, 'spiffe://td/last');
      assert.equal(decoded.svids[0]!.hint, 'b');
    });

    t.it('map entries: missing value is empty bytes; a repeated key keeps the last value', () => {
      const decoded = decodeX509SvidResponse(
        concatBytes(
          ld(3, ld(1, utf8.encode('a.org'))),
          ld(3, concatBytes(ld(1, utf8.encode('b.org')), ld(2, bytes(1)))),
          ld(3, concatBytes(ld(2, bytes(2)), ld(1, utf8.encode('b.org')))),
        ),
      );
      assert.equal(decoded.federatedBundles.get('a.org')!.length, 0);
      assert.deepEqual([...decoded.federatedBundles.get('b.org')!], [2]);
    });

    t.it('hostile #39: a varint longer than 10 bytes is rejected', () => {
      rejectsProto(hex('0a ffffffffffffffffff ff 01'), /longer than 10 bytes|overflows/);
      rejectsProto(hex('08 ffffffffffffffffffff 01'), /longer than 10 bytes|overflows/);
      // a 10-byte varint whose last byte carries more than the 64th bit overflows
      rejectsProto(hex('08 ffffffffffffffffff 02'), /overflows/);
      // the largest valid 10-byte varint is fine (an unknown varint field)
      assert.equal(decodeX509SvidResponse(hex('08 ffffffffffffffffff 01')).svids.length, 0);
    });

    t.it('hostile #39: a length running past the end is rejected', () => {
      rejectsProto(hex('0a 05 0a 01'), /past the end/);
      rejectsProto(hex('0a 02 0a 05 41'), /past the end/);
      rejectsProto(hex('0a'), /truncated/);
      rejectsProto(hex('15 0102'), /past the end/); // fixed32 cut short
      rejectsProto(hex('11 01020304050607'), /past the end/); // fixed64 cut short
    });

    t.it(
      'hostile #39: wire types 3 and 4 (groups), 6 and 7, and field number 0 are rejected',
      () => {
        rejectsProto(hex('0b 0c'), /groups/);
        rejectsProto(hex('0c'), /groups/);
        rejectsProto(hex('0e 00'), /wire type 6/);
        rejectsProto(hex('0f 00'), /wire type 7/);
        rejectsProto(hex('02 00'), /field number/);
        rejectsProto(ld(1, hex('0b 0c')), /groups/); // inside an X509SVID
      },
    );

    t.it('hostile #39: a map entry without a key is rejected', () => {
      rejectsProto(ld(3, ld(2, bytes(0x30, 0))), /without a key/);
      rejectsProto(ld(3, new Uint8Array(0)), /without a key/);
      assert.throws(() => decodeX509BundlesResponse(ld(2, ld(2, bytes(1)))), /without a key/);
    });

    t.it('invalid UTF-8 in a string field is rejected', () => {
      rejectsProto(ld(1, ld(1, bytes(0x73, 0xff))), /UTF-8/);
    });

    t.it('X509BundlesResponse, JWTSVIDRequest/Response and JWTBundlesResponse round-trip', () => {
      const bundles = { crl: [bytes(1)], bundles: new Map([['spiffe://a.org', bytes(0x30, 1)]]) };
      assert.deepEqual(decodeX509BundlesResponse(encodeX509BundlesResponse(bundles)), bundles);
      const request = { audience: ['nexus', 'other'], spiffeId: 'spiffe://a.org/x' };
      assert.deepEqual(decodeJwtSvidRequest(encodeJwtSvidRequest(request)), request);
      const decodedByThem = decodeWithProtobufjs(
        'FetchJWTSVID',
        encodeJwtSvidRequest(request),
        'request',
      );
      assert.deepEqual(decodedByThem.audience, ['nexus', 'other']);
      const response = { svids: [{ spiffeId: 'spiffe://a.org/x', svid: 'a.b.c', hint: '' }] };
      assert.deepEqual(decodeJwtSvidResponse(encodeJwtSvidResponse(response)), response);
      const theirs = encodeResponseWithProtobufjs('FetchJWTSVID', response);
      assert.deepEqual(decodeJwtSvidResponse(theirs), response);
      const jwks = { bundles: new Map([['spiffe://a.org', utf8.encode('{"keys":[]}')]]) };
      assert.deepEqual(decodeJwtBundlesResponse(encodeJwtBundlesResponse(jwks)), jwks);
    });
  });

  t.describe('gRPC Length-Prefixed-Message framing (docs/spiffe.md §1.6)', () => {
    t.it('encodes flag 0 and a big-endian length', () => {
      assert.equal(toHex(encodeGrpcFrame(bytes(0xaa, 0xbb, 0xcc))), '0000000003aabbcc');
    });

    t.it('hostile #41: one message split over many chunks is reassembled', () => {
      const payload = crypto.getRandomValues(new Uint8Array(3000));
      const frame = encodeGrpcFrame(payload);
      const decoder = new MessageDecoder();
      const got: Uint8Array[] = [];
      for (let i = 0; i < frame.length; i++) {
        const r = decoder.push(frame.subarray(i, i + 1));
        assert.equal(r.error, undefined);
        got.push(...r.messages);
        if (i < frame.length - 1) assert.equal(got.length, 0);
      }
      assert.equal(got.length, 1);
      assert.deepEqual(got[0], payload);
      assert.equal(decoder.finish(), undefined);
    });

    t.it('hostile #41: many messages in one chunk, and chunk borders inside prefixes', () => {
      const a = encodeGrpcFrame(bytes(1, 2, 3));
      const b = encodeGrpcFrame(new Uint8Array(0));
      const c = encodeGrpcFrame(bytes(9));
      const all = concatBytes(a, b, c, a);
      const decoder = new MessageDecoder();
      assert.deepEqual(decoder.push(all).messages.map(toHex), ['010203', '', '09', '010203']);
      for (const cut of [2, 5, 6, 9]) {
        const d = new MessageDecoder();
        const first = d.push(all.subarray(0, cut)).messages;
        const rest = d.push(all.subarray(cut)).messages;
        assert.deepEqual([...first, ...rest].map(toHex), ['010203', '', '09', '010203']);
      }
    });

    t.it(
      'hostile #35: a 0xFFFFFFFF length prefix fails as RESOURCE_EXHAUSTED from the prefix alone',
      () => {
        const decoder = new MessageDecoder();
        // Only the 5-byte prefix arrives: the cap decision cannot have waited for (or allocated) a body.
        const r = decoder.push(hex('00 ffffffff'));
        assert.equal(r.error?.code, GrpcCode.RESOURCE_EXHAUSTED);
        assert.match(r.error!.message, /larger than max \(4294967295 vs\. 4194304\)/);
        assert.equal(decoder.push(bytes(1)).error?.code, GrpcCode.RESOURCE_EXHAUSTED);
      },
    );

    t.it('hostile #35: the cap is 4 MiB: cap + 1 is refused, exactly the cap is accepted', () => {
      assert.equal(DEFAULT_MAX_MESSAGE_BYTES, 4 * 1024 * 1024);
      const over = new Uint8Array(5);
      new DataView(over.buffer).setUint32(1, DEFAULT_MAX_MESSAGE_BYTES + 1);
      assert.equal(new MessageDecoder().push(over).error?.code, GrpcCode.RESOURCE_EXHAUSTED);
      const atCap = encodeGrpcFrame(new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES));
      const r = new MessageDecoder().push(atCap);
      assert.equal(r.error, undefined);
      assert.equal(r.messages[0]!.length, DEFAULT_MAX_MESSAGE_BYTES);
      // a configurable cap applies the same way
      assert.equal(
        new MessageDecoder({ maxMessageBytes: 3 }).push(hex('00 00000004')).error?.code,
        8,
      );
    });

    t.it(
      'messages completed before an oversized prefix in the same chunk are still returned',
      () => {
        const r = new MessageDecoder().push(
          concatBytes(encodeGrpcFrame(bytes(7)), hex('00 ffffffff')),
        );
        assert.deepEqual(r.messages.map(toHex), ['07']);
        assert.equal(r.error?.code, GrpcCode.RESOURCE_EXHAUSTED);
      },
    );

    t.it('hostile #36: the compressed flag (or any flag but 0) is INTERNAL', () => {
      const compressed = new MessageDecoder().push(hex('01 00000001 00'));
      assert.equal(compressed.error?.code, GrpcCode.INTERNAL);
      assert.match(compressed.error!.message, /compress/);
      assert.equal(new MessageDecoder().push(hex('02 00000000')).error?.code, GrpcCode.INTERNAL);
    });

    t.it(
      'hostile #34: data ending in the middle of a message is INTERNAL and the partial bytes dropped',
      () => {
        const inBody = new MessageDecoder();
        assert.equal(inBody.push(hex('00 00000004 0102')).messages.length, 0);
        assert.equal(inBody.hasPartialMessage, true);
        assert.equal(inBody.finish()?.code, GrpcCode.INTERNAL);
        assert.equal(inBody.hasPartialMessage, false);
        const inPrefix = new MessageDecoder();
        inPrefix.push(hex('00 00'));
        assert.equal(inPrefix.finish()?.code, GrpcCode.INTERNAL);
        const clean = new MessageDecoder();
        clean.push(encodeGrpcFrame(bytes(1)));
        assert.equal(clean.finish(), undefined);
      },
    );
  });

  t.describe('gRPC status helpers', () => {
    t.it('grpc-status is decimal digits only', () => {
      assert.equal(parseGrpcStatus('7'), 7);
      assert.equal(parseGrpcStatus('0'), 0);
      for (const bad of [undefined, '', ' 7', '7a', '-1', '0x7', '1234']) {
        assert.equal(parseGrpcStatus(bad), undefined, String(bad));
      }
    });

    t.it('grpc-message is percent-decoded leniently', () => {
      assert.equal(decodeGrpcMessage('no%20identity%20issued'), 'no identity issued');
      assert.equal(decodeGrpcMessage('caf%C3%A9'), 'café');
      assert.equal(decodeGrpcMessage('100%'), '100%');
      assert.equal(decodeGrpcMessage('%zz%4'), '%zz%4');
      assert.equal(decodeGrpcMessage('bad%FFutf8'), 'bad\uFFFDutf8');
      assert.equal(decodeGrpcMessage(undefined), '');
    });

    t.it('encodeGrpcMessage percent-encodes non-printable bytes and % itself', () => {
      assert.equal(encodeGrpcMessage('a b%c\né'), 'a b%25c%0A%C3%A9');
      assert.equal(
        decodeGrpcMessage(encodeGrpcMessage('rate limit: 100% é\t')),
        'rate limit: 100% é\t',
      );
    });

    t.it('codes have their gRPC names', () => {
      assert.equal(GrpcCode.PERMISSION_DENIED, 7);
      assert.equal(grpcCodeName(7), 'PERMISSION_DENIED');
      assert.equal(grpcCodeName(16), 'UNAUTHENTICATED');
      assert.equal(grpcCodeName(99), 'CODE(99)');
    });
  });

  t.describe('endpoint address (docs/spiffe.md §2)', () => {
    t.it('accepts the spec table unix forms and percent-decodes the path', () => {
      assert.deepEqual(parseEndpointAddress('unix:///run/spire/agent-sockets/api.sock'), {
        kind: 'unix',
        path: '/run/spire/agent-sockets/api.sock',
      });
      assert.deepEqual(parseEndpointAddress('unix:/abs/api.sock'), {
        kind: 'unix',
        path: '/abs/api.sock',
      });
      assert.deepEqual(parseEndpointAddress('unix:///tmp/my%20dir/caf%C3%A9.sock'), {
        kind: 'unix',
        path: '/tmp/my dir/café.sock',
      });
    });

    t.it('accepts the spec table tcp forms', () => {
      assert.deepEqual(parseEndpointAddress('tcp://127.0.0.1:8000'), {
        kind: 'tcp',
        host: '127.0.0.1',
        port: 8000,
      });
      assert.deepEqual(parseEndpointAddress('tcp://1.2.3.4:5'), {
        kind: 'tcp',
        host: '1.2.3.4',
        port: 5,
      });
      assert.deepEqual(parseEndpointAddress('tcp://[::1]:8081'), {
        kind: 'tcp',
        host: '::1',
        port: 8081,
      });
      assert.deepEqual(parseEndpointAddress('tcp://[2001:db8::10.0.0.1]:1'), {
        kind: 'tcp',
        host: '2001:db8::10.0.0.1',
        port: 1,
      });
      assert.equal((parseEndpointAddress('tcp://127.0.0.1:0080') as { port: number }).port, 80);
    });

    t.it('rejects the spec table counter-examples and other malformed addresses', () => {
      const rejected = [
        'unix:opaque',
        'unix://',
        'unix://foo',
        'unix://foo?whatever',
        'unix://foo#whatever',
        'unix://john:doe@foo/path',
        'unix:///a.sock?x',
        'unix:///a.sock#x',
        'unix:relative/path',
        'unix:///bad%zzescape',
        'unix:///nul%00byte',
        'unix:///with space',
        'UNIX:///upper/case/scheme',
        'tcp:opaque',
        'tcp://',
        'tcp://foo',
        'tcp://foo:80',
        'tcp://1.2.3.4',
        'tcp://1.2.3.4:5/path',
        'tcp://1.2.3.4:5?x',
        'tcp://127.0.0.1:8000/foo',
        'tcp://127.0.0.1:0',
        'tcp://127.0.0.1:65536',
        'tcp://127.0.0.01:80',
        'tcp://256.0.0.1:80',
        'tcp://u@127.0.0.1:80',
        'tcp://[::1]',
        'tcp://[fe80::1%25eth0]:80',
        'tcp://[1:2:3:4:5:6:7:8:9]:80',
        'blah',
        'http://127.0.0.1:80',
        '',
      ];
      for (const value of rejected) {
        assert.throws(
          () => parseEndpointAddress(value),
          (e: unknown) => isSpikeError(e) && e.code === 'spiffe_invalid_address',
          value,
        );
      }
    });

    t.it('formatUnixAddress round-trips through the parser', () => {
      for (const p of ['/tmp/a.sock', '/tmp/my dir/é?#%.sock']) {
        assert.deepEqual(parseEndpointAddress(formatUnixAddress(p)), { kind: 'unix', path: p });
      }
    });
  });

  t.describe('Go durations (SPIKE_SPIFFE_SOURCE_TIMEOUT)', () => {
    t.it('parses what time.ParseDuration accepts', () => {
      const cases: [string, number][] = [
        ['30s', 30_000],
        ['1m30s', 90_000],
        ['1.5h', 5_400_000],
        ['250ms', 250],
        ['0', 0],
        ['-1s', -1000],
        ['+2m', 120_000],
        ['1500us', 1.5],
        ['1µs', 0.001],
        ['2000000ns', 2],
        ['.5s', 500],
        ['1.s', 1000],
        ['1h2m3s4ms', 3_723_004],
      ];
      for (const [input, ms] of cases) assert.equal(parseGoDuration(input), ms, input);
    });

    t.it('rejects what time.ParseDuration rejects', () => {
      for (const bad of ['', '30', '1d', 's', '.s', '1 s', '1S', '-', '1s2', 'abc', '1e3s']) {
        assert.throws(
          () => parseGoDuration(bad),
          (e: unknown) => isSpikeError(e) && e.code === 'config_invalid',
          bad,
        );
      }
    });
  });

  t.describe('reconnection backoff (docs/spiffe.md §1.4)', () => {
    t.it('doubles from 1 s to a 30 s cap', () => {
      const noJitter = () => 0;
      const schedule = [0, 1, 2, 3, 4, 5, 6, 50, 5000].map((n) =>
        backoffDelay(n, DEFAULT_BACKOFF, noJitter),
      );
      assert.deepEqual(schedule, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    });

    t.it('jitter takes at most 20 % off and never exceeds the cap', () => {
      assert.equal(BACKOFF_JITTER, 0.2);
      assert.ok(Math.abs(backoffDelay(0, DEFAULT_BACKOFF, () => 0.999999) - 800) < 0.01);
      for (let attempt = 0; attempt < 12; attempt++) {
        const nominal = Math.min(30_000, 1000 * 2 ** attempt);
        for (let i = 0; i < 50; i++) {
          const d = backoffDelay(attempt);
          assert.ok(d > nominal * 0.8 - 1e-9 && d <= nominal, `${attempt}: ${d}`);
        }
      }
      // the jitter really varies
      const samples = new Set(Array.from({ length: 20 }, () => backoffDelay(3)));
      assert.ok(samples.size > 1);
    });

    t.it('accepts tuning and rejects nonsense', () => {
      assert.equal(
        backoffDelay(3, { initialMs: 10, maxMs: 50 }, () => 0),
        50,
      );
      assert.throws(() => backoffDelay(-1), RangeError);
      assert.throws(() => backoffDelay(0, { initialMs: 0, maxMs: 10 }), RangeError);
      assert.throws(() => backoffDelay(0, { initialMs: 10, maxMs: 5 }), RangeError);
    });
  });
}
