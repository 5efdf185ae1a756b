/**
 * The backup routes of Nexus [Ours] (docs/backup.md §2–§4), superuser only:
 *
 * - `POST /v1/operator/export` `{recipient}` or `{passphrase}`: every path, version and policy
 *   as one age file (typage, `age-encryption`), encrypted here to the operator's X25519
 *   recipient or under a passphrase (scrypt, work factor 2^18). The plaintext document exists
 *   only in this process's memory; the 200 answer is `application/octet-stream` age bytes.
 * - `POST /v1/operator/import[?action=replace]`: the plaintext export document (the operator's
 *   `spike` decrypted it, so the age identity never leaves the operator's machine), at most
 *   `MAX_IMPORT_BYTES`, read only after the caller is authorised. Without `replace` a store that
 *   holds anything is refused (400).
 * - `POST /v1/operator/snapshot`: an online image of the SQLite database (400 on the other
 *   backends, pointing to pg_dump for PostgreSQL).
 *
 * Every call is audited by the pipeline with the caller's SPIFFE ID (docs/spike-api.md §12);
 * the export's audited resource is the recipient (a public key) or `passphrase`, never the
 * passphrase itself.
 */
import { Encrypter } from 'age-encryption';
import { jsonResponse, octetResponse } from '../../api/v1/http.ts';
import { NEXUS_ROUTES, type RouteSpec, secretPathRule } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { utf8, zero } from '../../core/bytes.ts';
import { SpikeError } from '../../core/errors.ts';
import { readBodyCapped } from '../../core/http/body.ts';
import { checkReservedOnPut, compilePolicy } from '../../core/policy/engine.ts';
import { validatePolicyInput, validateSecretPath } from '../../core/policy/validate.ts';
import { type ExportDocument, parseExportDocument } from '../store/export-document.ts';
import type { ImportMode, StoreBackup } from '../store/index.ts';
import { defineRoute, type NexusRoute, type RouteContext } from './route.ts';

/** What the backup routes need from the store. */
export interface NexusBackup extends StoreBackup {
  /** An online image of the SQLite database; `api_bad_request` on other backends. */
  snapshot(): Uint8Array;
}

/** The largest import document accepted (the plaintext JSON; bigger stores: split by hand). */
const MAX_IMPORT_BYTES = 256 * 1024 * 1024;

/** An age X25519 recipient (`age1` + 58 Bech32 characters) or a hybrid post-quantum one. */
const RECIPIENT = /^age1(?:pq1)?[02-9ac-hj-np-z]{58,3000}$/;
const MIN_PASSPHRASE = 8;
const MAX_PASSPHRASE_BYTES = 1024;

function backupOf(ctx: RouteContext): NexusBackup {
  const backup = ctx.deps.backup;
  if (backup === undefined) {
    throw new SpikeError('api_bad_request', 'this backend has no store to back up');
  }
  return backup;
}

/** The encrypter for exactly one of `recipient` and `passphrase`, or 400. */
function encrypterFor(recipient: string, passphrase: string): Encrypter {
  if ((recipient === '') === (passphrase === '')) {
    throw new SpikeError('api_bad_request', 'give exactly one of recipient and passphrase');
  }
  const encrypter = new Encrypter();
  if (passphrase !== '') {
    if ([...passphrase].length < MIN_PASSPHRASE) {
      throw new SpikeError(
        'api_bad_request',
        `passphrase must be at least ${MIN_PASSPHRASE} characters`,
      );
    }
    if (utf8.encode(passphrase).length > MAX_PASSPHRASE_BYTES) {
      throw new SpikeError(
        'api_bad_request',
        `passphrase must be at most ${MAX_PASSPHRASE_BYTES} bytes`,
      );
    }
    encrypter.setPassphrase(passphrase);
    return encrypter;
  }
  const invalid = () =>
    new SpikeError('api_bad_request', 'recipient must be an age public key (age1…)');
  if (!RECIPIENT.test(recipient)) throw invalid();
  try {
    encrypter.addRecipient(recipient);
  } catch {
    throw invalid();
  }
  return encrypter;
}

/** The §5 path rules and the policy rules (§7), checked for the whole document before writing. */
function validateDocument(document: ExportDocument): void {
  for (const { path } of document.secrets) {
    validateSecretPath(path);
    const rule = secretPathRule(path);
    if (rule !== undefined) throw new SpikeError('api_bad_request', rule);
  }
  for (const policy of document.policies) {
    const input = validatePolicyInput({ ...policy, permissions: [...policy.permissions] });
    checkReservedOnPut(compilePolicy(input));
  }
}

function importRoute(spec: RouteSpec, mode: ImportMode): NexusRoute {
  return defineRoute({
    spec,
    // The body is read after authorisation: only a superuser may make Nexus read 256 MiB.
    decode: async () => undefined,
    guard: () => ({ role: 'superuser' }),
    async handle(ctx) {
      ctx.keys();
      const backup = backupOf(ctx);
      const body = await readBodyCapped(ctx.request, MAX_IMPORT_BYTES);
      let document: ExportDocument;
      try {
        document = parseExportDocument(body);
      } finally {
        zero(body);
      }
      validateDocument(document);
      try {
        return jsonResponse(200, await backup.load(document, mode));
      } finally {
        // Policies were (perhaps partly) written behind the engine's back.
        ctx.engine.invalidate();
      }
    },
  });
}

/** The backup routes. */
export const BACKUP_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.exportStore,
    decode: (ctx) => ctx.json(REQUEST.exportStore),
    guard: () => ({ role: 'superuser' }),
    async handle(ctx, req) {
      ctx.keys();
      const backup = backupOf(ctx);
      const encrypter = encrypterFor(req.recipient, req.passphrase);
      ctx.setResource(req.recipient === '' ? 'passphrase' : req.recipient);
      const plaintext = utf8.encode(JSON.stringify(await backup.dump()));
      try {
        return octetResponse(await encrypter.encrypt(plaintext));
      } finally {
        zero(plaintext);
      }
    },
  }),
  importRoute(NEXUS_ROUTES.importStore, 'empty'),
  importRoute(NEXUS_ROUTES.importReplace, 'replace'),
  defineRoute({
    spec: NEXUS_ROUTES.snapshot,
    decode: (ctx) => ctx.json(REQUEST.none),
    guard: () => ({ role: 'superuser' }),
    async handle(ctx) {
      const image = backupOf(ctx).snapshot();
      ctx.setResource('database');
      return octetResponse(image);
    },
  }),
];
