// @ts-check
/**
 * A small typed event emitter: `on` returns the function that stops listening, and a listener
 * that throws does not stop the others (its error is reported, not swallowed).
 *
 * @template {object} Events
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(value: any) => void>>} */
  #listeners = new Map();

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {(value: Events[K]) => void} listener
   * @returns {() => void}
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Set());
    set.add(listener);
    return () => void set.delete(listener);
  }

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} value
   */
  emit(event, value) {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        // A listener's bug must not break the connection's bookkeeping.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
