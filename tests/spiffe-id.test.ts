/** Runs the portable spiffe-id suite (tests/portable/spiffe-id.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/spiffe-id.suite.ts';

suite({ describe, it });
