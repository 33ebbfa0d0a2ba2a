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
 *
 * The same wire reaches a Redis Cluster (ioredis' Cluster: each script goes to the primary of its
 * keys' slot, MOVED and ASK followed, the slot map refreshed every second and on redirection) and
 * a Sentinel-managed primary (asked of the sentinels on every connection, so after a failover
 * the reconnection finds the new one). On a cluster a request is never sent twice either: a
 * request whose connection closed under it is not retried (it may have run); only the answers
 * that say it did not run (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) are.
 *
 * Over 350 lines, one class: the three topologies differ only in how the ioredis client is made;
 * everything after (connection-state logging, the first-connection wait, script loading with
 * NOSCRIPT fallback, the retry-only-what-did-not-run rule, timeouts) is one code path that must
 * not drift apart between them.
 */
import type { Scheduler } from "../core/scheduler.ts";
import { Cluster, Redis } from "ioredis";
import { GatewayError } from "../core/errors.ts";
import type { RedisWire, WireScript } from "./redis-wire.ts";
import { isNoScript } from "./redis-wire.ts";

/** A node's address. */
export interface RedisNode {
  host: string;
  port: number;
}

/** What every RESP wire takes: credentials, TLS, db, the report. */
export interface RespCommonOptions {
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

/** One Redis at host:port. */
export interface RespWireOptions extends RespCommonOptions, RedisNode {}

/** A Redis Cluster, reached through some of its nodes (db 0 only). */
export interface ClusterWireOptions extends RespCommonOptions {
  cluster: RedisNode[];
}

/** The primary of the sentinels' master group `name`. */
export interface SentinelWireOptions extends RespCommonOptions {
  sentinels: RedisNode[];
  name: string;
  /** The sentinels' own password, if they require one. */
  sentinelPassword?: string;
}

/** Longest pause between two reconnection attempts, in ms. */
const MAX_BACKOFF_MS = 1000;

export class RespWire implements RedisWire {
  readonly #redis: Redis | Cluster;
  readonly #options: RespWireOptions | ClusterWireOptions | SentinelWireOptions;
  readonly #timeout: number;
  /** The last connection error since the connection was last ready. */
  #down?: Error;
  /** The cluster's primaries being connected (#primaries), shared by the requests that wait. */
  #connecting?: Promise<void>;
  /** Set by an error no reconnection can cure (a refused password, a db out of range). */
  #fatal?: GatewayError;

  readonly #scheduler: Scheduler;

  constructor(
    options: RespWireOptions | ClusterWireOptions | SentinelWireOptions,
    timeout: number,
    scheduler: Scheduler,
  ) {
    this.#options = options;
    this.#timeout = timeout;
    this.#scheduler = scheduler;
    const common = {
      username: options.username || undefined,
      password: options.password || undefined,
      connectTimeout: timeout,
      commandTimeout: timeout,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(times * 50, MAX_BACKOFF_MS),
      keepAlive: 10_000,
      lazyConnect: true,
    };
    if ("cluster" in options) {
      this.#redis = new Cluster(options.cluster, {
        redisOptions: { ...common, tls: options.tls ? {} : undefined },
        enableOfflineQueue: false,
        lazyConnect: true,
        scaleReads: "master",
        clusterRetryStrategy: (times: number) => Math.min(times * 50, MAX_BACKOFF_MS),
        // A request whose connection closed may have run: never sent again (see above).
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        maxRedirections: 8,
        slotsRefreshTimeout: timeout,
        slotsRefreshInterval: 1000,
        // TLS certificates name the host, not the address it resolves to.
        dnsLookup: (address, callback) => callback(null, address),
      });
    } else if ("sentinels" in options) {
      this.#redis = new Redis({
        ...common,
        sentinels: options.sentinels,
        name: options.name,
        role: "master",
        sentinelPassword: options.sentinelPassword || undefined,
        enableTLSForSentinelMode: options.tls,
        sentinelTLS: options.tls ? {} : undefined,
        tls: options.tls ? {} : undefined,
        db: options.db ?? 0,
        sentinelRetryStrategy: (times: number) => Math.min(times * 50, MAX_BACKOFF_MS),
        failoverDetector: true,
      });
    } else {
      this.#redis = new Redis({
        ...common,
        host: options.host,
        port: options.port,
        db: options.db ?? 0,
        tls: options.tls ? { servername: options.host } : undefined,
      });
      this.#quietAuth(this.#redis);
    }
    this.#redis.on("error", (error: Error) => {
      // A cluster that cannot map its slots says why in the last node's error.
      const cause = (error as { lastNodeError?: Error }).lastNodeError;
      const reason = cause ? `${error.message} ${cause.message}` : error.message;
      if (!this.#down) this.#report("warn", `[SessionStore] Redis at ${this.#address} is down: ${reason}`);
      this.#down = error;
      this.#fatal ??= this.#configProblem(cause ?? error);
    });
    if (this.#redis instanceof Cluster) {
      // One node down (a primary failing over) leaves the others serving their slots. Said once
      // per node and 10 s: ioredis tries a lost node again at every slot refresh until it is replaced.
      const said = new Map<string, number>();
      this.#redis.on("node error", (error: Error, node: string) => {
        const now = this.#scheduler.now();
        if (now - (said.get(node) ?? -Infinity) < 10_000) return;
        said.set(node, now);
        this.#report("warn", `[SessionStore] Redis Cluster node ${node}: ${error.message}`);
      });
    }
    this.#redis.on("ready", () => {
      if (this.#down) this.#report("info", `[SessionStore] Redis at ${this.#address} is reachable again`);
      this.#down = undefined;
    });
    this.#redis.connect().catch(() => {/* reported through "error", retried by retryStrategy */});
  }

  async eval(script: WireScript, keys: string[], args: string[]): Promise<unknown> {
    await this.#ready();
    if (this.#redis instanceof Cluster) return await this.#bounded(() => this.#evalOnce(script, keys, args));
    return await this.#evalOnce(script, keys, args);
  }

  async #evalOnce(script: WireScript, keys: string[], args: string[]): Promise<unknown> {
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
  #quietAuth(client: Redis): void {
    const redis = client as unknown as { auth: (...args: unknown[]) => unknown };
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
    const scheme = this.#options.tls ? "rediss" : "redis";
    const options = this.#options;
    const list = (nodes: RedisNode[]) => nodes.map((n) => `${n.host}:${n.port}`).join(",");
    if ("cluster" in options) return `the cluster ${scheme}://${list(options.cluster)}`;
    if ("sentinels" in options) {
      return `the primary of ${options.name} (sentinels ${list(options.sentinels)})`;
    }
    return `${scheme}://${options.host}:${options.port}`;
  }

  /**
   * A cluster request within `timeout`, whatever ioredis does meanwhile (a redirection after
   * CLUSTERDOWN waits in its queue, unbounded by commandTimeout).
   */
  #bounded<T>(request: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.#scheduler.setTimeout(
        () => reject(new Error(`${this.#address}: no answer within ${this.#timeout} ms`)),
        this.#timeout,
      );
      request().then(resolve, reject).finally(() => this.#scheduler.clear(timer));
    });
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
    if (this.#redis.status === "ready") {
      return this.#redis instanceof Cluster ? this.#primaries(this.#redis) : Promise.resolve();
    }
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

  /**
   * Resolves once no primary's connection is half-way up: ioredis refuses a request to a node
   * that is connecting (the offline queue being off) rather than waiting for it, so the first
   * burst to a node not yet connected would fail. A node that is down (a failover) fails its requests at
   * once instead, as a single Redis does.
   */
  #primaries(cluster: Cluster): Promise<void> {
    if (this.#connecting) return this.#connecting;
    const connecting = cluster.nodes("master").filter((n) =>
      ["wait", "connecting", "connect"].includes(n.status)
    );
    if (connecting.length === 0) return Promise.resolve();
    this.#connecting = this.#up(connecting).finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #up(connecting: Redis[]): Promise<void> {
    // Connected now, not by the first request (whose neighbours would find it connecting). A
    // failure is reported through "error" / "node error" (logged), and waited for below.
    for (const node of connecting) if (node.status === "wait") node.connect().catch(() => {});
    let timer: ReturnType<Scheduler["setTimeout"]> | undefined;
    await Promise.race([
      Promise.all(connecting.map((node) =>
        new Promise<void>((resolve) => {
          const done = () => {
            node.off("ready", done).off("error", done).off("end", done);
            resolve();
          };
          node.once("ready", done).once("error", done).once("end", done);
        })
      )),
      new Promise<void>((resolve) => (timer = this.#scheduler.setTimeout(resolve, this.#timeout))),
    ]);
    this.#scheduler.clear(timer!);
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
    if (/cluster support disabled/i.test(message)) {
      return fail(`Redis at ${at} is not a cluster; use session.redis.addr for it`);
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
