/**
 * The Redis wire over RESP on TCP (or TLS), through ioredis: one connection per store, commands
 * pipelined on it, reconnected by itself after an outage. The rules are those of RedisWire in
 * redis-wire.ts.
 *
 * Nothing waits for a connection that is down: the offline queue is off (a request while
 * disconnected rejects at once), a request in flight when the connection drops is not sent again
 * on the next one (a lifecycle script must not run twice, or run after its caller gave up), and
 * every request rejects after `timeout`. Only the very first connection, before any error, is
 * waited for (up to `timeout`), so start-up does not race the TCP handshake.
 */
import type { Scheduler } from "../core/scheduler.ts";
import { Redis } from "ioredis";
import { GatewayError } from "../core/errors.ts";
import type { RedisWire, WireScript } from "./redis-wire.ts";
import { isNoScript } from "./redis-wire.ts";

export interface RespWireOptions {
  host: string;
  port: number;
  /** TLS (`rediss://`). */
  tls?: boolean;
  /** An ACL user; without it, the `default` user. */
  username?: string;
  /** Empty or absent: no AUTH. */
  password?: string;
  db?: number;
  /**
   * Connection changes, once per transition: `warn` when it goes down (or a password was sent
   * that the server does not need), `info` when it is back. Messages name no secret.
   */
  report?: (level: "info" | "warn", message: string) => void;
}

/** Longest pause between two reconnection attempts, in ms. */
const MAX_BACKOFF_MS = 1000;

export class RespWire implements RedisWire {
  readonly #redis: Redis;
  readonly #options: RespWireOptions;
  readonly #timeout: number;
  /** The last connection error since the connection was last ready. */
  #down?: Error;
  /** Set by an error no reconnection can cure (a refused password, a db out of range). */
  #fatal?: GatewayError;

  readonly #scheduler: Scheduler;

  constructor(options: RespWireOptions, timeout: number, scheduler: Scheduler) {
    this.#options = options;
    this.#timeout = timeout;
    this.#scheduler = scheduler;
    this.#redis = new Redis({
      host: options.host,
      port: options.port,
      username: options.username || undefined,
      password: options.password || undefined,
      db: options.db ?? 0,
      tls: options.tls ? { servername: options.host } : undefined,
      connectTimeout: timeout,
      commandTimeout: timeout,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 50, MAX_BACKOFF_MS),
      keepAlive: 10_000,
      lazyConnect: true,
    });
    this.#quietAuth();
    this.#redis.on("error", (error: Error) => {
      if (!this.#down) {
        this.#report("warn", `[SessionStore] Redis at ${this.#address} is down: ${error.message}`);
      }
      this.#down = error;
      this.#fatal ??= this.#configProblem(error);
    });
    this.#redis.on("ready", () => {
      if (this.#down) this.#report("info", `[SessionStore] Redis at ${this.#address} is reachable again`);
      this.#down = undefined;
    });
    this.#redis.connect().catch(() => {/* reported through "error", retried by retryStrategy */});
  }

  async eval(script: WireScript, keys: string[], args: string[]): Promise<unknown> {
    await this.#ready();
    try {
      return await this.#send(this.#redis.evalsha(script.sha, keys.length, ...keys, ...args));
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return await this.#send(this.#redis.eval(script.text, keys.length, ...keys, ...args));
    }
  }

  async zrangeByScore(
    key: string,
    min: "-inf",
    max: `(${number}`,
    offset: number,
    count: number,
  ): Promise<string[]> {
    await this.#ready();
    return await this.#send(this.#redis.zrangebyscore(key, min, max, "LIMIT", offset, count));
  }

  async zrem(key: string, member: string): Promise<unknown> {
    await this.#ready();
    return await this.#send(this.#redis.zrem(key, member));
  }

  async echo(text: string): Promise<unknown> {
    await this.#ready();
    return await this.#send(this.#redis.echo(text));
  }

  async close(): Promise<void> {
    if (this.#redis.status === "ready") await this.#redis.quit().catch(() => this.#redis.disconnect());
    else this.#redis.disconnect();
  }

  #report(level: "info" | "warn", message: string): void {
    this.#options.report?.(level, message);
  }

  /**
   * ioredis prints `[WARN] Redis server does not require a password ...` to the console on every
   * connection when AUTH is refused for that reason; that answer is taken as a success here
   * (which is what ioredis does next anyway) and said once, through the log.
   */
  #quietAuth(): void {
    const redis = this.#redis as unknown as { auth: (...args: unknown[]) => unknown };
    const auth = redis.auth.bind(redis);
    let said = false;
    redis.auth = (...args: unknown[]) => {
      const callback = args.at(-1);
      if (typeof callback !== "function") return auth(...args);
      return auth(...args.slice(0, -1), (error: Error | null, result: unknown) => {
        if (error && /no password is set|without any password configured/.test(error.message)) {
          if (!said) {
            this.#report(
              "warn",
              `[SessionStore] Redis at ${this.#address} requires no password, but one is configured`,
            );
          }
          said = true;
          return callback(null, "OK");
        }
        return callback(error, result);
      });
    };
  }

  /** Where this wire points, for messages. */
  get #address(): string {
    return `${this.#options.tls ? "rediss" : "redis"}://${this.#options.host}:${this.#options.port}`;
  }

  /** A reply, or the error that says which setting Redis refused. */
  async #send<T>(request: Promise<T>): Promise<T> {
    try {
      return await request;
    } catch (error) {
      throw (error instanceof Error && this.#configProblem(error)) || error;
    }
  }

  /**
   * Resolves once the connection is ready. While it is down (an error since it was last ready)
   * that error rejects at once; before the first connection, it is waited for up to `timeout`.
   */
  #ready(): Promise<void> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (this.#redis.status === "ready") return Promise.resolve();
    if (this.#down) return Promise.reject(this.#unreachable(this.#down));
    if (this.#redis.status === "end") return Promise.reject(new Error("the connection is closed"));
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        this.#scheduler.clear(timer);
        this.#redis.off("ready", ready).off("error", failed);
        if (error) reject(this.#fatal ?? this.#unreachable(error));
        else resolve();
      };
      const ready = () => done();
      const failed = (error: Error) => done(error);
      const timer = this.#scheduler.setTimeout(
        () => done(new Error(`no connection within ${this.#timeout} ms`)),
        this.#timeout,
      );
      this.#redis.once("ready", ready).once("error", failed);
    });
  }

  #unreachable(error: Error): Error {
    return new Error(`${this.#address}: ${error.message}`, { cause: error });
  }

  /**
   * The setting an error blames, as a non-temporary error, when waiting cannot cure it: AUTH
   * refused, SELECT of a db the server does not have, scripting disabled or not permitted.
   */
  #configProblem(error: Error): GatewayError | undefined {
    const message = error.message;
    const at = this.#address;
    const fail = (text: string) =>
      new GatewayError("STORE_UNAVAILABLE", `${text} (${message})`, {
        temporary: false,
      });
    if (/^(WRONGPASS|NOAUTH)|invalid (username-)?password|AUTH <password> called without/i.test(message)) {
      // The user name is not quoted: it is half of the credential.
      const user = this.#options.username ? "session.redis.username and " : "";
      return fail(`Redis at ${at} refused ${user}session.redis.password`);
    }
    if (/DB index is out of range|invalid DB index/i.test(message)) {
      return fail(`Redis at ${at} has no database session.redis.db ${this.#options.db ?? 0}`);
    }
    if (
      /unknown command .?(evalsha|eval)\b|NOPERM.*\b(evalsha|eval)\b|scripting is disabled|scripts? (is |are )?disabled/i
        .test(message)
    ) {
      return fail(`Redis at ${at} refuses Lua scripts (EVALSHA), which the session store needs`);
    }
    return undefined;
  }
}
