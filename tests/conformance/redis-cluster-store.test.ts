/**
 * The session store contract on the sharded layout (redis-layout.ts), on each engine it runs on:
 * a single Redis (the shared one on 127.0.0.1:6379, under a prefix of its own; over RESP, and
 * with one of the two stores over the Upstash REST API), a private Redis
 * Cluster of 3 primaries and 3 replicas, and a private Sentinel-managed primary with a replica
 * (tests/support/redis-cluster.ts). Two stores stand in for two nodes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, test } from "node:test";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";
import { keyPrefix, RedisProxy, RespRedis } from "../support/redis.ts";
import { RedisClusterServers, RedisSentinelServers, TEST_SHARDS } from "../support/redis-cluster.ts";
import { KeyLayout } from "../../src/session/redis-layout.ts";
import { sessionStoreContract } from "./session-store-contract.ts";

const single = new RespRedis();
let cluster: RedisClusterServers;
let sentinel: RedisSentinelServers;
let rest: RedisProxy;
before(async () => {
  rest = await RedisProxy.start();
  cluster = await RedisClusterServers.start();
  sentinel = await RedisSentinelServers.start();
});
after(async () => {
  await rest?.stop();
  await single.stop();
  await cluster?.stop();
  await sentinel?.stop();
});

sessionStoreContract("redis (resp, shards)", () => {
  const prefix = keyPrefix("sharded");
  return Promise.resolve({
    store: single.store(prefix, { shards: TEST_SHARDS }),
    peer: single.store(prefix, { shards: TEST_SHARDS }),
    close: () => single.drop(prefix),
  });
});

sessionStoreContract("redis (resp + rest, shards)", () => {
  const prefix = keyPrefix("sharded-rest");
  return Promise.resolve({
    store: rest.store(prefix, { shards: TEST_SHARDS }),
    peer: single.store(prefix, { shards: TEST_SHARDS }),
    close: () => single.drop(prefix),
  });
});

sessionStoreContract("redis (cluster)", () => {
  const prefix = keyPrefix("cluster");
  return Promise.resolve({
    store: cluster.store(prefix),
    peer: cluster.store(prefix),
    close: () => cluster.drop(prefix),
  });
});

sessionStoreContract("redis (sentinel)", () => {
  const prefix = keyPrefix("sentinel");
  return Promise.resolve({
    store: sentinel.store(prefix),
    peer: sentinel.store(prefix),
    close: () => sentinel.drop(prefix),
  });
});

test("redis store (cluster): a client's keys and its shard's indexes share one slot; the shards spread over the primaries", async () => {
  const prefix = keyPrefix("slots");
  const layout = new KeyLayout(prefix, TEST_SHARDS);
  const store = cluster.store(prefix);
  try {
    await store.create({ clientId: "c", state: "connected", epoch: 1, connectedAt: 0, subscriptions: [] });
    const base = layout.baseOf("c");
    const slots = new Set<unknown>();
    for (
      const key of [layout.key("c"), layout.deadlines(base), layout.leases(base), `${layout.key("c")}~pub`]
    ) {
      slots.add(await cluster.command("CLUSTER", "KEYSLOT", key));
    }
    assert.equal(slots.size, 1, "one slot");
    assert.equal(await cluster.command("HGET", layout.key("c"), "epoch"), "1");
    const owners = new Set(await Promise.all(layout.bases.map((b) => cluster.primaryOf(`${b}~deadlines`))));
    assert.equal(owners.size, 3, "every primary holds shards");
  } finally {
    await store.close();
    await cluster.drop(prefix);
  }
});

test("redis store: a node configured for another layout refuses to start, naming both", async () => {
  const prefix = keyPrefix("layout");
  const first = single.store(prefix, { shards: 16 });
  const other = single.store(prefix, { shards: 64 });
  const plain = single.store(prefix);
  try {
    await first.ping();
    assert.equal(await single.command("GET", `${prefix}~layout`), `shards: 16, keyPrefix: "${prefix}"`);
    for (const [store, mine] of [[other, "64"], [plain, "none"]] as const) {
      await assert.rejects(store.ping(), (error: Error & { temporary?: boolean }) => {
        assert.equal(
          error.message,
          `session.redis: Redis holds sessions in the layout (shards: 16, keyPrefix: "${prefix}") but this node is configured for (shards: ${mine}, keyPrefix: "${prefix}") (${prefix}~layout; docs/clustering.md)`,
        );
        assert.equal(error.temporary, false);
        return true;
      });
      const write = store.create({
        clientId: "c",
        state: "connected",
        epoch: 1,
        connectedAt: 0,
        subscriptions: [],
      });
      await assert.rejects(write, /configured for/, "nothing is written in another layout");
    }
    assert.equal(await first.get("c"), undefined, "the first layout's nodes go on");
  } finally {
    await Promise.all([first.close(), other.close(), plain.close()]);
    await single.drop(prefix);
  }
});

/** Runs the gateway on `config` until it exits (or 20 s): its exit code and what it printed. */
function runGateway(config: string): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mediation-layout-"));
  writeFileSync(join(dir, "config.yaml"), config);
  const child = spawn(
    runtimeBinary(currentRuntime),
    runArgs(currentRuntime, "src/main.ts", ["--config", join(dir, "config.yaml")]),
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, output });
    })
  );
}

test(`gateway (${currentRuntime}): a node whose shards differ from the cluster's recorded layout exits 1 with one line naming both`, async () => {
  const prefix = keyPrefix("layout-gw");
  const first = cluster.store(prefix);
  try {
    await first.ping();
    const config = `
server: { host: 127.0.0.1, port: 0 }
session:
  type: redis
  redis: ${cluster.config(prefix).replace(`shards: ${TEST_SHARDS}`, "shards: 64")}
endpoints: [{ name: chat, type: memory }]
`;
    const { code, output } = await runGateway(config);
    assert.equal(code, 1, output);
    const lines = output.split("\n").filter((l) => l.includes("Redis holds sessions in the layout"));
    assert.equal(lines.length, 1, output);
    assert.match(
      lines[0],
      new RegExp(
        `layout \\(shards: ${TEST_SHARDS}, keyPrefix: "${prefix}"\\) but this node is configured for \\(shards: 64, keyPrefix: "${prefix}"\\)`,
      ),
    );
  } finally {
    await first.close();
    await cluster.drop(prefix);
  }
});
