/**
 * The server side of the JWT Workload API messages (docs/spiffe.md §1.2), for the tests that play
 * the Workload API. Clients use src/core/workload/proto.ts; the X.509 side is in
 * src/dev/workload-proto.ts.
 */

import type {
  JwtBundlesResponse,
  JwtSvidRequest,
  JwtSvidResponse,
} from '../../src/core/workload/proto.ts';
import { ProtoWriter, walkFields } from '../../src/core/workload/protobuf.ts';

/**
 * Decodes a `JWTSVIDRequest` (server side).
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

/** Encodes a `JWTSVIDResponse`. */
export function encodeJwtSvidResponse(message: JwtSvidResponse): Uint8Array {
  const w = new ProtoWriter();
  for (const s of message.svids) {
    w.len(
      1,
      new ProtoWriter().string(1, s.spiffeId).string(2, s.svid).string(3, s.hint).finish(),
      true,
    );
  }
  return w.finish();
}

/** Encodes a `JWTBundlesResponse`. */
export function encodeJwtBundlesResponse(message: JwtBundlesResponse): Uint8Array {
  return new ProtoWriter().map(1, message.bundles).finish();
}
