/**
 * Stored policies (docs/spike-api.md §7) over any storage backend, encrypted at rest (§9).
 *
 * The name is the key and stays in clear; the patterns and permissions are one JSON document
 * sealed under the storage key with associated data `spike/v1/policy ‖ 0 ‖ name`. Validation and
 * RE2 compilation belong to the policy engine; this layer only stores and loads.
 */
import { utf8, zero } from '../../core/bytes.ts';
import { open, policyAad, seal } from '../../core/crypto/envelope.ts';
import { SpikeError } from '../../core/errors.ts';
import { PERMISSIONS, type Permission } from '../../core/policy/validate.ts';
import type { EpochClock, Policy, PolicyStore, RootKeyProvider } from '../../core/ports.ts';
import type { PolicyRow, StoreBackend } from './backend.ts';
import { storageKey } from './secrets.ts';

const notFound = () => new SpikeError('api_not_found', 'policy not found');
const corrupt = () => new SpikeError('api_internal_error', 'corrupt record');

interface PolicyContent {
  spiffeIdPattern: string;
  pathPattern: string;
  permissions: Permission[];
}

function parseContent(plaintext: Uint8Array): PolicyContent {
  let c: unknown;
  try {
    c = JSON.parse(utf8.decode(plaintext));
  } catch {
    throw corrupt();
  }
  const o = c as Partial<Record<keyof PolicyContent, unknown>> | null;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.spiffeIdPattern !== 'string' ||
    typeof o.pathPattern !== 'string' ||
    !Array.isArray(o.permissions) ||
    !o.permissions.every((p) => PERMISSIONS.includes(p as Permission))
  ) {
    throw corrupt();
  }
  return {
    spiffeIdPattern: o.spiffeIdPattern,
    pathPattern: o.pathPattern,
    permissions: o.permissions as Permission[],
  };
}

/** Creates the `PolicyStore` on a backend; `keys` is consulted on every call. */
export function createPolicyStore(
  backend: StoreBackend,
  keys: Pick<RootKeyProvider, 'keys'>,
  clock: EpochClock,
): PolicyStore {
  async function load(row: PolicyRow, key: CryptoKey): Promise<Policy> {
    const plaintext = await open(key, row.data, policyAad(row.name));
    try {
      return {
        name: row.name,
        ...parseContent(plaintext),
        createdAt: new Date(row.createdAt),
        updatedAt: new Date(row.updatedAt),
      };
    } finally {
      zero(plaintext);
    }
  }

  return {
    async upsert(policy) {
      const key = storageKey(keys);
      const content: PolicyContent = {
        spiffeIdPattern: policy.spiffeIdPattern,
        pathPattern: policy.pathPattern,
        permissions: [...policy.permissions],
      };
      const plaintext = utf8.encode(JSON.stringify(content));
      let data: Uint8Array;
      try {
        data = await seal(key, plaintext, policyAad(policy.name));
      } finally {
        zero(plaintext);
      }
      const times = await backend.upsertPolicy(policy.name, data, clock());
      return {
        name: policy.name,
        ...content,
        createdAt: new Date(times.createdAt),
        updatedAt: new Date(times.updatedAt),
      };
    },

    async get(name) {
      const key = storageKey(keys);
      const row = await backend.readPolicy(name);
      if (row === undefined) throw notFound();
      return load(row, key);
    },

    async list() {
      const key = storageKey(keys);
      const rows = await backend.listPolicies();
      return Promise.all(rows.map((row) => load(row, key)));
    },

    async delete(name) {
      storageKey(keys);
      if (!(await backend.deletePolicy(name))) throw notFound();
    },
  };
}
