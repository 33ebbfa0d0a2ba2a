/**
 * The session store contract against the Redis store, over the real Redis on 127.0.0.1:6379
 * through the Upstash REST API (tests/support/redis.ts). Two store instances stand in for two
 * nodes.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { sessionStoreContract } from "./session-store-contract.ts";

let proxy: RedisProxy;
before(async () => {
  proxy = await RedisProxy.start();
});
after(() => proxy.stop());

sessionStoreContract("redis", () => {
  const prefix = keyPrefix("contract");
  return Promise.resolve({
    store: proxy.store(prefix),
    peer: proxy.store(prefix),
    close: () => proxy.drop(prefix),
  });
});

test("redis store: the publish ledger's two keys expire with its ttl and go with the session", async () => {
  const prefix = keyPrefix("ledger");
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
