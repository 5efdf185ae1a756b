/**
 * The public surface of the `spike-ts` package (`package.json` `exports["."]`): the SPIKE
 * TypeScript SDK (src/sdk/client.ts), its error type, and the identity helpers an application
 * needs around it. Named exports only (docs/style.md rule 15); anything not listed here is internal.
 *
 * ```ts
 * import { createClient, isSpikeError } from 'spike-ts';
 * const spike = await createClient();
 * const { data } = await spike.getSecret('tenants/acme/db');
 * await spike.close();
 * ```
 */
export { isSpikeError, SpikeError, type SpikeErrorCode } from './core/errors.ts';
export type { RestoreStatus } from './core/shamir/restore-collector.ts';
export type { ShardEnvelope } from './core/shamir/shards.ts';
export { isSpiffeId, parseSpiffeId, type SpiffeId } from './core/spiffe/id.ts';
export type { X509Context, X509Source, X509Svid } from './core/spiffe/types.ts';
export { createX509Source, type X509SourceOptions } from './runtime/workload/client.ts';
export { fetchJwtBundles, fetchJwtSvid, fetchX509Bundles } from './runtime/workload/fetch.ts';
export {
  type CallOptions,
  type CipherOptions,
  type ClientIdentity,
  type ClientOptions,
  createClient,
  DEFAULT_NEXUS_API_URL,
  DEFAULT_RETRY,
  type ImportSummary,
  type JsonCiphertext,
  type Permission,
  type Policy,
  type PolicyInput,
  type PolicyListItem,
  type ReplicaStatus,
  type RetryOptions,
  type SecretMetadata,
  type SecretVersionInfo,
  type SpikeClient,
  type WatchEvent,
  type WatchEventKind,
  type WatchOptions,
} from './sdk/client.ts';
export { SpikeApiError } from './sdk/errors.ts';
