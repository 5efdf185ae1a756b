/**
 * The calls of the SDK, grouped as the API is (docs/spike-api.md §4 secrets and policies, §8 cipher,
 * §9 operator): each builds the upstream request body, sends it to its route from the contract
 * (src/api/v1/routes.ts) and reads the 200 answer strictly (./wire.ts).
 */
import { NEXUS_ROUTES, routeTarget } from '../api/v1/routes.ts';
import { toBase64 } from '../core/bytes.ts';
import type { Permission, PolicyInput } from '../core/policy/validate.ts';
import type { RestoreStatus } from '../core/shamir/restore-collector.ts';
import { parseRecoveryLine, parseShardEnvelope } from '../core/shamir/shards.ts';
import { malformedResponse } from './errors.ts';
import type { CallOptions, SecretVersionInfo, SpikeClient } from './types.ts';
import {
  bytes,
  checkBytes,
  checkString,
  checkValues,
  checkVersion,
  checkVersions,
  integer,
  type Json,
  stringArray,
  stringMap,
  time,
} from './wire.ts';

/** How a call reaches Nexus (src/sdk/client.ts provides it, retries included). */
export interface NexusCaller {
  /** A JSON call: body in, the 200 object out; any other status throws. */
  call(target: string, body: Json, repeatable?: boolean, signal?: AbortSignal): Promise<Json>;
  /** A stream-mode call (`application/octet-stream`): bytes in, the 200 body out. */
  stream(target: string, input: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
  /** A JSON body (given as text or bytes) in, the raw 200 body out, of any size (backup). */
  exchange(
    target: string,
    body: string | Uint8Array,
    repeatable: boolean,
    signal?: AbortSignal,
  ): Promise<Uint8Array>;
}

/** The request target of each Nexus route. */
export const TARGET: Readonly<Record<keyof typeof NEXUS_ROUTES, string>> = (() => {
  const out = {} as Record<keyof typeof NEXUS_ROUTES, string>;
  for (const name of Object.keys(NEXUS_ROUTES) as (keyof typeof NEXUS_ROUTES)[]) {
    out[name] = routeTarget(NEXUS_ROUTES[name]);
  }
  return Object.freeze(out);
})();

type SecretCalls = Pick<
  SpikeClient,
  | 'getSecret'
  | 'putSecret'
  | 'deleteSecret'
  | 'undeleteSecret'
  | 'destroySecret'
  | 'purgeSecret'
  | 'listSecretKeys'
  | 'getSecretMetadata'
>;

/** The secret calls (§4 "Secrets"). */
export function secretCalls({ call }: NexusCaller): SecretCalls {
  return {
    getSecret: (async (
      path: string,
      opts: { version?: number; ifNewerThan?: number } & CallOptions = {},
    ) => {
      checkString(path, 'path');
      checkVersion(opts.version);
      checkVersion(opts.ifNewerThan);
      const res = await call(
        TARGET.secretGet,
        {
          path,
          ...(opts.version === undefined ? {} : { version: opts.version }),
          ...(opts.ifNewerThan === undefined ? {} : { ifNewerThan: opts.ifNewerThan }),
        },
        true,
        opts.signal,
      );
      // The conditional read (issue 14): not newer than the caller's version, no data sent.
      if (opts.ifNewerThan !== undefined && res.notModified === true) return undefined;
      return { data: stringMap(res.data, 'secret data') };
    }) as SpikeClient['getSecret'],

    async putSecret(path, values, opts = {}) {
      checkString(path, 'path');
      await call(TARGET.secretPut, { path, values: checkValues(values) }, false, opts.signal);
    },

    async deleteSecret(path, versions = [], opts = {}) {
      checkString(path, 'path');
      await call(
        TARGET.secretDelete,
        { path, versions: checkVersions(versions) },
        true,
        opts.signal,
      );
    },

    async undeleteSecret(path, versions = [], opts = {}) {
      checkString(path, 'path');
      await call(
        TARGET.secretUndelete,
        { path, versions: checkVersions(versions) },
        false,
        opts.signal,
      );
    },

    async destroySecret(path, versions = [], opts = {}) {
      checkString(path, 'path');
      await call(
        TARGET.secretDestroy,
        { path, versions: checkVersions(versions) },
        true,
        opts.signal,
      );
    },

    async purgeSecret(path, opts = {}) {
      checkString(path, 'path');
      await call(TARGET.secretPurge, { path }, false, opts.signal);
    },

    async listSecretKeys(opts = {}) {
      const res = await call(TARGET.secretList, {}, true, opts.signal);
      return stringArray(res.keys, 'secret keys');
    },

    async getSecretMetadata(path, opts = {}) {
      checkString(path, 'path');
      checkVersion(opts.version);
      const res = await call(
        TARGET.secretMetadata,
        {
          path,
          ...(opts.version === undefined ? {} : { version: opts.version }),
        },
        true,
        opts.signal,
      );
      const meta = res.metadata as Json | undefined;
      if (typeof meta !== 'object' || meta === null) throw malformedResponse('metadata');
      const versions: SecretVersionInfo[] = [];
      if (res.versions !== undefined && res.versions !== null) {
        if (typeof res.versions !== 'object' || Array.isArray(res.versions)) {
          throw malformedResponse('versions');
        }
        for (const raw of Object.values(res.versions as Json)) {
          const v = raw as Json;
          if (typeof v !== 'object' || v === null) throw malformedResponse('versions');
          versions.push({
            version: integer(v.version, 'version'),
            createdTime: time(v.createdTime, 'createdTime'),
            deletedTime:
              v.deletedTime === null || v.deletedTime === undefined
                ? null
                : time(v.deletedTime, 'deletedTime'),
          });
        }
      }
      versions.sort((a, b) => a.version - b.version);
      return {
        versions,
        currentVersion: integer(meta.currentVersion, 'currentVersion'),
        oldestVersion: integer(meta.oldestVersion, 'oldestVersion'),
        createdTime: time(meta.createdTime, 'createdTime'),
        updatedTime: time(meta.updatedTime, 'updatedTime'),
        maxVersions: integer(meta.maxVersions, 'maxVersions'),
      };
    },
  };
}

type PolicyCalls = Pick<
  SpikeClient,
  'putPolicy' | 'createPolicy' | 'getPolicy' | 'listPolicies' | 'deletePolicy'
>;

/** The policy calls (§4 "Policies"). */
export function policyCalls({ call }: NexusCaller): PolicyCalls {
  const putPolicy = async (policy: PolicyInput, opts: CallOptions = {}): Promise<void> => {
    if (typeof policy !== 'object' || policy === null)
      throw new TypeError('policy must be an object');
    checkString(policy.name, 'name');
    checkString(policy.spiffeIdPattern, 'spiffeIdPattern');
    checkString(policy.pathPattern, 'pathPattern');
    if (!Array.isArray(policy.permissions)) throw new TypeError('permissions must be an array');
    await call(
      TARGET.policyPut,
      {
        name: policy.name,
        spiffeidPattern: policy.spiffeIdPattern,
        pathPattern: policy.pathPattern,
        permissions: [...policy.permissions],
      },
      true,
      opts.signal,
    );
  };

  return {
    putPolicy,
    createPolicy: putPolicy,

    async getPolicy(name, opts = {}) {
      checkString(name, 'name');
      const res = await call(TARGET.policyGet, { id: name }, true, opts.signal);
      if (typeof res.name !== 'string') throw malformedResponse('policy name');
      const pattern = res.spiffiedPattern ?? res.spiffeidPattern;
      if (typeof pattern !== 'string' || typeof res.pathPattern !== 'string') {
        throw malformedResponse('policy patterns');
      }
      return {
        name: res.name,
        spiffeIdPattern: pattern,
        pathPattern: res.pathPattern,
        permissions: stringArray(res.permissions, 'permissions') as Permission[],
        createdAt: time(res.createdAt, 'createdAt'),
        updatedAt: time(res.updatedAt, 'updatedAt'),
      };
    },

    async listPolicies(filter = {}, opts = {}) {
      const body: Json = {};
      if (filter.spiffeIdPattern !== undefined && filter.spiffeIdPattern !== '') {
        body.spiffeidPattern = filter.spiffeIdPattern;
      }
      if (filter.pathPattern !== undefined && filter.pathPattern !== '') {
        body.pathPattern = filter.pathPattern;
      }
      const res = await call(TARGET.policyList, body, true, opts.signal);
      if (res.policies === null) return [];
      if (!Array.isArray(res.policies)) throw malformedResponse('policies');
      return res.policies.map((raw: unknown) => {
        const p = raw as Json;
        if (typeof p !== 'object' || p === null || typeof p.name !== 'string') {
          throw malformedResponse('policies');
        }
        return { id: typeof p.id === 'string' ? p.id : '', name: p.name };
      });
    },

    async deletePolicy(name, opts = {}) {
      checkString(name, 'name');
      await call(TARGET.policyDelete, { id: name }, false, opts.signal);
    },
  };
}

/** The JSON `context` field (§8 "Context"): omitted when absent or empty. */
function contextField(context: Uint8Array | undefined): Json {
  if (context === undefined) return {};
  checkBytes(context, 'context');
  return context.length === 0 ? {} : { context: toBase64(context) };
}

type CipherCalls = Pick<SpikeClient, 'encrypt' | 'decrypt' | 'encryptJson' | 'decryptJson'>;

/** The cipher calls (§8). */
export function cipherCalls({ call, stream }: NexusCaller): CipherCalls {
  return {
    async encrypt(plaintext, opts = {}) {
      checkBytes(plaintext, 'plaintext');
      return stream(TARGET.encrypt, plaintext, opts.signal);
    },

    async decrypt(ciphertext, opts = {}) {
      checkBytes(ciphertext, 'ciphertext');
      return stream(TARGET.decrypt, ciphertext, opts.signal);
    },

    async encryptJson(plaintext, opts = {}) {
      checkBytes(plaintext, 'plaintext');
      const res = await call(
        TARGET.encrypt,
        {
          plaintext: toBase64(plaintext),
          ...(opts.algorithm === undefined ? {} : { algorithm: opts.algorithm }),
          ...contextField(opts.context),
        },
        true,
        opts.signal,
      );
      return {
        version: integer(res.version, 'version'),
        nonce: bytes(res.nonce, 'nonce'),
        ciphertext: bytes(res.ciphertext, 'ciphertext'),
      };
    },

    async decryptJson(input, opts = {}) {
      if (typeof input !== 'object' || input === null)
        throw new TypeError('input must be an object');
      if (!Number.isInteger(input.version) || input.version < 0 || input.version > 255) {
        throw new RangeError('version must be an integer from 0 to 255');
      }
      checkBytes(input.nonce, 'nonce');
      checkBytes(input.ciphertext, 'ciphertext');
      const res = await call(
        TARGET.decrypt,
        {
          version: input.version,
          nonce: toBase64(input.nonce),
          ciphertext: toBase64(input.ciphertext),
          ...(opts.algorithm === undefined ? {} : { algorithm: opts.algorithm }),
          ...contextField(opts.context),
        },
        true,
        opts.signal,
      );
      return bytes(res.plaintext, 'plaintext');
    },
  };
}

/**
 * A restore answer (§9): upstream's three fields, plus `generation` and `threshold` when Nexus
 * sends them (an older Nexus does not: `""` and `collected + remaining`).
 */
function restoreStatus(res: Json): RestoreStatus {
  if (typeof res.restored !== 'boolean') throw malformedResponse('restored');
  const collected = integer(res.collected, 'collected');
  const remaining = integer(res.remaining, 'remaining');
  const generation = res.generation ?? '';
  if (typeof generation !== 'string') throw malformedResponse('generation');
  const threshold =
    res.threshold === undefined ? collected + remaining : integer(res.threshold, 'threshold');
  return { collected, remaining, restored: res.restored, generation, threshold };
}

/** The operator calls (§9). */
export function operatorCalls({
  call,
}: NexusCaller): Pick<SpikeClient, 'recover' | 'restore' | 'resetRestore'> {
  return {
    async recover(opts = {}) {
      const res = await call(TARGET.recover, {}, true, opts.signal);
      if (!Array.isArray(res.shards)) throw malformedResponse('shards');
      try {
        return res.shards.map((s: unknown) => parseShardEnvelope(s));
      } catch {
        throw malformedResponse('shards');
      }
    },

    async restore(shard, opts = {}) {
      const envelope =
        typeof shard === 'string' ? parseRecoveryLine(shard) : parseShardEnvelope(shard);
      return restoreStatus(await call(TARGET.restore, { ...envelope }, false, opts.signal));
    },

    async resetRestore(opts = {}) {
      return restoreStatus(await call(TARGET.restoreReset, {}, false, opts.signal));
    },
  };
}
