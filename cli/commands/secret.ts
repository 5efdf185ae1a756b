/**
 * `spike secret …`: versioned key-value secrets in SPIKE Nexus (docs/spike-api.md §4, §6, §11). Every
 * subcommand needs the superuser role. Upstream's commands keep their flags and output strings:
 * `put`, `get`, `list`, `delete`, `undelete`, `metadata get`; `destroy` and `purge` are ours
 * (§6) and, being irreversible, ask for confirmation on a terminal unless `--yes` is given (and
 * without a terminal refuse, exit 2). `delete` of more than one version asks too. `watch`
 * (cli/secret-watch.ts) is ours too: it prints change events.
 */
import { defineCommand } from 'citty';
import YAML from 'yaml';
import { isSpikeError } from '../../src/core/errors.ts';
import type { SecretMetadata } from '../../src/sdk/client.ts';
import { checkSecretPath, parsePairs, parseVersion, parseVersions } from '../args.ts';
import { commandMeta } from '../help.ts';
import { fail, formatArg, parseFormat, printValue, writeOut } from '../output.ts';
import { confirmed, requireConfirmation } from '../prompt.ts';
import { watchCommand } from '../secret-watch.ts';
import { api, failApi, withClient } from '../session.ts';

const versionArg = {
  type: 'string',
  alias: 'v',
  description: 'Version to read; 0 or absent means the current version',
  valueHint: 'N',
} as const;

const versionsArg = {
  type: 'string',
  alias: 'v',
  description: 'Comma-separated versions; 0 means the current version (default: current)',
  valueHint: 'list',
} as const;

const yesArg = {
  type: 'boolean',
  alias: 'y',
  description: 'Do not ask for confirmation (required without a terminal)',
} as const;

const pathArg = {
  type: 'positional',
  description: 'Secret path, e.g. tenants/acme/db',
  required: true,
} as const;

/** `<key=value…>` of `secret put`: every word after the path (cli/parse.ts reads `variadic`). */
const pairsArg = {
  type: 'positional',
  description: 'One or more key=value pairs',
  required: true,
  valueHint: 'key=value...',
  variadic: true,
} as const;

/** Runs a read of one secret: a missing one says `Secret not found.` (§11), the rest `failApi`. */
async function readSecret<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (isSpikeError(error) && error.code === 'api_not_found') fail('Error: Secret not found.');
    failApi(error, 'secret');
  }
}

/** Human output of `secret get`: `k: v` lines sorted by key. */
function renderData(data: Readonly<Record<string, string>>): string {
  return Object.keys(data)
    .sort()
    .map((k) => `${k}: ${data[k]}`)
    .join('\n');
}

const put = defineCommand({
  meta: commandMeta(['secret', 'put'], 'Create a new version of a secret from key=value pairs', [
    'spike secret put tenants/acme/db user=app pass=s3cret',
    "spike secret put tenants/acme/api token='a=b=c'   # split at the first '='",
  ]),
  args: {
    path: pathArg,
    pairs: pairsArg,
  },
  async run({ args }) {
    const path = checkSecretPath(args.path);
    const values = parsePairs(args._.slice(1));
    await withClient('superuser', (spike) => api('secret', () => spike.putSecret(path, values)));
    writeOut('OK');
  },
});

const get = defineCommand({
  meta: commandMeta(['secret', 'get'], 'Read a secret (all keys, or one key)', [
    'spike secret get tenants/acme/db',
    'spike secret get tenants/acme/db pass',
    'spike secret get tenants/acme/db --version 2 -f json',
  ]),
  args: {
    path: pathArg,
    key: { type: 'positional', description: 'Print only this key', required: false },
    version: versionArg,
    format: formatArg,
  },
  async run({ args }) {
    const format = parseFormat(args.format);
    const path = checkSecretPath(args.path);
    const version = parseVersion(args.version);
    const key = args.key === undefined || args.key === '' ? undefined : args.key;
    const { data } = await withClient('superuser', (spike) =>
      readSecret(() => spike.getSecret(path, version === undefined ? {} : { version })),
    );
    if (key === undefined) {
      // Sorted by key in every format, as Go marshals maps.
      const sorted = Object.fromEntries(
        Object.keys(data)
          .sort()
          .map((k) => [k, data[k]]),
      );
      printValue(format, sorted, () => renderData(data), { jsonIndent: 4 });
      return;
    }
    if (!Object.hasOwn(data, key)) fail('Error: Key not found.');
    const value = data[key] ?? '';
    if (format === 'json') writeOut(JSON.stringify(value));
    else if (format === 'yaml') writeOut(YAML.stringify(value));
    else writeOut(value);
  },
});

const list = defineCommand({
  meta: commandMeta(['secret', 'list'], 'List all secret paths', [
    'spike secret list',
    'spike secret list -f json',
  ]),
  args: { format: formatArg },
  async run({ args }) {
    const format = parseFormat(args.format);
    const keys = await withClient('superuser', (spike) =>
      api('secret', () => spike.listSecretKeys()),
    );
    printValue(format, keys, () =>
      keys.length === 0 ? 'No secrets found.' : keys.map((k) => `- ${k}`).join('\n'),
    );
  },
});

/** `current` for 0, the number otherwise: how a confirmation question names versions. */
function describeVersions(versions: readonly number[]): string {
  if (versions.length === 0) return 'current';
  return versions.map((v) => (v === 0 ? 'current' : String(v))).join(', ');
}

function versionsCommand(name: 'delete' | 'undelete', description: string, examples: string[]) {
  return defineCommand({
    meta: commandMeta(['secret', name], description, examples),
    args: { path: pathArg, versions: versionsArg, ...(name === 'delete' ? { yes: yesArg } : {}) },
    async run({ args }) {
      const path = checkSecretPath(args.path);
      const versions = parseVersions(args.versions);
      // Deleting several versions at once asks first (a typo in the list costs more).
      const several = name === 'delete' && new Set(versions).size > 1;
      const yes = (args as { yes?: boolean }).yes;
      if (several) requireConfirmation(yes, 'secret delete of several versions');
      await withClient('superuser', async (spike) => {
        if (several) {
          const question = `Are you sure you want to delete version(s) ${describeVersions(versions)} of secret '${path}'? (y/N): `;
          if (!(await confirmed(yes, 'secret delete of several versions', question))) return;
        }
        await api('secret', () =>
          name === 'delete'
            ? spike.deleteSecret(path, versions)
            : spike.undeleteSecret(path, versions),
        );
        writeOut('OK');
      });
    },
  });
}

const del = versionsCommand(
  'delete',
  'Soft-delete versions of a secret (undo with undelete; asks first for several)',
  [
    'spike secret delete tenants/acme/db            # the current version',
    'spike secret delete tenants/acme/db -v 1,2,3   # versions 1, 2 and 3 (asks first)',
    'spike secret delete tenants/acme/db -v 0,1 --yes   # current and 1, without asking',
  ],
);

const undelete = versionsCommand('undelete', 'Restore soft-deleted versions of a secret', [
  'spike secret undelete tenants/acme/db',
  'spike secret undelete tenants/acme/db -v 1,2',
]);

const destroy = defineCommand({
  meta: commandMeta(
    ['secret', 'destroy'],
    'Erase the data of secret versions for good (cannot be undeleted)',
    [
      'spike secret destroy tenants/acme/db -v 1,2',
      'spike secret destroy tenants/acme/db --yes     # no confirmation prompt',
    ],
  ),
  args: { path: pathArg, versions: versionsArg, yes: yesArg },
  async run({ args }) {
    const path = checkSecretPath(args.path);
    const versions = parseVersions(args.versions);
    requireConfirmation(args.yes, 'secret destroy (it cannot be undone)');
    await withClient('superuser', async (spike) => {
      const question = `Are you sure you want to destroy version(s) ${describeVersions(versions)} of secret '${path}' for good? (y/N): `;
      if (!(await confirmed(args.yes, 'secret destroy (it cannot be undone)', question))) return;
      await api('secret', () => spike.destroySecret(path, versions));
      writeOut('OK');
    });
  },
});

const purge = defineCommand({
  meta: commandMeta(
    ['secret', 'purge'],
    'Remove a secret with all its versions and metadata for good',
    ['spike secret purge tenants/acme/old', 'spike secret purge tenants/acme/old --yes'],
  ),
  args: { path: pathArg, yes: yesArg },
  async run({ args }) {
    const path = checkSecretPath(args.path);
    requireConfirmation(args.yes, 'secret purge (it cannot be undone)');
    await withClient('superuser', async (spike) => {
      const question = `Are you sure you want to purge secret '${path}' and all its versions? (y/N): `;
      if (!(await confirmed(args.yes, 'secret purge (it cannot be undone)', question))) return;
      await api('secret', () => spike.purgeSecret(path));
      writeOut('OK');
    });
  },
});

/** `2006-01-02 15:04:05 MST` in UTC, the layout of upstream's metadata output. */
function goTime(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function renderMetadata(meta: SecretMetadata): string {
  const rule = '-'.repeat(50);
  const lines = [
    '',
    'Metadata:',
    rule,
    `Current Version : ${meta.currentVersion}`,
    `Oldest Version  : ${meta.oldestVersion}`,
    `Created Time    : ${goTime(meta.createdTime)}`,
    `Last Updated    : ${goTime(meta.updatedTime)}`,
    `Max Versions    : ${meta.maxVersions}`,
    rule,
  ];
  if (meta.versions.length > 0) {
    lines.push('', 'Secret Versions:', rule);
    for (const v of meta.versions) {
      lines.push(`Version ${v.version}:`, `  Created: ${goTime(v.createdTime)}`);
      if (v.deletedTime !== null) lines.push(`  Deleted: ${goTime(v.deletedTime)}`);
      lines.push(rule);
    }
  }
  return lines.join('\n');
}

/** JSON/YAML form of metadata: the wire shape (docs/spike-api.md §4), times in RFC 3339. */
function metadataValue(meta: SecretMetadata): Record<string, unknown> {
  const versions: Record<string, unknown> = {};
  for (const v of meta.versions) {
    versions[String(v.version)] = {
      version: v.version,
      createdTime: v.createdTime.toISOString(),
      deletedTime: v.deletedTime === null ? null : v.deletedTime.toISOString(),
    };
  }
  return {
    versions,
    metadata: {
      currentVersion: meta.currentVersion,
      oldestVersion: meta.oldestVersion,
      createdTime: meta.createdTime.toISOString(),
      updatedTime: meta.updatedTime.toISOString(),
      maxVersions: meta.maxVersions,
    },
  };
}

const metadataGet = defineCommand({
  meta: commandMeta(['secret', 'metadata', 'get'], 'Show the versions and metadata of a secret', [
    'spike secret metadata get tenants/acme/db',
    'spike secret metadata get tenants/acme/db -v 2 -f yaml',
  ]),
  args: { path: pathArg, version: versionArg, format: formatArg },
  async run({ args }) {
    const format = parseFormat(args.format);
    const path = checkSecretPath(args.path);
    const version = parseVersion(args.version);
    const meta = await withClient('superuser', (spike) =>
      readSecret(() => spike.getSecretMetadata(path, version === undefined ? {} : { version })),
    );
    printValue(format, metadataValue(meta), () => renderMetadata(meta));
  },
});

const metadata = defineCommand({
  meta: commandMeta(['secret', 'metadata'], 'Manage secret metadata', [
    'spike secret metadata get tenants/acme/db',
  ]),
  subCommands: { get: metadataGet },
});

const secretCommand = defineCommand({
  meta: commandMeta(['secret'], 'Manage secrets (superuser role)', [
    'spike secret put tenants/acme/db user=app pass=s3cret',
    'spike secret get tenants/acme/db pass',
    'spike secret list',
  ]),
  subCommands: {
    put,
    get,
    list,
    delete: del,
    undelete,
    destroy,
    purge,
    metadata,
    watch: watchCommand,
  },
});

export default secretCommand;
