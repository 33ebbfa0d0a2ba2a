/**
 * The session store contract against the Redis store, over the real Redis on 127.0.0.1:6379,
 * on each transport: RESP over TCP, and the Upstash REST API (tests/support/redis.ts). Two store
 * instances stand in for two nodes; a third run puts them on different transports, as two nodes
 * sharing one Redis would be. Then the key layout, on each transport.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { keyPrefix, RedisProxy, RespRedis } from "../support/redis.ts";
import type { TestRedis } from "../support/redis.ts";
import { sessionStoreContract } from "./session-store-contract.ts";

const resp = new RespRedis();
let rest: RedisProxy;
before(async () => {
  rest = await RedisProxy.start();
});
after(async () => {
  await rest.stop();
  await resp.stop();
});

sessionStoreContract("redis (resp)", () => {
  const prefix = keyPrefix("contract");
  return Promise.resolve({
    store: resp.store(prefix),
    peer: resp.store(prefix),
    close: () => resp.drop(prefix),
  });
});

sessionStoreContract("redis (rest)", () => {
  const prefix = keyPrefix("contract");
  return Promise.resolve({
    store: rest.store(prefix),
    peer: rest.store(prefix),
    close: () => rest.drop(prefix),
  });
});

sessionStoreContract("redis (resp + rest)", () => {
  const prefix = keyPrefix("contract");
  return Promise.resolve({
    store: resp.store(prefix),
    peer: rest.store(prefix),
    close: () => resp.drop(prefix),
  });
});

for (const [transport, redis] of [["resp", () => resp], ["rest", () => rest]] as const) {
  keyLayout(transport, redis);
}

/** The layout of a session's ledger and replay log, written through `transport`. */
function keyLayout(transport: string, current: () => TestRedis): void {
  test(`redis store (${transport}): the publish ledger's two keys expire with its ttl and go with the session`, async () => {
    const prefix = keyPrefix("ledger");
    const proxy = current();
    const store = proxy.store(prefix);
    const [ledger, times] = [`${prefix}c~pub`, `${prefix}c~pubt`];
    try {
      await store.create({ clientId: "c", state: "connected", epoch: 1, connectedAt: 0, subscriptions: [] });
      assert.deepEqual(await store.reservePublish("c", "p", 1000, 60_000, 10), { state: "new" });
      assert.deepEqual(
        [await proxy.command("TYPE", ledger), await proxy.command("TYPE", times)],
        ["hash", "zset"],
      );
      assert.equal(await proxy.command("HGET", ledger, "p"), "", "pending");
      assert.equal(await proxy.command("ZSCORE", times, "p"), "1000");
      for (const key of [ledger, times]) {
        const left = await proxy.command("PTTL", key) as number;
        assert.ok(left > 50_000 && left <= 60_000, `${key}: PTTL ${left}`);
      }
      await store.completePublish("c", "p", '{"offset":1}', 2000, 120_000);
      assert.equal(await proxy.command("HGET", ledger, "p"), '{"offset":1}');
      for (const key of [ledger, times]) {
        assert.ok(await proxy.command("PTTL", key) as number > 60_000, `${key}: every write sets the ttl`);
      }
      assert.equal(await store.delete("c", 1), true);
      assert.equal(await proxy.command("EXISTS", ledger, times), 0);
    } finally {
      await store.close();
      await proxy.drop(prefix);
    }
  });

  test(`redis store (${transport}): the replay log's two keys expire with its ttl, a take keeps it, and they go with the session`, async () => {
    const prefix = keyPrefix("replay");
    const proxy = current();
    const store = proxy.store(prefix);
    const [log, totals] = [`${prefix}c~sse`, `${prefix}c~sseb`];
    const event = (n: number) => ({ id: `chat/${n}`, endpoint: "chat", text: `id: chat/${n}\ndata: ü\n\n` });
    const pttl = async (key: string) => await proxy.command("PTTL", key) as number;
    try {
      await store.create({ clientId: "c", state: "connected", epoch: 1, connectedAt: 0, subscriptions: [] });
      assert.equal(await store.appendReplay("c", [event(1), event(2), event(3)], 1000, 60_000), 0);
      assert.deepEqual(
        [await proxy.command("TYPE", log), await proxy.command("TYPE", totals)],
        ["list", "hash"],
      );
      assert.deepEqual(JSON.parse(await proxy.command("LINDEX", log, 0) as string), {
        bytes: 21,
        ...event(1),
      });
      assert.equal(await proxy.command("HGET", totals, "bytes"), "63");
      for (const key of [log, totals]) {
        const left = await pttl(key);
        assert.ok(left > 50_000 && left <= 60_000, `${key}: PTTL ${left}`);
      }
      await store.appendReplay("c", [event(4)], 1000, 120_000);
      for (const key of [log, totals]) {
        assert.ok(await pttl(key) > 60_000, `${key}: every append sets the ttl`);
      }
      await proxy.command("PEXPIRE", log, 30_000);
      await proxy.command("PEXPIRE", totals, 30_000);
      assert.equal((await store.takeReplay("c", "chat/2")).events.length, 2);
      assert.equal(await proxy.command("LLEN", log), 2);
      assert.equal(await proxy.command("HGET", totals, "bytes"), "42");
      for (const key of [log, totals]) {
        const left = await pttl(key);
        assert.ok(left > 0 && left <= 30_000, `${key}: a take keeps the lifetime (PTTL ${left})`);
      }
      await store.takeReplay("c", "chat/4");
      assert.equal(await proxy.command("EXISTS", log), 0, "an emptied log");
      assert.ok(await pttl(totals) > 0, "the totals keep their lifetime");
      await store.appendReplay("c", [event(5)], 1000, 60_000);
      assert.equal(await store.delete("c", 1), true);
      assert.equal(await proxy.command("EXISTS", log, totals), 0);
    } finally {
      await store.close();
      await proxy.drop(prefix);
    }
  });

  test(`redis store (${transport}): a session created where an older one's key vanished starts without its log or ledger`, async () => {
    const prefix = keyPrefix("fresh");
    const proxy = current();
    const store = proxy.store(prefix);
    const attach = { nodeId: "n1", now: 0, leaseUntil: 15_000, deadline: 315_000, freshEpoch: 1 };
    const creations = [
      () => store.connect("c", attach),
      () => store.create({ clientId: "c", state: "connected", epoch: 1, connectedAt: 0, subscriptions: [] }),
    ];
    try {
      for (const create of creations) {
        await create();
        await store.appendReplay("c", [{ id: "1", endpoint: "chat", text: "id: 1\n\n" }], 1000, 60_000);
        assert.deepEqual(await store.reservePublish("c", "p", 0, 60_000, 10), { state: "new" });
        // The session's key expired (its retention ran out) while the log and ledger lived on.
        await proxy.command("DEL", `${prefix}c`);
        await create();
        assert.deepEqual(await store.takeReplay("c", undefined), { events: [], evicted: 0, found: false });
        assert.deepEqual(await store.reservePublish("c", "p", 1, 60_000, 10), { state: "new" });
        await proxy.command("DEL", `${prefix}c`);
      }
    } finally {
      await store.close();
      await proxy.drop(prefix);
    }
  });
}
