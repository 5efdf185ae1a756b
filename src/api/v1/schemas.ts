/**
 * Request and response shapes of the SPIKE v1 API (docs/spike-api.md §4, §8, §9) as TypeBox schemas.
 *
 * Requests are Go structs on the server: Nexus and the Keeper decode them with Go
 * `encoding/json` semantics (src/core/http/go-json.ts: case-insensitive keys, later duplicates
 * win, `null` keeps a scalar, integer literals only), which no JSON Schema validator reproduces.
 * So each request is declared once, as its Go struct (`GoJsonSchema`), and its TypeBox schema is
 * derived from that declaration (`requestSchemaOf`): the decoder is the truth, the TypeBox form
 * documents it for clients and tools. Responses are plain JSON and are declared in TypeBox
 * directly; the zero-valued error bodies of §4 are `Static` values of those schemas.
 *
 * Portable: no runtime APIs.
 */
import { type Static, type TObject, type TSchema, Type } from '@sinclair/typebox';
import type { GoJsonKind, GoJsonSchema } from '../../core/http/go-json.ts';
import { GO_ZERO_TIME } from '../../core/log.ts';

// ---- requests (Go structs; JSON tags as the upstream SDK sends them, §4) -------------------

/** The request structs, by name. */
export const REQUEST = Object.freeze({
  none: {},
  secretPut: { path: 'string', values: 'stringMap' },
  // `ifNewerThan` [Ours, docs/spike-api.md "Watch"]: answer `notModified` unless newer.
  secretGet: { path: 'string', version: 'int', ifNewerThan: 'int' },
  secretVersions: { path: 'string', versions: 'intSlice' },
  secretPath: { path: 'string' },
  policyPut: {
    name: 'string',
    spiffeidPattern: 'string',
    pathPattern: 'string',
    permissions: 'stringSlice',
  },
  policyId: { id: 'string' },
  policyList: { spiffeidPattern: 'string', pathPattern: 'string' },
  // `context` [Ours, §8 "Context"]: absent or empty = no context (upstream's format).
  encrypt: { plaintext: 'bytes', algorithm: 'string', context: 'bytes' },
  decrypt: {
    version: 'uint8',
    nonce: 'bytes',
    ciphertext: 'bytes',
    algorithm: 'string',
    context: 'bytes',
  },
  envelope: { version: 'int', index: 'int', generation: 'string', kcv: 'string', shard: 'string' },
  verify: { nonce: 'bytes', ciphertext: 'bytes' },
  // [Ours, docs/spike-api.md "Watch"]; `after` 0 = from the head (as absent).
  watch: { prefix: 'string', after: 'int' },
} as const satisfies Record<string, GoJsonSchema>);

/** The name of a request struct. */
export type RequestName = keyof typeof REQUEST;

function kindSchema(kind: GoJsonKind): TSchema {
  switch (kind) {
    case 'string':
      return Type.String();
    case 'int':
      return Type.Integer();
    case 'uint8':
      return Type.Integer({ minimum: 0, maximum: 255 });
    case 'bytes':
      return Type.Union([Type.String({ contentEncoding: 'base64' }), Type.Null()]);
    case 'stringMap':
      return Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]);
    case 'intSlice':
      return Type.Union([Type.Array(Type.Integer()), Type.Null()]);
    case 'stringSlice':
      return Type.Union([Type.Array(Type.String()), Type.Null()]);
  }
}

/**
 * The TypeBox form of a request struct: every field optional (absent = Go zero value), unknown
 * fields allowed (Go ignores them). Keys match case-insensitively on the server, which JSON
 * Schema cannot say; the schema names the spelling clients send.
 */
export function requestSchemaOf(schema: GoJsonSchema): TObject {
  const properties: Record<string, TSchema> = {};
  for (const [field, kind] of Object.entries(schema)) {
    properties[field] = Type.Optional(kindSchema(kind));
  }
  return Type.Object(properties, { additionalProperties: true });
}

// ---- responses (docs/spike-api.md §4) ----------------------------------------------

const Time = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Err = Type.Optional(Type.String());

/** Every error answer: the route's zero-valued body plus `err`. */
export const EmptyResponse = Type.Object({ err: Err });
export const SecretGetResponse = Type.Object({
  data: Nullable(Type.Record(Type.String(), Type.String())),
  // [Ours, docs/spike-api.md "Watch"]: the version read; `notModified` answers `ifNewerThan`.
  version: Type.Optional(Type.Integer()),
  notModified: Type.Optional(Type.Boolean()),
  err: Err,
});
export const SecretListResponse = Type.Object({
  keys: Nullable(Type.Array(Type.String())),
  err: Err,
});
export const MetadataResponse = Type.Object({
  versions: Type.Optional(
    Type.Record(
      Type.String(),
      Type.Object({ createdTime: Time, version: Type.Integer(), deletedTime: Nullable(Time) }),
    ),
  ),
  metadata: Type.Object({
    currentVersion: Type.Integer(),
    oldestVersion: Type.Integer(),
    createdTime: Time,
    updatedTime: Time,
    maxVersions: Type.Integer(),
  }),
  err: Err,
});
export const PolicyGetResponse = Type.Object({
  id: Type.String(),
  name: Type.String(),
  // Upstream's response key, typo included (§4 "Policy object").
  spiffiedPattern: Type.String(),
  pathPattern: Type.String(),
  permissions: Nullable(Type.Array(Type.String())),
  createdAt: Time,
  updatedAt: Time,
  err: Err,
});
/** Policy put: `{}`, plus `warning` when a pattern is not anchored (§7 "Anchoring") [Ours]. */
export const PolicyPutResponse = Type.Object({ warning: Type.Optional(Type.String()), err: Err });
export const PolicyListResponse = Type.Object({
  policies: Nullable(Type.Array(Type.Object({ id: Type.String(), name: Type.String() }))),
  err: Err,
});
export const EncryptResponse = Type.Object({
  version: Type.Integer(),
  nonce: Nullable(Type.String({ contentEncoding: 'base64' })),
  ciphertext: Nullable(Type.String({ contentEncoding: 'base64' })),
  err: Err,
});
export const DecryptResponse = Type.Object({
  plaintext: Nullable(Type.String({ contentEncoding: 'base64' })),
  err: Err,
});
const ShardEnvelopeSchema = Type.Object({
  version: Type.Integer(),
  index: Type.Integer(),
  generation: Type.String(),
  kcv: Type.String(),
  shard: Type.String(),
});
export const ShardsResponse = Type.Object({
  shards: Nullable(Type.Array(ShardEnvelopeSchema)),
  err: Err,
});
export const RestoreResponse = Type.Object({
  collected: Type.Integer(),
  remaining: Type.Integer(),
  restored: Type.Boolean(),
  err: Err,
});
export const VerifyResponse = Type.Object({ hash: Type.String(), err: Err });

/** A response body without its `err` field. */
type Body<T extends TSchema> = Omit<Static<T>, 'err'>;

/** The zero-valued response objects of docs/spike-api.md §4 ("Zero-valued error bodies"). */
export const ZERO = Object.freeze({
  empty: {} satisfies Body<typeof EmptyResponse>,
  secretGet: { data: null } satisfies Body<typeof SecretGetResponse>,
  secretList: { keys: null } satisfies Body<typeof SecretListResponse>,
  metadata: {
    metadata: {
      currentVersion: 0,
      oldestVersion: 0,
      createdTime: GO_ZERO_TIME,
      updatedTime: GO_ZERO_TIME,
      maxVersions: 0,
    },
  } satisfies Body<typeof MetadataResponse>,
  policyGet: {
    id: '',
    name: '',
    spiffiedPattern: '',
    pathPattern: '',
    permissions: null,
    createdAt: GO_ZERO_TIME,
    updatedAt: GO_ZERO_TIME,
  } satisfies Body<typeof PolicyGetResponse>,
  policyList: { policies: null } satisfies Body<typeof PolicyListResponse>,
  encrypt: { version: 0, nonce: null, ciphertext: null } satisfies Body<typeof EncryptResponse>,
  decrypt: { plaintext: null } satisfies Body<typeof DecryptResponse>,
  restore: { collected: 0, remaining: 0, restored: false } satisfies Body<typeof RestoreResponse>,
  shards: { shards: null } satisfies Body<typeof ShardsResponse>,
  verify: { hash: '' } satisfies Body<typeof VerifyResponse>,
});

/** A zero-valued body. */
export type ZeroBody = (typeof ZERO)[keyof typeof ZERO];
