/** Runs the portable Workload API client suite (tests/portable/workload.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/workload.suite.ts';

suite({ describe, it });
