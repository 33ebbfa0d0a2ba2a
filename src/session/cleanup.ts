/**
 * The cleanup worker: every `cleanup_interval` it lists expired sessions and has the hub expire
 * each one (claim, unbind every subscription, delete). With several nodes, the store's atomic
 * claim makes exactly one of them clean each session.
 */
import type { Logger } from "../core/logger.ts";
import type { Counter, Metrics } from "../core/metrics.ts";
import type { Scheduler, TimerId } from "../core/scheduler.ts";
import type { SessionStore } from "../core/session.ts";

export interface CleanupWorkerOptions {
  store: SessionStore;
  scheduler: Scheduler;
  logger: Logger;
  metrics: Metrics;
  /** Expires one session; resolves whether this call cleaned it up (see Hub.expire). */
  expire: (clientId: string) => Promise<boolean>;
  interval: number;
  /** Most sessions handled in one run; the rest wait for the next. */
  batch?: number;
}

export class CleanupWorker {
  #timer?: TimerId;
  #running?: Promise<number>;
  #runs: Counter;
  #expired: Counter;

  constructor(readonly options: CleanupWorkerOptions) {
    this.#runs = options.metrics.counter("mediation_cleanup_runs_total", "Cleanup worker runs");
    this.#expired = options.metrics.counter(
      "mediation_sessions_expired_total",
      "Expired sessions cleaned up by this node",
    );
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = this.options.scheduler.setInterval(() => {
      // A run that outlasts the interval is not started twice.
      if (!this.#running) void this.run();
    }, this.options.interval);
  }

  /** Stops scheduling runs and waits for the one under way. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) this.options.scheduler.clear(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One cleanup pass; resolves how many sessions this node cleaned up. */
  run(): Promise<number> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(): Promise<number> {
    const { store, scheduler, logger, expire } = this.options;
    this.#runs.inc();
    let ids: string[];
    try {
      ids = await store.listExpired(scheduler.now(), this.options.batch ?? 500);
    } catch (error) {
      logger.error("[CleanupWorker] Could not list expired sessions", error);
      return 0;
    }
    if (ids.length === 0) return 0;
    logger.info(`[CleanupWorker] Found ${ids.length} expired sessions`);
    let cleaned = 0;
    for (const id of ids) {
      try {
        if (await expire(id)) cleaned++;
      } catch (error) {
        // One bad session (unreadable record, broker down) never stops the others.
        logger.error(`[CleanupWorker] Cleanup of ${id} failed`, error);
      }
    }
    this.#expired.inc({}, cleaned);
    return cleaned;
  }
}
