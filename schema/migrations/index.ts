/**
 * The committed migrations, in order, embedded as text so a compiled `spike` binary carries them
 * (no migrations folder needed at run time). Schema version N = the N-th entry = drizzle-kit
 * journal index N − 1. Add a line here for every new migration; a test checks this list against
 * `meta/_journal.json`. Shipped migrations are never edited (docs/style.md "Habits").
 */
import m0000 from './0000_init.sql' with { type: 'text' };
import m0001 from './0001_kv2_room.sql' with { type: 'text' };
import m0002 from './0002_kv2_oldest_version.sql' with { type: 'text' };
import m0003 from './0003_change_log.sql' with { type: 'text' };

/** One migration: its schema version (1-based), drizzle-kit tag and SQL text. */
export interface Migration {
  readonly version: number;
  readonly tag: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, tag: '0000_init', sql: m0000 },
  { version: 2, tag: '0001_kv2_room', sql: m0001 },
  { version: 3, tag: '0002_kv2_oldest_version', sql: m0002 },
  { version: 4, tag: '0003_change_log', sql: m0003 },
];
