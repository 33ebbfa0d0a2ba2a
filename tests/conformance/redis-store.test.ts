/**
 * The session store contract against the Redis store, over the real Redis on 127.0.0.1:6379
 * through the Upstash REST API (tests/support/redis.ts). Two store instances stand in for two
 * nodes.
 */
import { after, before } from "node:test";
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
