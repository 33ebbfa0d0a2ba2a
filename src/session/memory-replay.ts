/**
 * The SSE replay log of one client in the MemorySessionStore (memory.ts): the events a stream
 * wrote, oldest first, under a byte bound; the rules are those of SessionStore.appendReplay and
 * takeReplay in src/core/session.ts.
 */
import type { ReplayEvent } from "../core/session.ts";

/**
 * The replay log: `events[head..]` are held, oldest first. Evicting moves `head` (one step, where
 * `shift` would move every event); the array is compacted once the dropped part is its larger half.
 */
export class Replay {
  events: Array<{ event: ReplayEvent; bytes: number }> = [];
  head = 0;
  bytes = 0;
  evicted = 0;
  /** The id the last take confirmed, until an eviction. */
  confirmed?: string;

  append(events: ReplayEvent[], maxBytes: number): number {
    for (const { id, endpoint, text } of events) {
      const bytes = utf8Length(text);
      this.events.push({ event: { id, endpoint, text }, bytes });
      this.bytes += bytes;
    }
    const before = this.head;
    while (this.bytes > maxBytes && this.head < this.events.length) {
      this.bytes -= this.events[this.head++].bytes;
    }
    const evicted = this.head - before;
    if (evicted > 0) {
      this.evicted += evicted;
      this.confirmed = undefined;
      this.#compact();
    }
    return evicted;
  }

  take(lastEventId: string | undefined): { events: ReplayEvent[]; evicted: number; found: boolean } {
    let found = lastEventId !== undefined && lastEventId === this.confirmed;
    if (lastEventId !== undefined && !found) {
      for (let i = this.head; i < this.events.length; i++) {
        if (this.events[i].event.id !== lastEventId) continue;
        for (; this.head <= i; this.head++) this.bytes -= this.events[this.head].bytes;
        this.confirmed = lastEventId;
        found = true;
        break;
      }
    }
    this.#compact();
    const evicted = this.evicted;
    this.evicted = 0;
    const events = this.events.slice(this.head).map(({ event }) => ({ ...event }));
    return { events, evicted, found };
  }

  #compact(): void {
    if (this.head * 2 < this.events.length) return;
    this.events = this.events.slice(this.head);
    this.head = 0;
  }
}

/** The size of a text as the byte bound counts it: its UTF-8 encoding. */
function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
