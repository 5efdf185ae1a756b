/**
 * The Vault mount configuration (`secret/config`, docs/vault-kv2.md §3, §4.2–§4.4), shared by both
 * APIs. It holds no secret and is kept as a plaintext store setting, read once and written
 * through.
 */
import type { StoreBackend } from './backend.ts';
import { DEFAULT_MOUNT_CONFIG, type MountConfig } from './kv2-rules.ts';

/** The store setting that holds the mount configuration (plaintext JSON). */
const MOUNT_CONFIG_SETTING = 'vault_mount_config';

/** The mount configuration, read once from the store and written through. */
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
  backend: Pick<StoreBackend, 'getSetting' | 'setSetting'>,
): MountConfigStore {
  let cached: MountConfig | undefined;
  return {
    get() {
      cached ??= parseMountConfig(backend.getSetting(MOUNT_CONFIG_SETTING));
      return cached;
    },
    async set(config) {
      const written = backend.setSetting(MOUNT_CONFIG_SETTING, JSON.stringify(config));
      cached = { ...config };
      await written;
    },
  };
}
