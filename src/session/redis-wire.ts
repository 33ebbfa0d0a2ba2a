/**
 * The wire under RedisSessionStore: the few Redis requests the store makes, whatever carries
 * them. Two implementations sit beside it: redis-upstash.ts (the Upstash REST API, through
 * @upstash/redis) and redis-resp.ts (RESP over TCP, through ioredis). Both send the same scripts
 * to the same keys, so nodes on either transport can share one Redis.
 *
 * Rules every implementation keeps:
 * - each request is one round trip (a script unknown to Redis costs a second one, once), and
 *   settles within the store's `timeout`: against a Redis out of reach it rejects, it never waits
 *   in a queue for the connection to come back;
 * - a failure rejects with the transport's own error; the store maps it to STORE_UNAVAILABLE. A
 *   failure that waiting cannot cure (a wrong password, a db that does not exist, scripting
 *   refused) rejects with a non-temporary GatewayError that names the setting;
 * - after an outage the wire reconnects by itself.
 */
import { createHash } from "node:crypto";

/** A Lua script and its SHA1, so it is sent by SHA (EVALSHA) once Redis has it. */
export interface WireScript {
  readonly text: string;
  readonly sha: string;
}

export function wireScript(text: string): WireScript {
  return { text, sha: createHash("sha1").update(text).digest("hex") };
}

export interface RedisWire {
  /** EVALSHA, and EVAL with the text when Redis answers NOSCRIPT. Lua nil comes back as null. */
  eval(script: WireScript, keys: string[], args: string[]): Promise<unknown>;
  /** ZRANGE key min max BYSCORE LIMIT offset count: members, lowest score first. */
  zrangeByScore(
    key: string,
    min: "-inf",
    max: `(${number}`,
    offset: number,
    count: number,
  ): Promise<string[]>;
  zrem(key: string, member: string): Promise<unknown>;
  /** ECHO: the text as the transport hands it back (the REST encoding check compares it). */
  echo(text: string): Promise<unknown>;
  /** Ends the connection, if the transport holds one. */
  close(): Promise<void>;
}

/** Whether an error is Redis's answer to EVALSHA of a script it does not hold. */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && /noscript/i.test(error.message);
}
