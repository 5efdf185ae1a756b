/** The list of portable suites; every entry runs under bun test (via tests/*.test.ts) and Deno. */
import type { Harness } from './harness.ts';
import { suite as jwtsvid } from './jwtsvid.suite.ts';
import { suite as proto } from './proto.suite.ts';
import { suite as shards } from './shards.suite.ts';
import { suite as spiffeId } from './spiffe-id.suite.ts';
import { suite as workload } from './workload.suite.ts';
import { suite as x509svid } from './x509svid.suite.ts';

export const SUITES: ((t: Harness) => void)[] = [
  shards,
  spiffeId,
  x509svid,
  proto,
  workload,
  jwtsvid,
];
