/**
 * Token buckets by key (a client ID, a subject, an address), on the Scheduler's clock: `rate`
 * tokens a second, up to `burst`. Keys whose buckets are full again are forgotten, so the map
 * stays as small as the set of keys that were busy lately.
 */
import type { Scheduler } from "./scheduler.ts";

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #sweepAt = 0;

  private readonly scheduler: Scheduler;
  readonly rate: number;
  readonly burst: number;
  constructor(
    scheduler: Scheduler,
    rate: number,
    burst: number,
  ) {
    this.scheduler = scheduler;
    this.rate = rate;
    this.burst = burst;
  }

  /**
   * Takes `cost` tokens from `key`'s bucket: 0 when they were there, else how many ms until
   * they will be (nothing is taken then).
   */
  take(key: string, cost = 1): number {
    const now = this.scheduler.now();
    this.#sweep(now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return 0;
    }
    return Math.ceil(((Math.min(cost, this.burst) - bucket.tokens) / this.rate) * 1000);
  }

  /** Forgets `key`'s bucket (its client is gone for good: nothing else would ever drop it). */
  forget(key: string): void {
    this.#buckets.delete(key);
  }

  /** Buckets tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Drops the buckets that refilled completely. Takes do it too, but a key that is never busy
   * again would otherwise keep its bucket until the next take: the owner calls this now and then.
   */
  sweep(): void {
    this.#sweepAt = 0;
    this.#sweep(this.scheduler.now());
  }

  /** Once a second at most: buckets that refilled completely are dropped. */
  #sweep(now: number): void {
    if (now < this.#sweepAt) return;
    this.#sweepAt = now + 1000;
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.#buckets.delete(key);
    }
  }
}
