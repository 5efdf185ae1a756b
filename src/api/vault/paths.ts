/**
 * Request paths of the Vault KV v2 API (docs/vault-kv2.md §1, §3, §5): which requests belong to
 * this API, and what each path names.
 *
 * `parseVaultPath` works on the URL's pathname as received (still percent-encoded) and decodes
 * the secret path exactly once; the SPIKE secret-path rule and the "no trailing `/`" rule are
 * the handler's (they depend on the operation). Portable: no runtime APIs.
 */

/** Default of `SPIKE_NEXUS_VAULT_MOUNT` (§1). */
export const DEFAULT_VAULT_MOUNT = 'secret';

/** Mount names that would shadow a SPIKE route or a Vault system path (§1). */
const RESERVED_MOUNTS: readonly string[] = Object.freeze([
  'store',
  'acl',
  'cipher',
  'operator',
  'bootstrap',
  'auth',
  'sys',
  'identity',
]);

/** True for a valid `SPIKE_NEXUS_VAULT_MOUNT`: one segment `[a-zA-Z0-9_-]+`, not reserved. */
export function isValidVaultMount(mount: string): boolean {
  return /^[a-zA-Z0-9_-]+$/.test(mount) && !RESERVED_MOUNTS.includes(mount);
}

/** The secret-engine operations addressed by `/v1/<mount>/<op>/:path` (§3). */
export type KvOperation = 'data' | 'delete' | 'undelete' | 'destroy' | 'subkeys' | 'metadata';

const KV_OPERATIONS: readonly KvOperation[] = [
  'data',
  'delete',
  'undelete',
  'destroy',
  'subkeys',
  'metadata',
];

/** What a Vault path names. */
export type VaultPath =
  /** `/v1/<mount>/config`. */
  | { readonly kind: 'config' }
  /**
   * `/v1/<mount>/<op>/<path>`: `path` percent-decoded once, `''` for the bare root (`<op>` or
   * `<op>/`); `undefined` when the percent-encoding is invalid.
   */
  | { readonly kind: 'kv'; readonly op: KvOperation; readonly path: string | undefined }
  /** Anything else under the mount (§3 invalid-path warning). */
  | { readonly kind: 'invalid' }
  /** `/v1/sys/internal/ui/mounts/<path>` (§5): `path` decoded, `''` when absent. */
  | { readonly kind: 'ui-mounts'; readonly path: string }
  | { readonly kind: 'health' }
  | { readonly kind: 'seal-status' }
  | { readonly kind: 'lookup-self' }
  | { readonly kind: 'cert-login' }
  /** Other `/v1/sys/…` and `/v1/auth/…` paths: 404 `{"errors":[]}`. */
  | { readonly kind: 'unknown' };

function decodeOnce(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** True when `pathname` belongs to this API: `/v1/<mount>`, `/v1/sys/…` or `/v1/auth/…` (§1). */
export function isVaultRequestPath(pathname: string, mount: string): boolean {
  return (
    pathname === `/v1/${mount}` ||
    pathname.startsWith(`/v1/${mount}/`) ||
    pathname.startsWith('/v1/sys/') ||
    pathname.startsWith('/v1/auth/')
  );
}

/** Classifies a pathname of this API (see {@link isVaultRequestPath}); `undefined` otherwise. */
export function parseVaultPath(pathname: string, mount: string): VaultPath | undefined {
  if (pathname.startsWith('/v1/sys/')) return parseSys(pathname.slice('/v1/sys/'.length));
  if (pathname.startsWith('/v1/auth/')) {
    const rest = pathname.slice('/v1/auth/'.length);
    if (rest === 'token/lookup-self') return { kind: 'lookup-self' };
    if (rest === 'cert/login') return { kind: 'cert-login' };
    return { kind: 'unknown' };
  }
  if (pathname === `/v1/${mount}`) return { kind: 'invalid' };
  const prefix = `/v1/${mount}/`;
  if (!pathname.startsWith(prefix)) return undefined;
  const rest = pathname.slice(prefix.length);
  if (rest === 'config') return { kind: 'config' };
  const slash = rest.indexOf('/');
  const head = slash === -1 ? rest : rest.slice(0, slash);
  const op = KV_OPERATIONS.find((o) => o === head);
  if (op === undefined) return { kind: 'invalid' };
  return { kind: 'kv', op, path: slash === -1 ? '' : decodeOnce(rest.slice(slash + 1)) };
}

function parseSys(rest: string): VaultPath {
  if (rest === 'health') return { kind: 'health' };
  if (rest === 'seal-status') return { kind: 'seal-status' };
  const ui = 'internal/ui/mounts';
  if (rest === ui) return { kind: 'ui-mounts', path: '' };
  if (rest.startsWith(`${ui}/`)) {
    return { kind: 'ui-mounts', path: decodeOnce(rest.slice(ui.length + 1)) ?? '' };
  }
  return { kind: 'unknown' };
}

/**
 * The immediate children of `folder` (`''` = root, else ending in `/`) among `paths`, sorted,
 * folders with a trailing `/` (§3 List: `foo`, `foo/bar` at root → `["foo","foo/"]`).
 */
export function listChildren(paths: readonly string[], folder: string): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    if (!p.startsWith(folder) || p.length === folder.length) continue;
    const rest = p.slice(folder.length);
    const slash = rest.indexOf('/');
    out.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return [...out].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
