// @ts-check
/**
 * Publishes until their receipt: each carries an id (the caller's, or a UUID). Made while
 * disconnected, or unanswered when a connection dropped, it stays here and is sent again after
 * the next welcome with the same id: the gateway's dedupe window answers a repeat with the first
 * publish's receipt, so each reaches the broker once. A repeat that finds the first still with
 * the broker (OUTCOME_UNKNOWN) asks again for the receipt a little later. Bounded: past `max`
 * waiting, a publish is refused at once (QUEUE_FULL).
 */
/** @import { Receipt, Timers } from "../mod.d.ts" */
import { ClientError } from "./errors.js";

/** How often, at most, a repeated publish asks for the receipt of one still under way. */
const MAX_UNKNOWN_RETRIES = 20;

/**
 * @typedef {{ endpoint: string, data: unknown, id: string, resolve: (r: Receipt) => void,
 *   reject: (e: ClientError) => void, sends: number, timer?: unknown }} Publish
 */

export class Outbox {
  /** In the order they were made. @type {Map<string, Publish>} */
  #waiting = new Map();

  /**
   * @param {number} max
   * @param {Timers} timers
   * @param {(frame: { type: "publish", endpoint: string, data: unknown, id: string }) => boolean} send
   *   writes a frame on the connection open now; false when there is none
   */
  constructor(max, timers, send) {
    this.max = max;
    this.timers = timers;
    this.send = send;
  }

  /** @param {string} endpoint @param {unknown} data @param {string} id @returns {Promise<Receipt>} */
  add(endpoint, data, id) {
    if (this.#waiting.has(id)) {
      return Promise.reject(new ClientError("BAD_REQUEST", `a publish with id ${id} is under way`));
    }
    if (this.#waiting.size >= this.max) {
      return Promise.reject(
        new ClientError("QUEUE_FULL", `${this.max} publishes are waiting (maxQueuedPublishes)`),
      );
    }
    return new Promise((resolve, reject) => {
      /** @type {Publish} */
      const p = { endpoint, data, id, resolve, reject, sends: 0 };
      this.#waiting.set(id, p);
      this.#send(p);
    });
  }

  /** A connection was welcomed: everything waiting goes out, in order. */
  flush() {
    for (const p of this.#waiting.values()) if (p.timer === undefined) this.#send(p);
  }

  /** Settles the publish a receipt names; false when it names none. @param {{ id: string, meta?: Record<string, string | number> }} f */
  receipt(f) {
    const p = this.#waiting.get(f.id);
    if (!p) return false;
    this.#waiting.delete(f.id);
    p.resolve(f.meta ? { id: f.id, meta: f.meta } : { id: f.id });
    return true;
  }

  /** Settles (or retries) the publish an error frame names; false when it names none. @param {string | undefined} id @param {ClientError} error */
  error(id, error) {
    const p = id === undefined ? undefined : this.#waiting.get(id);
    if (!p) return false;
    if (error.code === "OUTCOME_UNKNOWN" && p.sends > 1 && p.sends < MAX_UNKNOWN_RETRIES) {
      // A repeat found the first copy still with the broker: ask again for its receipt.
      p.timer = this.timers.setTimeout(() => {
        p.timer = undefined;
        if (this.#waiting.get(p.id) === p) this.#send(p);
      }, 200 * p.sends);
      return true;
    }
    this.#waiting.delete(p.id);
    p.reject(error);
    return true;
  }

  /** The client stopped: everything waiting fails with `error`. @param {ClientError} error */
  rejectAll(error) {
    for (const p of this.#waiting.values()) {
      if (p.timer !== undefined) this.timers.clear(p.timer);
      p.reject(error);
    }
    this.#waiting.clear();
  }

  /** @param {Publish} p */
  #send(p) {
    if (this.send({ type: "publish", endpoint: p.endpoint, data: p.data, id: p.id })) p.sends++;
  }
}
