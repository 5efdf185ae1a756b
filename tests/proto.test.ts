/** Runs the portable Workload API codec suite (tests/portable/proto.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/proto.suite.ts';

suite({ describe, it });
