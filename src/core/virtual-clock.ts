/**
 * A Scheduler whose time moves only when a test says so.
 *
 * `advance(ms)` runs every timer that falls due within those milliseconds, in order of due time
 * (ties in order of scheduling), and lets pending promise callbacks settle after each one, so
 * async work started by a timer finishes before the next timer fires.
 */
import { sleepOn } from "./scheduler.ts";
import type { Scheduler, TimerId } from "./scheduler.ts";

interface Timer {
  id: TimerId;
  due: number;
  every?: number;
  fn: () => void;
}

export class VirtualClock implements Scheduler {
  #now: number;
  #next = 1;
  #timers = new Map<TimerId, Timer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { id, due: this.#now + Math.max(0, ms), fn });
    return id;
  }

  setInterval(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    const every = Math.max(1, ms);
    this.#timers.set(id, { id, due: this.#now + every, every, fn });
    return id;
  }

  clear(id: TimerId): void {
    this.#timers.delete(id);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of timers still scheduled. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the earliest timer still scheduled falls due (ms since the epoch), if there is one. */
  get nextDue(): number | undefined {
    return this.#earliest(Infinity)?.due;
  }

  /** Moves time forward by `ms`, running due timers in order and settling async work between them. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await settle();
      const timer = this.#earliest(target);
      if (!timer) break;
      this.#now = timer.due;
      if (timer.every) timer.due += timer.every;
      else this.#timers.delete(timer.id);
      timer.fn();
    }
    this.#now = target;
    await settle();
  }

  #earliest(limit: number): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.#timers.values()) {
      if (timer.due <= limit && (!best || timer.due < best.due)) best = timer;
    }
    return best;
  }
}

/** Lets queued microtasks and already-resolved I/O callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise<void>((resolve) => queueMicrotask(resolve));
}
