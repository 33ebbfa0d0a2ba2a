/**
 * Redis test support. The gateway reaches Redis through @upstash/redis, so tests put the npm
 * package @humanwhocodes/upstash-redis-server (the Upstash REST API over a real Redis) in front
 * of the shared Redis on 127.0.0.1:6379, or in front of a private redis-server they can stop.
 * Every test uses a key prefix of its own and removes its keys afterwards.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { RedisSessionStore } from "../../src/session/redis.ts";
import type { RedisSessionStoreOptions } from "../../src/session/redis.ts";
import { accepts, freePort, running } from "./net.ts";
import { ROOT } from "./runtime.ts";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const PROXY = join(ROOT, "node_modules/@humanwhocodes/upstash-redis-server/dist/server.js");

/** A key prefix unique to this run. */
export const keyPrefix = (label: string) => `test:${label}-${crypto.randomUUID().slice(0, 8)}:`;

async function waitForPort(port: number, what: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!await accepts(port)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${what} on port ${port} did not start`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function kill(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!child?.pid || !running(child.pid)) return;
  child.kill(signal);
  // Polled: under Deno the "exit" event does not always keep the event loop alive.
  while (running(child.pid)) await new Promise((r) => setTimeout(r, 20));
}

/** The Upstash REST API on a free port, served by a Node process over `redisUrl`. */
export class RedisProxy {
  readonly token = crypto.randomUUID();
  #child?: ChildProcess;
  private constructor(readonly port: number, readonly redisUrl: string) {}

  static async start(redisUrl = REDIS_URL): Promise<RedisProxy> {
    const proxy = new RedisProxy(await freePort(), redisUrl);
    proxy.#child = spawn("node", [PROXY], {
      env: { ...process.env, URS_TOKEN: proxy.token, PORT: String(proxy.port), REDIS_URL: redisUrl },
      stdio: "ignore",
    });
    await waitForPort(proxy.port, "upstash-redis-server", proxy.#child);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A session store over this proxy (which answers in plain JSON: encoding none). */
  store(prefix: string, options: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
    return new RedisSessionStore({
      url: this.url,
      token: this.token,
      keyPrefix: prefix,
      encoding: "none",
      ...options,
    });
  }

  /** One raw Redis command, as an operator (or another program) would send it. */
  async command(...args: Array<string | number>): Promise<unknown> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify(args),
    });
    const body = await response.json() as { result?: unknown; error?: string };
    if (!response.ok || body.error) throw new Error(body.error ?? `HTTP ${response.status}`);
    return body.result;
  }

  /** Deletes every key under `prefix`. */
  async drop(prefix: string): Promise<void> {
    await this.command(
      "EVAL",
      "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0",
      0,
      `${prefix}*`,
    );
  }

  async stop(): Promise<void> {
    await kill(this.#child);
  }
}

/** A private redis-server on a free port, with an append-only file, to stop and start. */
export class PrivateRedis {
  #child?: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "redis-"));
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.resume();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server; it reloads what it held from its append-only file. */
  async resume(): Promise<void> {
    this.#child = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "yes",
      ],
      { stdio: "ignore" },
    );
    await waitForPort(this.port, "redis-server", this.#child);
  }

  /** Stops the server gracefully (it flushes its append-only file) and waits for it to exit. */
  pause(): Promise<void> {
    return kill(this.#child);
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
