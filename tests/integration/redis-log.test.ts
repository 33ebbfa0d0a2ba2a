/**
 * The RESP wire's own output goes through the log, once per transition: a Redis outage is one
 * warn line when it starts and one info line when it ends, however many reconnection attempts
 * fail in between; ioredis's console `[WARN]` about a password the server does not need is one
 * warn line instead, naming no password.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RedisSessionStore } from "../../src/session/redis.ts";
import { keyPrefix, PrivateRedis, RespRedis, STORE_TIMEOUT_MS } from "../support/redis.ts";

type Reported = { level: "info" | "warn"; message: string };

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * What was printed about the Redis at `port`: bun runs every test file in one process, and a
 * client another file left reconnecting to a Redis of its own prints there too.
 */
const about = (printed: string[], port: number) =>
  printed.filter((line) => !/127\.0\.0\.1:\d+/.test(line) || line.includes(`127.0.0.1:${port}`));

/** Runs `fn` with console.warn and console.error recorded (and kept quiet). */
async function capturingConsole<T>(fn: () => Promise<T>): Promise<{ result: T; printed: string[] }> {
  const printed: string[] = [];
  const { warn, error } = console;
  console.warn = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  console.error = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  try {
    return { result: await fn(), printed };
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

test("redis log: a password the server does not need is one warn line, not ioredis's console [WARN]", async () => {
  const redis = new RespRedis();
  const reported: Reported[] = [];
  const password = `pw-${crypto.randomUUID()}`;
  const { printed } = await capturingConsole(async () => {
    const store = new RedisSessionStore({
      transport: "resp",
      host: redis.host,
      port: redis.port,
      password,
      keyPrefix: keyPrefix("redis-log"),
      timeout: STORE_TIMEOUT_MS,
      report: (level, message) => reported.push({ level, message }),
    });
    try {
      await store.ping();
    } finally {
      await store.close();
    }
  });
  assert.deepEqual(about(printed, redis.port), [], "nothing printed past the log");
  assert.equal(reported.length, 1, JSON.stringify(reported));
  assert.equal(reported[0].level, "warn");
  assert.match(reported[0].message, /requires no password, but one is configured/);
  assert.ok(!reported[0].message.includes(password));
});

test("redis log: an outage is one warn line when it starts and one info line when it ends", async () => {
  const redis = await PrivateRedis.start();
  const reported: Reported[] = [];
  const store = new RedisSessionStore({
    transport: "resp",
    host: "127.0.0.1",
    port: redis.port,
    keyPrefix: keyPrefix("redis-log"),
    timeout: 1000,
    report: (level, message) => reported.push({ level, message }),
  });
  try {
    const { printed } = await capturingConsole(async () => {
      await store.ping();
      await redis.pause();
      await until(() => reported.length > 0, "the outage line");
      // Reconnection attempts keep failing meanwhile (every 50..1000 ms): no line each.
      for (let i = 0; i < 3; i++) await assert.rejects(store.ping());
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await redis.resume();
      await until(() => reported.length > 1, "the line saying it is back");
      await store.ping();
    });
    assert.deepEqual(about(printed, redis.port), []);
    assert.deepEqual(reported.map((r) => r.level), ["warn", "info"], JSON.stringify(reported));
    assert.match(
      reported[0].message,
      new RegExp(`^\\[SessionStore\\] Redis at redis://127\\.0\\.0\\.1:${redis.port} is down: `),
    );
    assert.match(reported[1].message, /is reachable again$/);
  } finally {
    await store.close();
    await redis.stop();
  }
});
