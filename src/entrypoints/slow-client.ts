/**
 * The slow-client clock both streaming entrypoints use (WebSocket and SSE): it runs while a
 * client's send buffer is past `server.max_buffered_bytes`, and a client still behind when it
 * fires, after `server.slow_client_timeout`, is ended instead of buffered without bound.
 */
import type { Scheduler, TimerId } from "../core/scheduler.ts";

/**
 * One client's clock. `behind` says whether the client's buffer is past the mark now (false
 * once the connection ended); `tooSlow` ends the client.
 *
 * @example
 * ```ts
 * const clock = new SlowClientClock(scheduler, 5_000, () => !closed && full(), () => end("too slow"));
 * const writable = () => !closed && clock.keepsUp();
 * ```
 */
export class SlowClientClock {
  #timer?: TimerId;

  private scheduler: Scheduler;
  private timeoutMs: number;
  private behind: () => boolean;
  private tooSlow: () => void;
  constructor(
    scheduler: Scheduler,
    timeoutMs: number,
    behind: () => boolean,
    tooSlow: () => void,
  ) {
    this.scheduler = scheduler;
    this.timeoutMs = timeoutMs;
    this.behind = behind;
    this.tooSlow = tooSlow;
  }

  /**
   * Whether the client keeps up now. If it does, the clock stops; if not, the clock starts
   * (unless it runs already), and when it fires with the client still behind, `tooSlow` runs.
   */
  keepsUp(): boolean {
    if (!this.behind()) {
      this.stop();
      return true;
    }
    this.#timer ??= this.scheduler.setTimeout(() => {
      this.#timer = undefined;
      if (this.behind()) this.tooSlow();
    }, this.timeoutMs);
    return false;
  }

  /** Stops the clock (the client caught up, or the connection ended). */
  stop(): void {
    if (this.#timer !== undefined) this.scheduler.clear(this.#timer);
    this.#timer = undefined;
  }
}
