/**
 * The server side of the X.509 and JWT Workload API messages (docs/spiffe.md §1.2) and of the
 * `grpc-message` header, for the development issuer (./issuer.ts), which serves them. Clients
 * decode them with src/core/workload/proto.ts and src/core/workload/status.ts.
 */
import type { ServerHttp2Stream } from 'node:http2';
import { utf8 } from '../core/bytes.ts';
import type {
  JwtBundlesResponse,
  JwtSvidRequest,
  JwtSvidResponse,
  X509BundlesResponse,
  X509SvidResponse,
} from '../core/workload/proto.ts';
import { ProtoWriter, walkFields } from '../core/workload/protobuf.ts';

/** A writer holding `svids` as the repeated message field 1, each written by `fields`. */
function svidList<S>(
  svids: readonly S[],
  fields: (message: ProtoWriter, svid: S) => ProtoWriter,
): ProtoWriter {
  const w = new ProtoWriter();
  for (const s of svids) w.len(1, fields(new ProtoWriter(), s).finish(), true);
  return w;
}

/** Encodes an `X509SVIDResponse` (used by the development issuer). */
export function encodeX509SvidResponse(message: X509SvidResponse): Uint8Array {
  const w = svidList(message.svids, (m, s) =>
    m
      .string(1, s.spiffeId)
      .len(2, s.x509Svid)
      .len(3, s.x509SvidKey)
      .len(4, s.bundle)
      .string(5, s.hint),
  );
  for (const c of message.crl) w.len(2, c, true);
  return w.map(3, message.federatedBundles).finish();
}

/** Encodes an `X509BundlesResponse` (used by the development issuer). */
export function encodeX509BundlesResponse(message: X509BundlesResponse): Uint8Array {
  const w = new ProtoWriter();
  for (const c of message.crl) w.len(1, c, true);
  return w.map(2, message.bundles).finish();
}

/**
 * Encodes a status message for `grpc-message`: bytes outside printable ASCII 0x20–0x7E, and `%`
 * itself, are percent-encoded (uppercase hex), as gRPC servers do.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const b of utf8.encode(message)) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Encodes a `JWTSVIDResponse` (used by the development issuer). */
export function encodeJwtSvidResponse(message: JwtSvidResponse): Uint8Array {
  return svidList(message.svids, (m, s) =>
    m.string(1, s.spiffeId).string(2, s.svid).string(3, s.hint),
  ).finish();
}

/** Encodes a `JWTBundlesResponse` (used by the development issuer). */
export function encodeJwtBundlesResponse(message: JwtBundlesResponse): Uint8Array {
  return new ProtoWriter().map(1, message.bundles).finish();
}

/**
 * Decodes a `JWTSVIDRequest` (used by the development issuer).
 *
 * @throws SpikeError `workload_api_error` for malformed protobuf.
 */
export function decodeJwtSvidRequest(buf: Uint8Array): JwtSvidRequest {
  const audience: string[] = [];
  let spiffeId = '';
  walkFields(buf, (field, r) => {
    if (field === 1) audience.push(r.string());
    else if (field === 2) spiffeId = r.string();
    else return false;
    return true;
  });
  return { audience, spiffeId };
}

/** Ends a stream with a trailers-only gRPC answer (status `code`), unless it already answered. */
export function trailersOnly(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.headersSent || stream.closed) return;
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(message),
    },
    { endStream: true },
  );
}
