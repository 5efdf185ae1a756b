/**
 * One-shot Workload API calls (docs/spiffe.md §1.1): `FetchJWTSVID`, and the first message of the
 * `FetchX509Bundles` and `FetchJWTBundles` streams. The long-lived X.509 source is in ./client.ts.
 */
import { SpikeError } from '../../core/errors.ts';
import { parseTrustDomain } from '../../core/spiffe/id.ts';
import type { X509Bundles } from '../../core/spiffe/types.ts';
import { parseX509Bundle } from '../../core/spiffe/x509svid.ts';
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidResponse,
  decodeX509BundlesResponse,
  encodeJwtSvidRequest,
  type JwtSvidMessage,
} from '../../core/workload/proto.ts';
import { GrpcCode, workloadApiError } from '../../core/workload/status.ts';
import { firstMessage, type WorkloadClientOptions } from './call.ts';

/**
 * Fetches JWT-SVIDs for `audience` (unary `FetchJWTSVID`, docs/spiffe.md §1.1). The tokens are
 * returned as sent; validate them with the JWT-SVID validator before trusting their claims.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`) when the call fails or returns no SVID.
 */
export async function fetchJwtSvid(
  options: WorkloadClientOptions & { audience: string[]; spiffeId?: string; timeoutMs?: number },
): Promise<JwtSvidMessage[]> {
  if (options.audience.length === 0 || options.audience.some((a) => a.length === 0)) {
    throw new SpikeError('config_invalid', 'a JWT-SVID needs at least one non-empty audience');
  }
  const bytes = await firstMessage(
    'FetchJWTSVID',
    encodeJwtSvidRequest({ audience: options.audience, spiffeId: options.spiffeId ?? '' }),
    { ...options, unary: true },
  );
  const response = decodeWithStatus(() => decodeJwtSvidResponse(bytes));
  if (response.svids.length === 0) {
    throw workloadApiError({ code: GrpcCode.INTERNAL, message: 'JWTSVIDResponse has no SVIDs' });
  }
  return [...response.svids];
}

/**
 * Fetches the current X.509 bundles once (`FetchX509Bundles`): trust domain → DER roots. Entries
 * whose key is not a trust domain are skipped.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`), or `svid_invalid` for bad bundle bytes.
 */
export async function fetchX509Bundles(
  options: WorkloadClientOptions & { timeoutMs?: number } = {},
): Promise<X509Bundles> {
  const bytes = await firstMessage('FetchX509Bundles', new Uint8Array(0), options);
  const response = decodeWithStatus(() => decodeX509BundlesResponse(bytes));
  const out = new Map<string, readonly Uint8Array[]>();
  for (const [key, value] of response.bundles) {
    const td = trustDomainOrUndefined(key);
    if (td === undefined) continue;
    out.set(td, value.length === 0 ? [] : parseX509Bundle(value));
  }
  return out;
}

/**
 * Fetches the current JWT bundles once (`FetchJWTBundles`): trust domain → JWKS JSON bytes.
 *
 * @throws SpikeError `workload_api_error` (with `grpcCode`).
 */
export async function fetchJwtBundles(
  options: WorkloadClientOptions & { timeoutMs?: number } = {},
): Promise<Map<string, Uint8Array>> {
  const bytes = await firstMessage('FetchJWTBundles', new Uint8Array(0), options);
  const response = decodeWithStatus(() => decodeJwtBundlesResponse(bytes));
  const out = new Map<string, Uint8Array>();
  for (const [key, value] of response.bundles) {
    const td = trustDomainOrUndefined(key);
    if (td !== undefined) out.set(td, value);
  }
  return out;
}

function trustDomainOrUndefined(key: string): string | undefined {
  try {
    return parseTrustDomain(key);
  } catch {
    return undefined;
  }
}

function decodeWithStatus<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw workloadApiError({
      code: GrpcCode.INTERNAL,
      message: error instanceof Error ? error.message : 'invalid message',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The X.509 source.
