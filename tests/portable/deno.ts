/**
 * Runs the portable suites under Deno: `deno test --allow-all --no-check tests/portable/deno.ts`.
 * Each suite is registered with a `Deno.test` adapter for the Harness contract.
 */
import 'reflect-metadata';
import type { Harness } from './harness.ts';
import { SUITES } from './index.ts';

declare const Deno: {
  test(def: {
    name: string;
    fn: () => void | Promise<void>;
    sanitizeOps?: boolean;
    sanitizeResources?: boolean;
  }): void;
};

const prefix: string[] = [];
const harness: Harness = {
  describe(name, fn) {
    prefix.push(name);
    try {
      fn();
    } finally {
      prefix.pop();
    }
  },
  it(name, fn) {
    Deno.test({
      name: [...prefix, name].join(' > '),
      fn,
      sanitizeOps: false,
      sanitizeResources: false,
    });
  },
};

for (const suite of SUITES) suite(harness);
