/**
 * A per-key async mutex: callers with the same key run one after another, in arrival order;
 * different keys run independently (docs/spike-api.md §6 "Atomicity": a per-path lock).
 *
 * Needed because a write is asynchronous between reading a path and writing it (encryption runs
 * on Web Crypto), so two writers of one path could otherwise interleave and lose an update.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier `run` with the same key has settled; returns its result. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key);
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous === undefined ? done : previous.then(() => done);
    this.#tails.set(key, tail);
    try {
      if (previous !== undefined) await previous;
      return await fn();
    } finally {
      release();
      // Forget the key once nobody is queued behind us, so the map does not grow per path.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
