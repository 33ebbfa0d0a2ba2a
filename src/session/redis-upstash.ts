/**
 * The Redis wire over the Upstash REST API (or any REST proxy of it), through @upstash/redis:
 * one HTTP request per round trip, bounded by the store's timeout. The rules are those of
 * RedisWire in redis-wire.ts.
 */
import { Redis } from "@upstash/redis";
import type { RedisWire, WireScript } from "./redis-wire.ts";
import { isNoScript } from "./redis-wire.ts";

export interface UpstashWireOptions {
  url: string;
  token: string;
  /** `base64` for Upstash; `none` for REST proxies that answer in plain JSON. */
  encoding?: "base64" | "none";
}

export class UpstashWire implements RedisWire {
  readonly #redis: Redis;

  constructor(options: UpstashWireOptions, timeout: number) {
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      responseEncoding: options.encoding === "none" ? false : "base64",
      automaticDeserialization: false,
      enableTelemetry: false,
      // One quick retry for a dropped request; an outage answers within about `timeout`.
      retry: { retries: 1, backoff: () => 50 },
      signal: () => AbortSignal.timeout(timeout),
    });
  }

  async eval(script: WireScript, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.#redis.evalsha(script.sha, keys, args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return await this.#redis.eval(script.text, keys, args);
    }
  }

  async zrangeByScore(
    key: string,
    min: "-inf",
    max: `(${number}`,
    offset: number,
    count: number,
  ): Promise<string[]> {
    return await this.#redis.zrange(key, min, max, { byScore: true, offset, count }) as string[];
  }

  zrem(key: string, member: string): Promise<unknown> {
    return this.#redis.zrem(key, member);
  }

  echo(text: string): Promise<unknown> {
    return this.#redis.echo(text);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
