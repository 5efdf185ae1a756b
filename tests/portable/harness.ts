/**
 * The one contract between portable suites and a runtime's test runner (docs/style.md rule 11).
 *
 * A portable suite exports `function suite(t: Harness)`; `tests/*.test.ts` hands it bun:test's
 * functions and `tests/portable/deno.ts` hands it a Deno.test adapter. Assertions use
 * `node:assert/strict`, which both runtimes provide.
 */
export interface Harness {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => void | Promise<void>, timeoutMs?: number): void;
}
