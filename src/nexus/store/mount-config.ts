/**
 * The Vault mount configuration (`secret/config`, docs/vault-kv2.md §3, §4.2–§4.4), shared by both
 * APIs. It holds no secret and is kept as a plaintext store setting, written through and parsed
 * again whenever the backend's copy of the setting changes (PostgreSQL reloads it when another
 * replica writes it, src/nexus/store/postgres.ts), so every replica enforces the same settings.
 */
import type { StoreBackend } from './backend.ts';
import { DEFAULT_MOUNT_CONFIG, type MountConfig } from './kv2-rules.ts';

/** The store setting that holds the mount configuration (plaintext JSON). */
const MOUNT_CONFIG_SETTING = 'vault_mount_config';

/** The mount configuration, as the backend's setting says, written through. */
export interface MountConfigStore {
  get(): MountConfig;
  /** Durable when the promise resolves (at once for SQLite and memory). */
  set(config: MountConfig): Promise<void>;
}

function parseMountConfig(text: string | undefined): MountConfig {
  if (text === undefined) return DEFAULT_MOUNT_CONFIG;
  try {
    const v = JSON.parse(text) as Partial<Record<keyof MountConfig, unknown>>;
    const int = (x: unknown) => (Number.isSafeInteger(x) ? (x as number) : 0);
    return {
      maxVersions: Math.max(0, int(v.maxVersions)),
      casRequired: v.casRequired === true,
      deleteVersionAfterMs: int(v.deleteVersionAfterMs),
    };
  } catch {
    return DEFAULT_MOUNT_CONFIG;
  }
}

/** Creates the mount configuration store of a backend. */
export function createMountConfigStore(
  backend: Pick<StoreBackend, 'kind' | 'getSetting' | 'setSetting'>,
): MountConfigStore {
  // One process owns a SQLite or memory store: the setting is read once. PostgreSQL keeps its
  // settings in memory and reloads them on change, so the text is looked up on every call.
  const live = backend.kind === 'postgres';
  let cached: { readonly text: string | undefined; readonly config: MountConfig } | undefined;
  return {
    get() {
      if (cached !== undefined && !live) return cached.config;
      const text = backend.getSetting(MOUNT_CONFIG_SETTING);
      if (cached === undefined || cached.text !== text) {
        cached = { text, config: parseMountConfig(text) };
      }
      return cached.config;
    },
    async set(config) {
      const text = JSON.stringify(config);
      const written = backend.setSetting(MOUNT_CONFIG_SETTING, text);
      cached = { text, config: { ...config } };
      await written;
    },
  };
}
