// @ts-check
/**
 * Deliveries on their way to the application: one queue per endpoint, handed to its handler in
 * order, one at a time; a message is acknowledged once its handler finished. Acks are cumulative
 * (an ack covers every earlier message of the endpoint), so a handler's failure stops the acks
 * of its endpoint on that connection, and each tick sends one ack per endpoint, for the latest
 * message handled.
 *
 * Connections are numbered by the client; `live()` is the one open now (0: none). With acks, a
 * message of a connection that is gone is not handled: unacknowledged, it comes again on the
 * next one. A redelivered message whose dedupe key was handled before is acked, not handled.
 *
 * With acks, a message of an endpoint without a handler is not acknowledged (the client may be a
 * publish-only script using a subscriber's ID: acking would drain the subscriber's queue). It
 * waits for a handler on its connection, and otherwise comes again on a later connection. It
 * cannot be left behind while later ones are acked: acks are cumulative, so it must go first.
 * (The gateway's `delivery.max_in_flight` bounds how many wait.)
 */
/** @import { Handler, Message } from "../mod.d.ts" */

/**
 * @typedef {object} InboxOptions
 * @property {boolean} ackMode end-to-end acks on (`ack=1`)
 * @property {(m: Message) => string | undefined} dedupeKey
 * @property {number} dedupeSize keys remembered per endpoint
 * @property {() => number} live the connection open now, 0 when none
 * @property {(endpoint: string, id: string) => void} sendAck
 * @property {(m: Message) => void} unhandled a message of an endpoint without a handler
 * @property {(m: Message, on: number, error: unknown) => void} failed a handler threw
 *
 * @typedef {{ handler?: Handler, items: Array<{ m: Message, on: number }>, running: boolean, pausedOn: number }} Queue
 */

export class Inbox {
  /** @type {Map<string, Queue>} */
  #queues = new Map();
  /** Latest handled id per endpoint, with its connection. @type {Map<string, { id: string, on: number }>} */
  #acks = new Map();
  #ackScheduled = false;
  /** Dedupe keys of handled messages per endpoint, oldest first. @type {Map<string, Set<string>>} */
  #handled = new Map();

  /** @param {InboxOptions} options */
  constructor(options) {
    this.options = options;
  }

  /** Messages of `endpoint` go to `handler` from now on (those waiting too). @param {string} endpoint @param {Handler} handler */
  setHandler(endpoint, handler) {
    const queue = this.#queue(endpoint);
    queue.handler = handler;
    if (!queue.running && queue.items.length > 0) void this.#drain(queue);
  }

  /** No handler for `endpoint` any more; what waits for it is dropped. @param {string} endpoint */
  removeHandler(endpoint) {
    const queue = this.#queues.get(endpoint);
    if (!queue) return;
    queue.handler = undefined;
    queue.items.length = 0;
  }

  /** A message that came on connection `on`. @param {Message} m @param {number} on */
  receive(m, on) {
    const queue = this.options.ackMode ? this.#queue(m.endpoint) : this.#queues.get(m.endpoint);
    if (!queue?.handler) {
      this.options.unhandled(m);
      // Not acked: it waits for a handler (see the module notes).
      if (queue) {
        // What waited on a connection that is gone comes again on a later one.
        if (queue.items.length > 0 && queue.items[0].on !== on) {
          queue.items = queue.items.filter((item) => item.on === on);
        }
        queue.items.push({ m, on });
      } else this.#done(m, on);
      return;
    }
    if (queue.pausedOn === on) return;
    queue.items.push({ m, on });
    if (!queue.running) void this.#drain(queue);
  }

  /** Sends the acks gathered since the last tick. */
  flushAcks() {
    this.#ackScheduled = false;
    const live = this.options.live();
    for (const [endpoint, { id, on }] of this.#acks) if (on === live) this.options.sendAck(endpoint, id);
    this.#acks.clear();
  }

  /** @param {string} endpoint */
  #queue(endpoint) {
    let queue = this.#queues.get(endpoint);
    if (!queue) this.#queues.set(endpoint, queue = { items: [], running: false, pausedOn: 0 });
    return queue;
  }

  /** @param {Queue} queue */
  async #drain(queue) {
    const { ackMode, live } = this.options;
    queue.running = true;
    while (queue.items.length > 0) {
      const { m, on } = /** @type {{ m: Message, on: number }} */ (queue.items.shift());
      if ((ackMode && on !== live()) || queue.pausedOn === on || !queue.handler) continue;
      if (!(m.redelivered && this.#seen(m))) {
        try {
          await queue.handler(m);
        } catch (error) {
          if (ackMode && on === live()) {
            // Not acked, nor anything after it on this connection: what was handled before it
            // is acked now, the rest comes again on the next connection.
            queue.pausedOn = on;
            this.flushAcks();
          }
          this.options.failed(m, on, error);
          continue;
        }
      }
      this.#done(m, on);
    }
    queue.running = false;
  }

  /** Remembers `m` as handled and gathers its ack. @param {Message} m @param {number} on */
  #done(m, on) {
    const key = this.options.dedupeKey(m);
    if (key !== undefined) {
      let keys = this.#handled.get(m.endpoint);
      if (!keys) this.#handled.set(m.endpoint, keys = new Set());
      keys.add(key);
      if (keys.size > this.options.dedupeSize) {
        keys.delete(/** @type {string} */ (keys.values().next().value));
      }
    }
    if (!this.options.ackMode || on !== this.options.live()) return;
    this.#acks.set(m.endpoint, { id: m.id, on });
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    // Batched per tick: one cumulative ack per endpoint for what the handlers finished meanwhile.
    globalThis.setTimeout(() => this.flushAcks(), 0);
  }

  /** @param {Message} m */
  #seen(m) {
    const key = this.options.dedupeKey(m);
    return key !== undefined && (this.#handled.get(m.endpoint)?.has(key) ?? false);
  }
}
