/**
 * Private distributed Redis setups for the session store's tests, on free ports, torn down after:
 * a Redis Cluster of 3 primaries and 3 replicas (RedisClusterServers), and a Sentinel-managed
 * primary with one replica and 3 sentinels (RedisSentinelServers). Both are started from the
 * Debian redis-server and redis-cli, with no persistence and short failure detection (1 s), so a
 * killed primary is replaced within a few seconds. Each is a TestRedis: a store on it, the
 * `session.redis` block that reaches it, raw commands.
 *
 * Ports: searched upwards from a random start in 20000-22000, below Linux's ephemeral range (32768
 * on), where an outgoing connection may hold a port that nothing listens on (each cluster node
 * also needs its bus port, +10000); or from TEST_REDIS_PORTS when set (a range kept for one user
 * of a shared machine).
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Cluster, Redis } from "ioredis";
import { RedisSessionStore } from "../../src/session/redis.ts";
import { accepts, running } from "./net.ts";
import { STORE_TIMEOUT_MS } from "./redis.ts";
import type { TestRedis, TestStoreOptions } from "./redis.ts";

/** The shards of the test stores: more than the primaries, so each holds several. */
export const TEST_SHARDS = 16;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

let nextPort = Number(process.env.TEST_REDIS_PORTS) || 20000 + Math.floor(Math.random() * 2000);

/** `count` ports nobody listens on, each with its bus port (+10000) free too. */
async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = nextPort++;
    if (port + 10000 >= 55000) nextPort = 20000;
    if (!await accepts(port) && !await accepts(port + 10000)) ports.push(port);
  }
  return ports;
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await pause(100);
  }
}

/**
 * A free port can be taken between the check and the server's bind (by an outgoing connection's
 * ephemeral port, on a busy machine): a start that fails so is tried again, on other ports.
 */
async function attempts<T>(start: () => Promise<T>, times = 5): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === times || !/exited/.test(String(error))) throw error;
    }
  }
}

/**
 * Servers still running, killed when the test process exits: one whose `after` hooks do not run
 * (an interrupted run, a filter) must not leave a cluster behind.
 */
const alive = new Set<ChildProcess>();
const killAlive = () => {
  for (const child of alive) child.kill("SIGKILL");
};
process.on("exit", killAlive);
globalThis.addEventListener?.("unload", killAlive);

/** One redis-server child process. */
class Server {
  #child: ChildProcess;
  #output = "";
  readonly port: number;
  constructor(port: number, args: string[]) {
    this.port = port;
    this.#child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    alive.add(this.#child);
    this.#child.on("exit", () => alive.delete(this.#child));
    // What it said last, for the error when it does not start.
    const keep = (chunk: Buffer) => (this.#output = (this.#output + chunk.toString()).slice(-2000));
    this.#child.stdout!.on("data", keep);
    this.#child.stderr!.on("data", keep);
  }

  get alive(): boolean {
    return this.#child.pid !== undefined && running(this.#child.pid);
  }

  async started(): Promise<void> {
    await until(`redis-server on ${this.port}`, () => {
      if (this.#child.exitCode !== null) {
        throw new Error(`redis-server on ${this.port} exited: ${this.#output}`);
      }
      return accepts(this.port);
    }, 10_000);
  }

  /** Stops it (SIGKILL: at once, as a crash would) and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (!this.alive) return;
    this.#child.kill(signal);
    while (this.alive) await pause(20);
  }
}

/** A raw connection to one node, for admin commands. */
async function ask(port: number, ...args: Array<string | number>): Promise<unknown> {
  const redis = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    const [name, ...rest] = args;
    return await redis.call(String(name), ...rest);
  } finally {
    redis.disconnect();
  }
}

/** Deletes, on one node, every key under `prefix` it holds, one by one (a cluster refuses a multi-slot DEL). */
async function dropOn(port: number, prefix: string): Promise<void> {
  const redis = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}*`);
    await Promise.all(keys.map((key) => redis.del(key)));
  } finally {
    redis.disconnect();
  }
}

/** A Redis Cluster of 3 primaries and 3 replicas on 127.0.0.1. */
export class RedisClusterServers implements TestRedis {
  readonly transport = "resp";
  readonly dir = mkdtempSync(join(tmpdir(), "redis-cluster-"));
  #servers = new Map<number, Server>();
  #admin?: Cluster;
  readonly ports: number[];
  private constructor(ports: number[]) {
    this.ports = ports;
  }

  /** Starts one; tried again on other ports if a node does not start (its port was taken meanwhile). */
  static start(): Promise<RedisClusterServers> {
    return attempts(() => RedisClusterServers.#start());
  }

  static async #start(): Promise<RedisClusterServers> {
    const cluster = new RedisClusterServers(await freePorts(6));
    for (const port of cluster.ports) {
      cluster.#servers.set(
        port,
        new Server(port, [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          cluster.dir,
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(cluster.dir, `nodes-${port}.conf`),
          "--cluster-node-timeout",
          "1000",
          "--save",
          "",
          "--appendonly",
          "no",
        ]),
      );
    }
    try {
      for (const server of cluster.#servers.values()) await server.started();
      const created = spawnSync("redis-cli", [
        "--cluster",
        "create",
        ...cluster.nodes,
        "--cluster-replicas",
        "1",
        "--cluster-yes",
      ], { encoding: "utf8" });
      if (created.status !== 0) {
        throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
      }
      await cluster.ready();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** `127.0.0.1:port` of every node. */
  get nodes(): string[] {
    return this.ports.map((p) => `127.0.0.1:${p}`);
  }

  /** Resolves once every live node says cluster_state:ok and 3 primaries serve the slots. */
  async ready(ms = 20_000): Promise<void> {
    await until("cluster_state:ok", async () => {
      for (const [port, server] of this.#servers) {
        if (!server.alive) continue;
        const info = await ask(port, "CLUSTER", "INFO") as string;
        if (!info.includes("cluster_state:ok")) return false;
      }
      if ((await this.primaries()).length !== 3) return false;
      // Every replica holds its primary's data: one that never finished its first sync would,
      // promoted, serve an empty (or partial) data set.
      for (const [port, server] of this.#servers) {
        if (!server.alive) continue;
        const replication = await ask(port, "INFO", "replication") as string;
        if (
          replication.includes("role:slave") &&
          !/master_link_status:up[\s\S]*master_sync_in_progress:0/.test(replication)
        ) {
          return false;
        }
      }
      return true;
    }, ms);
  }

  /** The ports of the live primaries that hold slots, as a live node sees them. */
  async primaries(): Promise<number[]> {
    const live = [...this.#servers].find(([, s]) => s.alive)![0];
    const slots = await ask(live, "CLUSTER", "SLOTS") as Array<[number, number, [string, number]]>;
    return [...new Set(slots.map((s) => s[2][1]))];
  }

  /**
   * Resolves once the slots of the primary on `old` are served by another (its replica promoted)
   * and every live node says cluster_state:ok.
   */
  async promoted(old: number, ms = 60_000): Promise<void> {
    await until("a replica promoted", async () => !(await this.primaries()).includes(old), ms);
    await this.ready(ms);
  }

  /** The port of the primary that serves `key`'s slot now. */
  async primaryOf(key: string): Promise<number> {
    const live = [...this.#servers].find(([, s]) => s.alive)![0];
    const slot = await ask(live, "CLUSTER", "KEYSLOT", key) as number;
    const slots = await ask(live, "CLUSTER", "SLOTS") as Array<[number, number, [string, number]]>;
    return slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
  }

  /** Kills the node on `port` with SIGKILL, as a crash would. */
  async kill(port: number): Promise<void> {
    await this.#servers.get(port)!.kill("SIGKILL");
  }

  store(prefix: string, options: TestStoreOptions = {}): RedisSessionStore {
    const { encoding: _rest, ...settings } = options;
    return new RedisSessionStore({
      transport: "cluster",
      cluster: this.ports.slice(0, 3).map((port) => ({ host: "127.0.0.1", port })),
      keyPrefix: prefix,
      shards: TEST_SHARDS,
      timeout: STORE_TIMEOUT_MS,
      ...settings,
    });
  }

  config(prefix: string, timeout = "3s"): string {
    const nodes = this.nodes.map((n) => `"${n}"`).join(", ");
    return `{ cluster: [${nodes}], shards: ${TEST_SHARDS}, keyPrefix: "${prefix}", timeout: ${timeout} }`;
  }

  async command(...args: Array<string | number>): Promise<unknown> {
    this.#admin ??= new Cluster(this.ports.map((port) => ({ host: "127.0.0.1", port })), {
      redisOptions: { maxRetriesPerRequest: 1 },
    });
    const [name, ...rest] = args;
    return await this.#admin.call(String(name), ...rest);
  }

  async drop(prefix: string): Promise<void> {
    for (const port of await this.primaries()) await dropOn(port, prefix);
  }

  async stop(): Promise<void> {
    this.#admin?.disconnect();
    this.#admin = undefined;
    for (const server of this.#servers.values()) await server.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The master group of the sentinel setup. */
export const SENTINEL_GROUP = "mediation-test";

/** A primary, its replica and 3 sentinels watching them, on 127.0.0.1. */
export class RedisSentinelServers implements TestRedis {
  readonly transport = "resp";
  readonly dir = mkdtempSync(join(tmpdir(), "redis-sentinel-"));
  #data = new Map<number, Server>();
  #sentinels: Server[] = [];
  #admin?: Redis;
  readonly dataPorts: number[];
  readonly sentinelPorts: number[];
  private constructor(dataPorts: number[], sentinelPorts: number[]) {
    this.dataPorts = dataPorts;
    this.sentinelPorts = sentinelPorts;
  }

  static start(): Promise<RedisSentinelServers> {
    return attempts(() => RedisSentinelServers.#start());
  }

  static async #start(): Promise<RedisSentinelServers> {
    const ports = await freePorts(5);
    const setup = new RedisSentinelServers(ports.slice(0, 2), ports.slice(2));
    const [primary, replica] = setup.dataPorts;
    const data = (port: number, more: string[] = []) =>
      new Server(port, [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        setup.dir,
        "--save",
        "",
        "--appendonly",
        "no",
        ...more,
      ]);
    setup.#data.set(primary, data(primary));
    setup.#data.set(replica, data(replica, ["--replicaof", "127.0.0.1", String(primary)]));
    try {
      for (const server of setup.#data.values()) await server.started();
      await until(
        "the replica in sync",
        async () => (await ask(replica, "INFO", "replication") as string).includes("master_link_status:up"),
      );
      for (const port of setup.sentinelPorts) {
        const file = join(setup.dir, `sentinel-${port}.conf`);
        writeFileSync(
          file,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${setup.dir}`,
            `sentinel monitor ${SENTINEL_GROUP} 127.0.0.1 ${primary} 2`,
            `sentinel down-after-milliseconds ${SENTINEL_GROUP} 1000`,
            `sentinel failover-timeout ${SENTINEL_GROUP} 4000`,
            `sentinel parallel-syncs ${SENTINEL_GROUP} 1`,
            "",
          ].join("\n"),
        );
        const sentinel = new Server(port, [file, "--sentinel"]);
        setup.#sentinels.push(sentinel);
      }
      for (const sentinel of setup.#sentinels) await sentinel.started();
      // Every sentinel knows the replica and the other two: a failover can be agreed on.
      await until("the sentinels' quorum", async () => {
        for (const port of setup.sentinelPorts) {
          const replicas = await ask(port, "SENTINEL", "REPLICAS", SENTINEL_GROUP) as unknown[];
          const others = await ask(port, "SENTINEL", "SENTINELS", SENTINEL_GROUP) as unknown[];
          if (replicas.length < 1 || others.length < 2) return false;
        }
        return true;
      });
    } catch (error) {
      await setup.stop();
      throw error;
    }
    return setup;
  }

  /** The port of the primary the sentinels name now. */
  async primary(): Promise<number> {
    for (const port of this.sentinelPorts) {
      const reply = await ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_GROUP).catch(() => null);
      if (Array.isArray(reply)) return Number(reply[1]);
    }
    throw new Error("no sentinel answers");
  }

  /**
   * Resolves once the sentinels name a primary other than `old` and it takes writes (a replica
   * promoted: `role:master`).
   */
  async promoted(old: number, ms = 30_000): Promise<number> {
    let now = old;
    await until("a replica promoted", async () => {
      now = await this.primary();
      return now !== old && (await ask(now, "INFO", "replication") as string).includes("role:master");
    }, ms);
    return now;
  }

  async kill(port: number): Promise<void> {
    await this.#data.get(port)!.kill("SIGKILL");
  }

  store(prefix: string, options: TestStoreOptions = {}): RedisSessionStore {
    const { encoding: _rest, ...settings } = options;
    return new RedisSessionStore({
      transport: "sentinel",
      sentinels: this.sentinelPorts.map((port) => ({ host: "127.0.0.1", port })),
      name: SENTINEL_GROUP,
      keyPrefix: prefix,
      timeout: STORE_TIMEOUT_MS,
      ...settings,
    });
  }

  config(prefix: string, timeout = "3s"): string {
    const sentinels = this.sentinelPorts.map((p) => `"127.0.0.1:${p}"`).join(", ");
    return `{ sentinels: [${sentinels}], name: ${SENTINEL_GROUP}, keyPrefix: "${prefix}", timeout: ${timeout} }`;
  }

  async command(...args: Array<string | number>): Promise<unknown> {
    this.#admin ??= new Redis({
      sentinels: this.sentinelPorts.map((port) => ({ host: "127.0.0.1", port })),
      name: SENTINEL_GROUP,
      maxRetriesPerRequest: 1,
    });
    const [name, ...rest] = args;
    return await this.#admin.call(String(name), ...rest);
  }

  async drop(prefix: string): Promise<void> {
    await dropOn(await this.primary(), prefix);
  }

  async stop(): Promise<void> {
    this.#admin?.disconnect();
    this.#admin = undefined;
    for (const server of [...this.#sentinels, ...this.#data.values()]) await server.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
