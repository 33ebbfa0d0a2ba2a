/**
 * What makes an SSE stream at-least-once: every event it writes is kept in the session's replay
 * log (in the store, so any node finds it) before its message is let go at the broker. The
 * stream's connection runs with acks; this module is the client that acknowledges: once a batch
 * of written events is in the log, it acks them. A reconnecting EventSource's Last-Event-ID then
 * says what it has, and the rest is written again first, with the same ids.
 *
 * An event that could not be kept (the store out of reach) is never acknowledged: acks are
 * cumulative, so nothing after it is either, until a retry keeps them all. Its message stays
 * with the broker, which sends it again when the stream's consumer restarts (a reconnect, on any
 * node), so a stream that drops meanwhile loses nothing and its next welcome is true. Meanwhile
 * live traffic goes on up to the broker's and `delivery.max_in_flight`'s unacknowledged window.
 */
import type { Connection } from "../core/connection.ts";
import { GatewayError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { Scheduler, TimerId } from "../core/scheduler.ts";
import type { ReplayEvent } from "../core/session.ts";

/** The SSE entrypoint's back-off (the replay log's retries, a stream's bind retries): 1 s doubling to 30 s. */
export const RETRY_FIRST_MS = 1000;
export const RETRY_MAX_MS = 30_000;
export const nextRetry = (ms: number): number => Math.min(ms * 2, RETRY_MAX_MS);

/** The part of the hub this needs. */
export interface ReplayStore {
  appendReplay(clientId: string, events: ReplayEvent[]): Promise<number>;
}

export class ReplayWriter {
  /** Written and not yet kept, oldest first: none of them is acknowledged. */
  #pending: Array<{ event: ReplayEvent; delivery: string }> = [];
  #flushing?: Promise<void>;
  /** Set while the store is out of reach: the next attempt, and the wait before the one after. */
  #retry?: TimerId;
  #delay = 0;
  /** The stream ended: one last attempt, no retries. */
  #ended = false;
  /** Callers of `flushed` waiting for the pending events to be kept (or given up). */
  #waiting: Array<() => void> = [];
  /** Events evicted by the byte bound while this stream wrote. */
  evicted = 0;

  private readonly conn: Connection;
  private readonly store: ReplayStore;
  private readonly logger: Logger;
  private readonly scheduler: Scheduler;
  constructor(
    conn: Connection,
    store: ReplayStore,
    logger: Logger,
    scheduler: Scheduler,
  ) {
    this.conn = conn;
    this.store = store;
    this.logger = logger;
    this.scheduler = scheduler;
  }

  /** An event was written to the stream: kept, then its delivery acknowledged, soon (batched per turn). */
  add(event: ReplayEvent, delivery: string): void {
    this.#pending.push({ event, delivery });
    // While the store is out of reach, the retry timer takes these along: not a store call each.
    if (this.#retry === undefined) this.#start();
  }

  /**
   * Resolves once everything added so far is kept and acknowledged, or, the stream having ended,
   * could not be kept and is left unacknowledged with the broker.
   */
  flushed(): Promise<void> {
    if (this.#pending.length === 0 && !this.#flushing) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** The stream ended: tries once more at once what is not kept yet; resolves like `flushed`. */
  finish(): Promise<void> {
    this.#ended = true;
    if (this.#retry !== undefined) {
      this.scheduler.clear(this.#retry);
      this.#retry = undefined;
      this.#start();
    }
    return this.flushed();
  }

  /** Starts a flush unless one runs (on the next turn, so what this turn writes goes in one batch). */
  #start(): void {
    this.#flushing ??= Promise.resolve().then(() => this.#flush());
  }

  async #flush(): Promise<void> {
    while (this.#pending.length > 0) {
      // Everything not kept yet, in order: after a failure the next batch holds the earlier too.
      // A write that reached the store but whose answer did not is appended again: the log then
      // holds those events twice (same ids), and a replay writes them twice (at least once).
      const batch = this.#pending.slice();
      try {
        this.evicted += await this.store.appendReplay(this.conn.clientId, batch.map((b) => b.event));
      } catch (error) {
        this.#failed(batch.length, error);
        break;
      }
      this.#pending.splice(0, batch.length);
      if (this.#delay > 0) {
        this.logger.info(
          `[SSE] Replay log of ${this.conn.clientId} reachable again; ${batch.length} events kept`,
        );
        this.#delay = 0;
      }
      const last = new Map<string, string>();
      for (const b of batch) last.set(b.event.endpoint, b.delivery);
      for (const [endpoint, id] of last) {
        try {
          this.conn.ack(endpoint, id);
        } catch {
          // The connection closed meanwhile: what it did not ack stays with the broker.
        }
      }
    }
    this.#flushing = undefined;
    if (this.#pending.length === 0 || this.#ended) {
      // Given up at the end: not acknowledged, so the broker has them for the next stream.
      this.#pending = [];
      for (const resolve of this.#waiting.splice(0)) resolve();
    }
  }

  /** The store refused a batch: nothing of it is acknowledged; retried with back-off while the stream lives. */
  #failed(count: number, error: unknown): void {
    const { message } = GatewayError.from(error);
    const { clientId } = this.conn;
    if (this.#ended) {
      this.logger.warn(
        `[SSE] Stream of ${clientId} ended with ${count} events its replay log could not keep; not acknowledged, the broker sends them again: ${message}`,
      );
      return;
    }
    if (this.#delay === 0) {
      // Once per outage, not per attempt.
      this.logger.warn(
        `[SSE] Replay log of ${clientId} unreachable; ${count} events left unacknowledged with the broker until kept, retrying: ${message}`,
      );
    }
    this.#delay = this.#delay === 0 ? RETRY_FIRST_MS : nextRetry(this.#delay);
    this.#retry = this.scheduler.setTimeout(() => {
      this.#retry = undefined;
      this.#start();
    }, this.#delay);
  }
}
