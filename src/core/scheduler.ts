/**
 * The Scheduler port: the only way the engine reads the clock or waits.
 *
 * Everything time-dependent (reconnection windows, cleanup, leases, pings) goes through it, so
 * tests drive it with the VirtualClock instead of sleeping.
 */

/** An opaque handle for a scheduled callback. */
export type TimerId = number;

export interface Scheduler {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Runs `fn` every `ms` milliseconds until cleared. */
  setInterval(fn: () => void, ms: number): TimerId;
  /** Cancels a timeout or interval; unknown or already-fired ids are ignored. */
  clear(id: TimerId): void;
  /** Resolves after `ms` milliseconds, or rejects when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The runtime's own clock and timers. */
export class RealScheduler implements Scheduler {
  #next = 1;
  #timers = new Map<TimerId, ReturnType<typeof globalThis.setTimeout>>();
  #intervals = new Map<TimerId, ReturnType<typeof globalThis.setInterval>>();

  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(
      id,
      globalThis.setTimeout(() => {
        this.#timers.delete(id);
        fn();
      }, ms),
    );
    return id;
  }

  setInterval(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#intervals.set(id, globalThis.setInterval(fn, ms));
    return id;
  }

  clear(id: TimerId): void {
    const timer = this.#timers.get(id);
    if (timer !== undefined) globalThis.clearTimeout(timer);
    const interval = this.#intervals.get(id);
    if (interval !== undefined) globalThis.clearInterval(interval);
    this.#timers.delete(id);
    this.#intervals.delete(id);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

/** `sleep` for any Scheduler: a timeout that an AbortSignal can cut short. */
export function sleepOn(scheduler: Scheduler, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      scheduler.clear(id);
      reject(signal!.reason);
    };
    const id = scheduler.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
