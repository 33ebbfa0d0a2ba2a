/**
 * The cleanup worker: every `cleanup_interval` it lists expired sessions and has the hub expire
 * each one (claim, unbind every subscription, delete). With several nodes, the store's atomic
 * claim makes exactly one of them clean each session.
 *
 * A run goes on page after page while expired sessions remain, bounded in time (one interval),
 * not in count: clients that connect without an ID get a fresh session each time, and a worker
 * that took a fixed number per run would fall behind them for good. Sessions whose cleanup
 * failed stay claimed, out of the listing, until their claim lapses, so they never crowd newer
 * ones out.
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
  /** Sessions listed per store round trip. */
  batch?: number;
  /** Sessions expired at once (each is a few store round trips and broker requests). */
  concurrency?: number;
}

export class CleanupWorker {
  #timer?: TimerId;
  #running?: Promise<number>;
  #runs: Counter;
  #expired: Counter;

  readonly options: CleanupWorkerOptions;
  constructor(options: CleanupWorkerOptions) {
    this.options = options;
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
    const { store, scheduler, logger, interval } = this.options;
    const batch = this.options.batch ?? 500;
    this.#runs.inc();
    const started = scheduler.now();
    // Only what could not be cleaned: a session cleaned up is gone from the listing, so the set
    // stays as small as the failures, not as large as everything the run expired.
    const failed = new Set<string>();
    let cleaned = 0;
    for (;;) {
      let ids: string[];
      try {
        ids = await store.listExpired(scheduler.now(), batch);
      } catch (error) {
        logger.error("[CleanupWorker] Could not list expired sessions", error);
        break;
      }
      // What this run already tried and could not clean (a store error) waits for the next run.
      const fresh = ids.filter((id) => !failed.has(id));
      if (fresh.length === 0) break;
      logger.info(`[CleanupWorker] Found ${fresh.length} expired sessions`);
      cleaned += await this.#expireAll(fresh, failed);
      if (ids.length < batch || scheduler.now() - started >= interval) break;
    }
    this.#expired.inc({}, cleaned);
    return cleaned;
  }

  /** Expires `ids`, a few at a time; resolves how many this node cleaned up, adds the rest to `failed`. */
  async #expireAll(ids: string[], failed: Set<string>): Promise<number> {
    const { logger, expire } = this.options;
    let next = 0;
    let cleaned = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++];
        try {
          if (await expire(id)) cleaned++;
          else failed.add(id);
        } catch (error) {
          // One bad session (unreadable record, broker down) never stops the others.
          logger.error(`[CleanupWorker] Cleanup of ${id} failed`, error);
          failed.add(id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ids.length, this.options.concurrency ?? 8) }, worker));
    return cleaned;
  }
}
