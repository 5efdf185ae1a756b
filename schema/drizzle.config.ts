/**
 * drizzle-kit configuration: generates the committed SQL migrations from `schema/tables.ts`.
 * Run from the repository root: `bunx drizzle-kit generate --config schema/drizzle.config.ts`.
 */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './schema/tables.ts',
  out: './schema/migrations',
});
