/**
 * drizzle-kit configuration for the PostgreSQL migrations, from `schema/pg/tables.ts`.
 * Run from the repository root: `bunx drizzle-kit generate --config schema/pg/drizzle.config.ts`.
 */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './schema/pg/tables.ts',
  out: './schema/pg/migrations',
});
