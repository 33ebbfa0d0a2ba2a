/**
 * What makes an SSE stream at-least-once: every event it writes is kept in the session's replay
 * log (in the store, so any node finds it) before its message is let go at the broker. The
 * stream's connection runs with acks; this module is the client that acknowledges: once a batch
 * of written events is in the log, it acks them. A reconnecting EventSource's Last-Event-ID then
 * says what it has, and the rest is written again first, with the same ids.
 */
import type { Connection } from "../core/connection.ts";
import { GatewayError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ReplayEvent } from "../core/session.ts";

/** The part of the hub this needs. */
export interface ReplayStore {
  appendReplay(clientId: string, events: ReplayEvent[]): Promise<number>;
}

export class ReplayWriter {
  #batch: Array<{ event: ReplayEvent; delivery: string }> = [];
  #flushing?: Promise<void>;
  /** Events written that could not be kept (the store was out of reach): the next welcome says so. */
  unkept = 0;
  /** Events evicted by the byte bound while this stream wrote. */
  evicted = 0;

  constructor(
    private readonly conn: Connection,
    private readonly store: ReplayStore,
    private readonly logger: Logger,
  ) {}

  /** An event was written to the stream: kept, then its delivery acknowledged, soon (batched per turn). */
  add(event: ReplayEvent, delivery: string): void {
    this.#batch.push({ event, delivery });
    this.#flushing ??= Promise.resolve().then(() => this.#flush());
  }

  /** Resolves once everything added so far is kept and acknowledged. */
  flushed(): Promise<void> {
    return this.#flushing ?? Promise.resolve();
  }

  async #flush(): Promise<void> {
    while (this.#batch.length > 0) {
      const batch = this.#batch;
      this.#batch = [];
      try {
        this.evicted += await this.store.appendReplay(this.conn.clientId, batch.map((b) => b.event));
      } catch (error) {
        // Live traffic goes on without the store: these events are delivered, not replayable.
        this.unkept += batch.length;
        this.logger.warn(
          `[SSE] Replay log of ${this.conn.clientId} unreachable; ${batch.length} events cannot be replayed: ${
            GatewayError.from(error).message
          }`,
        );
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
  }
}
