/**
 * `spike policy …`: access policies in SPIKE Nexus (docs/spike-api.md §4, §7, §11). Every subcommand
 * needs the superuser role. `create` refuses an existing name (checked by listing first, as
 * upstream); `apply` upserts, from the four flags or a YAML file with the keys `name`,
 * `spiffeidPattern`, `pathPattern` and `permissions` (§7); `delete` asks for confirmation on a
 * terminal unless `--yes` is given (without a terminal it refuses, exit 2).
 */
import { readFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import YAML from 'yaml';
import { type PatternField, unanchoredFields } from '../../src/core/policy/anchored.ts';
import { isValidName, PERMISSIONS } from '../../src/core/policy/validate.ts';
import type { Permission, Policy, PolicyInput } from '../../src/sdk/client.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, formatArg, parseFormat, printValue, writeErr, writeOut } from '../output.ts';
import { confirmed, requireConfirmation } from '../prompt.ts';
import { api, withClient } from '../session.ts';

const FLAG_ARGS = {
  name: { type: 'string', description: 'Policy name', valueHint: 'name' },
  'path-pattern': {
    type: 'string',
    description: "Secret path regex (RE2), e.g. '^tenants/acme/.*$'",
    valueHint: 'regex',
  },
  'spiffeid-pattern': {
    type: 'string',
    description: "SPIFFE ID regex (RE2), e.g. '^spiffe://example\\.org/app/.*$'",
    valueHint: 'regex',
  },
  permissions: {
    type: 'string',
    description: `Comma-separated permissions: ${PERMISSIONS.join(', ')}`,
    valueHint: 'list',
  },
} as const;

const ALLOW_UNANCHORED = {
  'allow-unanchored': {
    type: 'boolean',
    description: 'Accept a pattern without ^…$ (it also matches longer paths and IDs)',
  },
} as const;

const FLAG_OF: Record<PatternField, string> = {
  pathPattern: '--path-pattern',
  spiffeidPattern: '--spiffeid-pattern',
};

/**
 * Refuses (exit 2) a policy whose pattern is not anchored (docs/spike-api.md §7 "Anchoring")
 * unless `--allow-unanchored`; `fromFile` names the file's keys instead of the flags.
 */
function requireAnchored(policy: PolicyInput, allow: boolean | undefined, fromFile: boolean): void {
  if (allow === true) return;
  const fields = unanchoredFields(policy);
  if (fields.length === 0) return;
  const names = fields.map((f) => (fromFile ? `'${f}'` : FLAG_OF[f])).join(' and ');
  fail(
    `Error: ${names} ${fields.length > 1 ? 'are' : 'is'} not anchored: a pattern without ^…$ ` +
      'also matches other values (^secrets/demo grants secrets/demo2). ' +
      "Anchor it, e.g. '^secrets/demo/.*$', or pass --allow-unanchored.",
    EXIT.usage,
  );
}

interface PolicyFlags {
  name?: string;
  'path-pattern'?: string;
  'spiffeid-pattern'?: string;
  permissions?: string;
}

/** Parses `read,write` into permissions; an unknown one is a usage error. */
function parsePermissions(list: readonly string[]): Permission[] {
  const out: Permission[] = [];
  for (const raw of list) {
    const p = raw.trim();
    if (p === '') continue;
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      fail(
        `Error: Invalid permission: ${p}. Valid permissions are: ${PERMISSIONS.join(', ')}.`,
        EXIT.usage,
      );
    }
    if (!out.includes(p as Permission)) out.push(p as Permission);
  }
  if (out.length === 0) fail('Error: At least one permission is required.', EXIT.usage);
  return out;
}

/** The four flags as a policy; a missing one ends with §11's message (exit 2). */
function policyFromFlags(args: PolicyFlags): PolicyInput {
  const missing = (['name', 'path-pattern', 'spiffeid-pattern', 'permissions'] as const).filter(
    (flag) => args[flag] === undefined || args[flag] === '',
  );
  if (missing.length > 0) {
    writeErr('Error: All flags are required.');
    fail(missing.map((flag) => `  --${flag} is missing`).join('\n'), EXIT.usage);
  }
  const name = args.name ?? '';
  if (!isValidName(name)) {
    fail(
      `Error: Invalid policy name: ${name} (letters, digits, '-', '_' and spaces, 1-250 bytes).`,
      EXIT.usage,
    );
  }
  return {
    name,
    spiffeIdPattern: args['spiffeid-pattern'] ?? '',
    pathPattern: args['path-pattern'] ?? '',
    permissions: parsePermissions((args.permissions ?? '').split(',')),
  };
}

/** Reads a policy YAML file (§7 keys). Unreadable or incomplete files end the command (exit 1). */
function policyFromFile(file: string): PolicyInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    fail(
      code === 'ENOENT'
        ? `Error: Policy file does not exist: ${file}`
        : `Error: Cannot read policy file: ${file}`,
    );
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch {
    fail(`Error: Invalid YAML in policy file: ${file}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    fail(`Error: Invalid policy file: ${file} must hold a YAML mapping.`);
  }
  const obj = doc as Record<string, unknown>;
  const field = (key: string, alt?: string): string => {
    const value = obj[key] ?? (alt === undefined ? undefined : obj[alt]);
    if (typeof value !== 'string' || value === '') {
      fail(`Error: Invalid policy file: '${key}' is missing or not a string.`);
    }
    return value;
  };
  const name = field('name');
  const spiffeIdPattern = field('spiffeidPattern', 'spiffeIdPattern');
  const pathPattern = field('pathPattern');
  const perms = obj.permissions;
  if (!Array.isArray(perms) || !perms.every((p) => typeof p === 'string')) {
    fail("Error: Invalid policy file: 'permissions' must be a list of strings.");
  }
  if (!isValidName(name)) fail(`Error: Invalid policy name: ${name}`);
  return { name, spiffeIdPattern, pathPattern, permissions: parsePermissions(perms) };
}

const create = defineCommand({
  meta: commandMeta(['policy', 'create'], 'Create a new policy (fails if the name exists)', [
    "spike policy create --name=db-access --path-pattern='^tenants/acme/db/.*$' \\",
    "  --spiffeid-pattern='^spiffe://example\\.org/app/billing$' --permissions=read,list",
  ]),
  args: { ...FLAG_ARGS, ...ALLOW_UNANCHORED },
  async run({ args }) {
    const policy = policyFromFlags(args);
    requireAnchored(policy, args['allow-unanchored'], false);
    await withClient('superuser', async (spike) => {
      const existing = await api('policy', () => spike.listPolicies());
      if (existing.some((p) => p.name === policy.name)) {
        fail(`Error: Policy '${policy.name}' already exists.`);
      }
      await api('policy', () => spike.putPolicy(policy));
    });
    writeOut('Policy created successfully.');
  },
});

const apply = defineCommand({
  meta: commandMeta(
    ['policy', 'apply'],
    'Create or replace a policy, from a YAML file or from flags',
    [
      'spike policy apply --file policy.yaml',
      '# policy.yaml:',
      '#   name: db-access',
      "#   spiffeidPattern: '^spiffe://example\\.org/app/billing$'",
      "#   pathPattern: '^tenants/acme/db/.*$'",
      '#   permissions: [read, list]',
      "spike policy apply --name=db-access --path-pattern='^db/.*$' \\",
      "  --spiffeid-pattern='^spiffe://example\\.org/app/.*$' --permissions=read",
    ],
  ),
  args: {
    file: { type: 'string', description: 'YAML file holding the policy', valueHint: 'file' },
    ...FLAG_ARGS,
    ...ALLOW_UNANCHORED,
  },
  async run({ args }) {
    const flagged = Object.keys(FLAG_ARGS).some(
      (k) => (args as Record<string, unknown>)[k] !== undefined,
    );
    if (args.file !== undefined && flagged) {
      fail('Error: Use either --file or the policy flags, not both.', EXIT.usage);
    }
    const policy = args.file !== undefined ? policyFromFile(args.file) : policyFromFlags(args);
    requireAnchored(policy, args['allow-unanchored'], args.file !== undefined);
    await withClient('superuser', (spike) => api('policy', () => spike.putPolicy(policy)));
    writeOut(`Policy '${policy.name}' applied successfully`);
  },
});

const list = defineCommand({
  meta: commandMeta(['policy', 'list'], 'List policies, optionally those with an exact pattern', [
    'spike policy list',
    "spike policy list --path-pattern='^tenants/acme/db/.*$' -f json",
  ]),
  args: {
    'path-pattern': {
      type: 'string',
      description: 'Only policies with exactly this path pattern',
      valueHint: 'regex',
    },
    'spiffeid-pattern': {
      type: 'string',
      description: 'Only policies with exactly this SPIFFE ID pattern',
      valueHint: 'regex',
    },
    format: formatArg,
  },
  async run({ args }) {
    const format = parseFormat(args.format);
    const pathPattern = args['path-pattern'];
    const spiffeIdPattern = args['spiffeid-pattern'];
    if (pathPattern && spiffeIdPattern) {
      fail('Error: Use either --path-pattern or --spiffeid-pattern, not both.', EXIT.usage);
    }
    const policies = await withClient('superuser', (spike) =>
      api('policy', () =>
        spike.listPolicies({
          ...(pathPattern ? { pathPattern } : {}),
          ...(spiffeIdPattern ? { spiffeIdPattern } : {}),
        }),
      ),
    );
    printValue(
      format,
      policies.map((p) => ({ id: p.id, name: p.name })),
      () =>
        policies.length === 0
          ? 'No policies found.'
          : `POLICIES\n========\n\n${policies.map((p) => `Name: ${p.name}\n--------`).join('\n')}`,
    );
  },
});

/** Go's `time.RFC3339` layout (seconds, `Z`). */
function rfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

function renderPolicy(p: Policy): string {
  return [
    'POLICY DETAILS',
    '=============',
    '',
    `Name: ${p.name}`,
    `SPIFFE ID Pattern: ${p.spiffeIdPattern}`,
    `Path Pattern: ${p.pathPattern}`,
    `Permissions: ${p.permissions.join(', ')}`,
    `Created At: ${rfc3339(p.createdAt)}`,
    `Updated At: ${rfc3339(p.updatedAt)}`,
  ].join('\n');
}

const nameArgs = {
  policy: { type: 'positional', description: 'Policy name', required: false },
  name: { type: 'string', description: 'Policy name (instead of the argument)', valueHint: 'name' },
} as const;

function nameOf(args: { policy?: string; name?: string }): string {
  if (args.policy && args.name && args.policy !== args.name) {
    fail('Error: Give the policy name once: as an argument or with --name.', EXIT.usage);
  }
  const name = args.policy || args.name;
  if (!name) fail('Error: A policy name is required (argument or --name).', EXIT.usage);
  return name;
}

const get = defineCommand({
  meta: commandMeta(['policy', 'get'], 'Show one policy', [
    'spike policy get db-access',
    'spike policy get --name=db-access -f yaml',
  ]),
  args: { ...nameArgs, format: formatArg },
  async run({ args }) {
    const format = parseFormat(args.format);
    const name = nameOf(args);
    const policy = await withClient('superuser', (spike) =>
      api('policy', () => spike.getPolicy(name)),
    );
    printValue(
      format,
      {
        name: policy.name,
        spiffeIdPattern: policy.spiffeIdPattern,
        pathPattern: policy.pathPattern,
        permissions: [...policy.permissions],
        createdAt: policy.createdAt.toISOString(),
        updatedAt: policy.updatedAt.toISOString(),
      },
      () => renderPolicy(policy),
    );
  },
});

const del = defineCommand({
  meta: commandMeta(
    ['policy', 'delete'],
    'Delete a policy (asks first; --yes without a terminal)',
    ['spike policy delete db-access', 'spike policy delete --name=db-access --yes'],
  ),
  args: {
    ...nameArgs,
    yes: {
      type: 'boolean',
      alias: 'y',
      description: 'Do not ask for confirmation (required without a terminal)',
    },
  },
  async run({ args }) {
    const name = nameOf(args);
    requireConfirmation(args.yes, 'policy delete (it cannot be undone)');
    await withClient('superuser', async (spike) => {
      // A missing policy is reported before asking.
      await api('policy', () => spike.getPolicy(name));
      const question = `Are you sure you want to delete policy '${name}'? (y/N): `;
      if (!(await confirmed(args.yes, 'policy delete (it cannot be undone)', question))) return;
      await api('policy', () => spike.deletePolicy(name));
      writeOut('Policy deleted successfully.');
    });
  },
});

const policyCommand = defineCommand({
  meta: commandMeta(['policy'], 'Manage access policies (superuser role)', [
    'spike policy list',
    'spike policy apply --file policy.yaml',
  ]),
  subCommands: { create, apply, list, get, delete: del },
});

export default policyCommand;
