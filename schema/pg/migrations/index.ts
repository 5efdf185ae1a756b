/**
 * The committed PostgreSQL migrations, in order, embedded as text (as schema/migrations/index.ts
 * is for SQLite). PostgreSQL schema version N = the N-th entry = drizzle-kit journal index N − 1;
 * a test checks this list against `meta/_journal.json`. Shipped migrations are never edited.
 */
import type { Migration } from '../../migrations/index.ts';
import m0000 from './0000_init.sql' with { type: 'text' };
import m0001 from './0001_change_log.sql' with { type: 'text' };

export const PG_MIGRATIONS: readonly Migration[] = [
  { version: 1, tag: '0000_init', sql: m0000 },
  { version: 2, tag: '0001_change_log', sql: m0001 },
];
