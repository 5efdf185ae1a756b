/**
 * Online snapshots of the SQLite store (docs/backup.md "Snapshots"): a consistent image of the
 * database file while Nexus keeps serving.
 *
 * The image is taken on a second, read-only connection to the same file, so it sees exactly the
 * last committed transaction (WAL: a reader never waits for the writer, and the writer's open
 * group-commit transaction is invisible to it) and never a half-applied write. `serialize()`
 * (`sqlite3_serialize`) copies the pages of that read snapshot into memory: the image never
 * touches disk on the Nexus side. It holds what the database holds — sealed rows and the
 * key-check value, never a root key or a plaintext value (docs/architecture.md invariants 1, 2) —
 * so it is restored with the same Keepers or recovery shards as the original.
 */
import { Database } from 'bun:sqlite';
import { guard } from './errors.ts';

/** How long the snapshot connection waits for a writer's lock in a non-WAL journal mode (ms). */
const SNAPSHOT_BUSY_TIMEOUT_MS = 5000;

/** A consistent image of the database at `file`, taken while other connections write. */
export function snapshotSqliteFile(file: string): Uint8Array {
  return guard(() => {
    const db = new Database(file, { readonly: true });
    try {
      db.run(`PRAGMA busy_timeout = ${SNAPSHOT_BUSY_TIMEOUT_MS}`);
      // One read transaction around the copy: every page comes from the same commit.
      db.run('BEGIN');
      try {
        return new Uint8Array(db.serialize());
      } finally {
        db.run('COMMIT');
      }
    } finally {
      db.close();
    }
  });
}
