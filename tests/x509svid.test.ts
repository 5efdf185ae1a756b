/** Runs the portable x509svid suite (tests/portable/x509svid.suite.ts) under bun test. */
import { describe, it } from 'bun:test';
import { suite } from './portable/x509svid.suite.ts';

suite({ describe, it });
