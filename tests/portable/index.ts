/** The list of portable suites; every entry runs under bun test (via tests/*.test.ts) and Deno. */
import type { Harness } from './harness.ts';

export const SUITES: ((t: Harness) => void)[] = [];
