/**
 * Redis test support, for both transports of the Redis session store: RESP over TCP straight to
 * the shared Redis on 127.0.0.1:6379 (RespRedis), and the Upstash REST API through the npm
 * package @humanwhocodes/upstash-redis-server in front of it (RedisProxy). Either may point at a
 * private redis-server a test can stop (PrivateRedis). Both are a TestRedis: a store on it, the
 * `session.redis` config block that reaches it, raw commands as an operator would send them.
 * Every test uses a key prefix of its own and removes its keys afterwards.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import { RedisSessionStore } from "../../src/session/redis.ts";
import type { RedisStoreSettings, RestTransport } from "../../src/session/redis.ts";
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

/** Options a test may set on a store: the store's settings, and the REST encoding. */
/** The round-trip timeout of a test store unless a test sets its own (the schema's default too). */
export const STORE_TIMEOUT_MS = 3000;

export type TestStoreOptions = Partial<RedisStoreSettings & Pick<RestTransport, "encoding">>;

/** A Redis as one transport of the store reaches it. */
export interface TestRedis {
  readonly transport: "rest" | "resp";
  /** A session store over this transport. */
  store(prefix: string, options?: TestStoreOptions): RedisSessionStore;
  /** The `session.redis` flow mapping that reaches it, e.g. `{ addr: "127.0.0.1:6379", ... }`. */
  config(prefix: string, timeout?: string): string;
  /** One raw Redis command, as an operator (or another program) would send it. */
  command(...args: Array<string | number>): Promise<unknown>;
  /** Deletes every key under `prefix`. */
  drop(prefix: string): Promise<void>;
  stop(): Promise<void>;
}

/** Deletes every key under `prefix` with one script. */
const DROP = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0";

/** RESP over TCP, as the store's RESP transport reaches Redis: no proxy in between. */
export class RespRedis implements TestRedis {
  readonly transport = "resp";
  readonly host: string;
  readonly port: number;
  #admin?: Redis;

  readonly redisUrl: string;
  constructor(redisUrl = REDIS_URL) {
    this.redisUrl = redisUrl;
    const url = new URL(redisUrl);
    this.host = url.hostname;
    this.port = Number(url.port || 6379);
  }

  static start(redisUrl = REDIS_URL): Promise<RespRedis> {
    return Promise.resolve(new RespRedis(redisUrl));
  }

  get addr(): string {
    return `${this.host}:${this.port}`;
  }

  store(prefix: string, options: TestStoreOptions = {}): RedisSessionStore {
    const { encoding: _rest, ...settings } = options;
    return new RedisSessionStore({
      transport: "resp",
      host: this.host,
      port: this.port,
      keyPrefix: prefix,
      timeout: STORE_TIMEOUT_MS,
      ...settings,
    });
  }

  config(prefix: string, timeout = "3s"): string {
    return `{ addr: "${this.addr}", password: "", db: 0, keyPrefix: "${prefix}", timeout: ${timeout} }`;
  }

  async command(...args: Array<string | number>): Promise<unknown> {
    if (!this.#admin) {
      this.#admin = new Redis(this.redisUrl, { maxRetriesPerRequest: 1 });
      // A command's own rejection says what went wrong; a test's private Redis may be paused on
      // purpose, and without a listener ioredis prints every failed reconnection.
      this.#admin.on("error", () => {});
    }
    const [name, ...rest] = args;
    return await this.#admin.call(String(name), ...rest);
  }

  async drop(prefix: string): Promise<void> {
    await this.command("EVAL", DROP, 0, `${prefix}*`);
  }

  async stop(): Promise<void> {
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin?.status === "ready") await admin.quit().catch(() => {});
    // Also when it was not connected (its Redis stopped): else it goes on reconnecting for good,
    // and in bun's one test process another file's console gets its lines.
    admin?.disconnect();
  }
}

/** Both transports over the Redis at `redisUrl` (the REST one through a proxy it starts). */
export async function bothTransports(redisUrl = REDIS_URL): Promise<TestRedis[]> {
  return [await RespRedis.start(redisUrl), await RedisProxy.start(redisUrl)];
}

/** The Upstash REST API on a free port, served by a Node process over `redisUrl`. */
export class RedisProxy implements TestRedis {
  readonly transport = "rest";
  readonly token = crypto.randomUUID();
  #child?: ChildProcess;
  readonly port: number;
  readonly redisUrl: string;
  private constructor(port: number, redisUrl: string) {
    this.port = port;
    this.redisUrl = redisUrl;
  }

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
  store(prefix: string, options: TestStoreOptions = {}): RedisSessionStore {
    return new RedisSessionStore({
      transport: "rest",
      url: this.url,
      token: this.token,
      keyPrefix: prefix,
      encoding: "none",
      timeout: STORE_TIMEOUT_MS,
      ...options,
    });
  }

  config(prefix: string, timeout = "3s"): string {
    return `{ url: "${this.url}", token: "${this.token}", keyPrefix: "${prefix}", encoding: none, timeout: ${timeout} }`;
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
    await this.command("EVAL", DROP, 0, `${prefix}*`);
  }

  async stop(): Promise<void> {
    await kill(this.#child);
  }
}

/** A private redis-server on a free port, with an append-only file, to stop and start. */
export class PrivateRedis {
  #child?: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "redis-"));
  readonly port: number;
  private constructor(port: number) {
    this.port = port;
  }

  /** `args`: more redis-server options, e.g. `["--requirepass", "s3cret"]`. */
  #extra: string[] = [];

  static async start(args: string[] = []): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    redis.#extra = args;
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
        ...this.#extra,
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
