/**
 * Root key providers: where the storage layer gets its derived keys (src/core/ports.ts `RootKeyProvider`,
 * docs/spike-api.md §9).
 *
 * Invariant (docs/architecture.md invariant 1): the root key lives only in memory. Providers keep the
 * HKDF-derived keys as non-extractable `CryptoKey`s and the KCV; they zero their own copy of the
 * raw root key as soon as the keys are derived and never hand it back. Anything that needs the
 * raw key later (Shamir shares for Keepers and recovery files) must be made from it by the
 * caller before `install`: the Keeper lifecycle splits the key, keeps the share set of that
 * generation in memory, then installs.
 */
import { zero } from '../../core/bytes.ts';
import { deriveKeys, generateRootKey } from '../../core/crypto/keys.ts';
import { SpikeError } from '../../core/errors.ts';
import type { DerivedKeys, RootKeyProvider } from '../../core/ports.ts';

/**
 * A provider that holds one key from the start: the memory backend (a random key per process,
 * docs/architecture.md "In-memory backend") and tests. Without `rootKey` a random one is generated
 * and zeroed after derivation. A given `rootKey` is copied; the caller's array is not modified.
 */
export async function createStaticRootKeyProvider(rootKey?: Uint8Array): Promise<RootKeyProvider> {
  const raw = rootKey === undefined ? generateRootKey() : rootKey.slice();
  let keys: DerivedKeys;
  try {
    keys = await deriveKeys(raw);
  } finally {
    zero(raw);
  }
  return { keys: () => keys };
}

/**
 * A provider that starts without a key (Nexus answers `state_not_ready`) and becomes ready once
 * the Keeper lifecycle, bootstrap or an operator restore installs the root key.
 *
 * It keeps only the derived keys: split the key into shares before installing it (module doc).
 * A key is installed once; replacing it is refused, as restore never replaces a key (§9).
 */
export class MutableRootKeyProvider implements RootKeyProvider {
  #keys: DerivedKeys | undefined;
  #installing = false;

  keys(): DerivedKeys | undefined {
    return this.#keys;
  }

  /** True once a key is installed. */
  get ready(): boolean {
    return this.#keys !== undefined;
  }

  /**
   * Derives the purpose keys from `rootKey` (32 bytes) and makes them current. Works on a copy
   * that is zeroed before returning; the caller zeroes its own array. Returns the derived keys
   * (their `kcv` is what the caller checks against, or stores as, the key-check record).
   * Throws `state_already_initialized` when a key is already installed or being installed.
   */
  async install(rootKey: Uint8Array): Promise<DerivedKeys> {
    if (this.#keys !== undefined || this.#installing) {
      throw new SpikeError('state_already_initialized', 'root key already installed');
    }
    this.#installing = true;
    const raw = rootKey.slice();
    try {
      const keys = await deriveKeys(raw);
      this.#keys = keys;
      return keys;
    } finally {
      zero(raw);
      this.#installing = false;
    }
  }
}
