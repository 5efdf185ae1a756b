/**
 * The backup calls of the SDK [Ours] (docs/backup.md §2–§4): export, import and snapshot, all
 * superuser. Export and snapshot answer bytes (an age file, an SQLite image), which the SDK
 * hands over unread; import answers a JSON summary.
 */
import { type NexusCaller, TARGET } from './calls.ts';
import type { SpikeClient } from './types.ts';
import { checkBytes, integer, readObject } from './wire.ts';

type BackupCalls = Pick<SpikeClient, 'exportStore' | 'importStore' | 'snapshot'>;

/** The backup calls. */
export function backupCalls({ exchange }: NexusCaller): BackupCalls {
  return {
    async exportStore(to, opts = {}) {
      if (typeof to !== 'object' || to === null) throw new TypeError('to must be an object');
      const body = 'recipient' in to ? { recipient: to.recipient } : { passphrase: to.passphrase };
      return exchange(TARGET.exportStore, JSON.stringify(body), true, opts.signal);
    },

    async importStore(document, opts = {}) {
      checkBytes(document, 'document');
      const target = opts.replace === true ? TARGET.importReplace : TARGET.importStore;
      const res = readObject({ body: await exchange(target, document, false, opts.signal) });
      return {
        secrets: integer(res.secrets, 'secrets'),
        versions: integer(res.versions, 'versions'),
        policies: integer(res.policies, 'policies'),
      };
    },

    async snapshot(opts = {}) {
      return exchange(TARGET.snapshot, '{}', true, opts.signal);
    },
  };
}
