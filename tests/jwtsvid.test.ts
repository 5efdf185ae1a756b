/** Runs the portable JWT-SVID suite (tests/portable/jwtsvid.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/jwtsvid.suite.ts';

suite({ describe, it });
