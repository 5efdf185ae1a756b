/**
 * Helpers of the backup suites (tests/backup.test.ts, tests/backup-postgres.test.ts): a store
 * seeded through the real API with every state a version can be in, the CLI run as the
 * superuser of a cluster, and the decryption of export files with the `age-encryption` library
 * (an implementation independent of Nexus's use of it: the test holds the identity).
 */
import { expect } from 'bun:test';
import { Decrypter } from 'age-encryption';
import type { Cluster, NexusClient } from './cluster.ts';
import { type CommandResult, cleanEnv, runCli } from './process.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests read and compare the document's fields
type ExportDoc = any;

/** A value that must never appear in an export file or a log in clear. */
export const SECRET_VALUE = 'pl41ntext-canary-0f-the-backup-suite';

/** The superuser SPIFFE ID of the development issuer. */
export const SUPERUSER_ID = 'spiffe://spike.ist/spike/pilot/role/superuser';

async function ok(client: NexusClient, path: string, body: unknown): Promise<void> {
  const answer = await client.post(path, body);
  expect({ path, status: answer.status, json: answer.json }).toMatchObject({ status: 200 });
}

/**
 * Seeds, through the SPIKE API: `app/db` with five versions (1 deleted, 2 destroyed, 3..5
 * live, the value of 5 holding {@link SECRET_VALUE}), `app/api` with one version and then all
 * of it deleted, `ops/one` with one version, and two policies. Returns the paths.
 */
export async function seedStore(client: NexusClient): Promise<string[]> {
  const secrets = '/v1/store/secrets';
  for (let v = 1; v <= 5; v++) {
    await ok(client, secrets, {
      path: 'app/db',
      values: { user: `app${v}`, pass: v === 5 ? SECRET_VALUE : `p${v}`, unicode: 'äß→✓' },
    });
  }
  await ok(client, `${secrets}?action=delete`, { path: 'app/db', versions: [1] });
  await ok(client, `${secrets}?action=destroy`, { path: 'app/db', versions: [2] });
  await ok(client, secrets, { path: 'app/api', values: { token: 't-1' } });
  await ok(client, `${secrets}?action=delete`, { path: 'app/api', versions: [] });
  await ok(client, secrets, { path: 'ops/one', values: { a: '{"nested": 12345678901234567890}' } });
  await ok(client, '/v1/acl/policy', {
    name: 'app-read',
    spiffeidPattern: '^spiffe://spike\\.ist/workload/app$',
    pathPattern: '^app/.*$',
    permissions: ['read', 'list'],
  });
  await ok(client, '/v1/acl/policy', {
    name: 'ops-write',
    spiffeidPattern: '^spiffe://spike\\.ist/workload/ops$',
    pathPattern: '^ops/.*$',
    permissions: ['write'],
  });
  // A second write of the same policy: updatedAt moves past createdAt.
  await Bun.sleep(5);
  await ok(client, '/v1/acl/policy', {
    name: 'ops-write',
    spiffeidPattern: '^spiffe://spike\\.ist/workload/ops$',
    pathPattern: '^ops/.*$',
    permissions: ['write', 'read'],
  });
  return ['app/api', 'app/db', 'ops/one'];
}

/**
 * Seeds, through the Vault KV v2 API (the source Nexus runs with `SPIKE_NEXUS_VAULT_API=true`):
 * `vault/app` with two versions, key metadata (`max_versions`, `cas_required`,
 * `custom_metadata`), and a mount configuration.
 */
export async function seedVault(client: NexusClient): Promise<void> {
  const send = async (path: string, body: unknown) => {
    const answer = await client.mtls.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect({ path, status: answer.status }).toMatchObject({ status: expect.any(Number) });
    expect(answer.status === 200 || answer.status === 204).toBe(true);
  };
  await send('/v1/secret/config', { max_versions: 20, delete_version_after: '0s' });
  await send('/v1/secret/data/vault/app', { data: { n: 1.5, list: [1, 'a'] } });
  await send('/v1/secret/data/vault/app', { data: { k: 'v2' } });
  await send('/v1/secret/metadata/vault/app', {
    max_versions: 7,
    cas_required: true,
    custom_metadata: { owner: 'team-a', 'cost-center': '42' },
  });
}

/** Runs the CLI with the Workload API identity `role` of `cluster`. */
export function spikeAs(
  cluster: Cluster,
  role: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CommandResult> {
  return runCli(args, {
    env: {
      ...cleanEnv(),
      SPIFFE_ENDPOINT_SOCKET: cluster.issuer.addressFor(role),
      SPIKE_NEXUS_API_URL: cluster.nexusUrl,
      ...env,
    },
  });
}

/** The export document inside an age file, decrypted with `identity` or `passphrase`. */
export async function decryptExport(
  file: Uint8Array,
  key: { identity?: string; passphrase?: string },
): Promise<ExportDoc> {
  const decrypter = new Decrypter();
  if (key.identity !== undefined) decrypter.addIdentity(key.identity);
  if (key.passphrase !== undefined) decrypter.addPassphrase(key.passphrase);
  return JSON.parse(await decrypter.decrypt(file, 'text'));
}

/** The document without what differs between two exports of the same data. */
export function comparable(document: ExportDoc): unknown {
  const { exportedAt: _at, backend: _backend, ...rest } = document;
  return rest;
}
