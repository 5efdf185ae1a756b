/** Runs the portable Shamir custody suite (tests/portable/shards.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/shards.suite.ts';

suite({ describe, it: (name, fn, timeoutMs) => it(name, fn, timeoutMs) });
