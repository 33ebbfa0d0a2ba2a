/**
 * One payload object per Kafka message across an endpoint's consumers. Every bound client has a
 * consumer of its own, so a message on a topic several clients read arrives once per consumer,
 * each time in a buffer of its own; the hub prepares a payload once per buffer object (UTF-8
 * decode, JSON scan). Handing every consumer the first consumer's buffer of a message lets the
 * hub prepare it once for all of them.
 *
 * A message is known by topic, partition and offset, and a buffer is shared only when its bytes
 * are the same (a topic deleted and made again reuses offsets): what a client gets is always the
 * bytes its own consumer fetched. A kept payload is a copy of its own (a fetched one is a view of
 * the whole fetch response), so the bound in entries and bytes is what is held; oldest first out.
 */
import { Buffer } from "node:buffer";

/** Payloads larger than this are not kept (each is prepared per consumer, as before). */
const MAX_PAYLOAD_BYTES = 64 * 1024;

export class SharedPayloads {
  #entries = new Map<string, Uint8Array>();
  #bytes = 0;
  #maxEntries: number;
  #maxBytes: number;

  constructor(maxEntries = 4096, maxBytes = 8 * 1024 * 1024) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  /** The buffer to hand over for this message: an earlier consumer's with the same bytes, or `value`. */
  share(topic: string, partition: number, offset: string, value: Uint8Array): Uint8Array {
    if (value.length > MAX_PAYLOAD_BYTES) return value;
    const key = `${topic}/${partition}/${offset}`;
    const known = this.#entries.get(key);
    if (known !== undefined) {
      if (known.length === value.length && Buffer.compare(known, value) === 0) return known;
      // Different bytes at a known position: the topic was made again. The newer one is kept.
      this.#drop(key, known);
    }
    const own = new Uint8Array(value);
    this.#entries.set(key, own);
    this.#bytes += own.length;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const [oldest, buffer] = this.#entries.entries().next().value!;
      this.#drop(oldest, buffer);
    }
    return own;
  }

  get size(): number {
    return this.#entries.size;
  }

  #drop(key: string, buffer: Uint8Array): void {
    this.#entries.delete(key);
    this.#bytes -= buffer.length;
  }
}
