/**
 * Per-key serialization: lifecycle steps of one client (connect, bind, disconnect, cleanup) run
 * one at a time on a node, so a disconnect cannot interleave with the reconnect that follows it.
 */
export class KeyedMutex {
  #tails = new Map<string, Promise<unknown>>();

  /** Keys with a run under way or waiting (a key with none is forgotten). */
  get size(): number {
    return this.#tails.size;
  }

  /** Runs `fn` after every earlier `run` for the same key has settled. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(() => {}, () => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
