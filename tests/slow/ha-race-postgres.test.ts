/**
 * The first-boot race of issue 13 in full (criterion 2): 3 replicas started at once over an empty
 * PostgreSQL database, 20 times, find exactly one root key (tests/support/ha-race.ts; a few
 * minutes). Runs when SPIKE_TEST_DATABASE_URL is set (`bun run test:slow` in CI), else skipped.
 */
import { describe, it } from 'bun:test';
import { raceRounds } from '../support/ha-race.ts';
import { TEST_DATABASE_URL } from '../support/store-backends.ts';

describe.skipIf(TEST_DATABASE_URL === undefined)('postgres replicas race', () => {
  it('postgres: 3 replicas started at once find exactly one root key, 20 rounds', async () => {
    await raceRounds(20);
  }, 1_500_000);
});
