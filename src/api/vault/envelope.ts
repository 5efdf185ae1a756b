/**
 * Response bodies of the Vault KV v2 API (docs/vault-kv2.md §2): the success envelope in its key
 * order, error bodies, times and Go duration strings.
 *
 * Portable: no runtime APIs.
 */

/** The success envelope, keys in the order Vault writes them (§2). */
export interface VaultEnvelope {
  readonly request_id: string;
  readonly lease_id: '';
  readonly renewable: false;
  readonly lease_duration: 0;
  readonly data: unknown;
  readonly wrap_info: null;
  readonly warnings: readonly string[] | null;
  readonly auth: unknown;
}

/**
 * Builds the success envelope. `requestId` is a UUID v4 (the caller supplies it so this module
 * stays free of randomness); `warnings` empty or absent → `null`.
 */
export function vaultEnvelope(
  requestId: string,
  data: unknown,
  warnings?: readonly string[],
  auth: unknown = null,
): VaultEnvelope {
  return {
    request_id: requestId,
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: warnings === undefined || warnings.length === 0 ? null : [...warnings],
    auth,
  };
}

/** `{"errors":[…]}`; `[]` for the bare not-found body. */
export function vaultErrorBody(...messages: string[]): { errors: string[] } {
  return { errors: messages };
}

/**
 * RFC 3339 UTC with a millisecond fraction (§2 "Times"; Go parses it with `time.RFC3339`).
 * `null`/`undefined` → `""` (Vault's unset `deletion_time`).
 */
export function formatVaultTime(epochMs: number | null | undefined): string {
  if (epochMs === null || epochMs === undefined) return '';
  return new Date(epochMs).toISOString();
}

/**
 * A duration in milliseconds as Go's `time.Duration.String()` prints whole seconds: `0s`, `45s`,
 * `30m0s`, `3h25m19s`, `-1s` (sub-second parts are dropped: Vault keeps seconds).
 */
export function formatGoDurationSeconds(ms: number): string {
  let s = Math.trunc(ms / 1000);
  if (s === 0) return '0s';
  const sign = s < 0 ? '-' : '';
  s = Math.abs(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${sign}${h}h${m}m${sec}s`;
  if (m > 0) return `${sign}${m}m${sec}s`;
  return `${sign}${sec}s`;
}

/**
 * Go `strconv.ParseBool` (§2 "Verbs", `?list=`): `1 t T TRUE true True` / `0 f F FALSE false
 * False`; anything else → `undefined`.
 */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}
