/**
 * The Redis session store under the hub, against the real Redis on 127.0.0.1:6379, on each
 * transport (RESP over TCP, and the Upstash REST API through a proxy): records it cannot read,
 * written by another program or version; and the settings a Redis refuses, each found by the
 * start-up check in one line that names it.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { GatewayError } from "../../src/core/errors.ts";
import { RedisSessionStore } from "../../src/session/redis.ts";
import { createHarness, WINDOW } from "../support/hub-harness.ts";
import { keyPrefix, PrivateRedis, RedisProxy, RespRedis, STORE_TIMEOUT_MS } from "../support/redis.ts";
import type { TestRedis } from "../support/redis.ts";

/**
 * The virtual clock fires cleanup runs but cannot wait for their real round trips to Redis:
 * waits for the one under way, then runs one more at the clock's present time.
 */
async function settle(cleanup: { run(): Promise<number> }): Promise<void> {
  await cleanup.run();
  await cleanup.run();
}

const attachAt = (now: number) => ({
  nodeId: "n1",
  now,
  leaseUntil: now + 15_000,
  deadline: now + 315_000,
  freshEpoch: now,
});

let proxy: RedisProxy;
const resp = new RespRedis();
before(async () => {
  proxy = await RedisProxy.start();
});
after(async () => {
  await proxy.stop();
  await resp.stop();
});

hubOnRedis("resp", () => resp);
hubOnRedis("rest", () => proxy);

/** The hub on the Redis store over one transport. */
function hubOnRedis(transport: string, current: () => TestRedis): void {
  test(`redis (${transport}): unreadable records are reported and skipped; cleanup goes on with the rest`, async () => {
    const proxy = current();
    const prefix = keyPrefix("garbage");
    const unreadable: string[] = [];
    const store = proxy.store(prefix, { onUnreadable: (id) => unreadable.push(id) });
    const h = await createHarness({ store });
    try {
      for (const id of ["ok-1", "ok-2", "ok-3"]) {
        const { conn } = await h.connect(id);
        await conn.subscribe("chat");
        await conn.close();
      }
      const deadline = h.clock.now() + 1000;
      const index = `${prefix}~deadlines`;
      const valid = (
        id: string,
      ) => ["HSET", `${prefix}${id}`, "epoch", 1, "state", "disconnected", "connectedAt", 1];
      const bad: Record<string, Array<string | number>> = {
        "bad-json": [...valid("bad-json"), "deadline", deadline, "sub:chat", "{not json"],
        "bad-field": ["HSET", `${prefix}bad-field`, "epoch", 1, "connectedAt", 1, "deadline", deadline],
        "bad-epoch": [...valid("bad-epoch"), "epoch", "one", "deadline", deadline],
        "bad-deadline": [...valid("bad-deadline"), "deadline", "soon"],
        "bad-type": ["SET", `${prefix}bad-type`, "a string, not a hash"],
      };
      for (const [id, command] of Object.entries(bad)) {
        await proxy.command(...command);
        await proxy.command("ZADD", index, deadline, id);
      }

      await h.clock.advance(WINDOW + 60_000);
      await settle(h.cleanup);
      const found = h.logger.lines.filter((l) => l.includes("[CleanupWorker] Found"));
      assert.ok(found.length > 0, "the cleanup worker ran");
      for (const id of ["ok-1", "ok-2", "ok-3"]) {
        assert.equal(await store.get(id), undefined, `${id} cleaned up`);
        assert.ok(
          h.logger.lines.includes(`INFO [CleanupWorker] Unbound client ${id} from endpoint chat`),
          id,
        );
      }
      assert.deepEqual(unreadable.sort(), Object.keys(bad).sort(), "each reported once");
      assert.deepEqual(await proxy.command("ZRANGE", index, 0, -1), [], "out of the index");
      for (const id of Object.keys(bad)) {
        assert.equal(await proxy.command("EXISTS", `${prefix}${id}`), 1, `${id} left for an operator`);
      }

      // A client whose record is unreadable is refused with the reason, and the record is kept.
      await assert.rejects(
        h.hub.connect("bad-json", "test"),
        (e: GatewayError) =>
          e.code === "STORE_UNAVAILABLE" && /unreadable \(sub:chat is not JSON/.test(e.message),
      );
      await assert.rejects(
        h.hub.connect("bad-field", "test"),
        (e: GatewayError) => /unreadable \(state null\)/.test(e.message),
      );
      await assert.rejects(
        h.hub.connect("bad-type", "test"),
        (e: GatewayError) => /unreadable \(not a session hash\)/.test(e.message),
      );
      assert.equal(await proxy.command("HGET", `${prefix}bad-json`, "sub:chat"), "{not json");
    } finally {
      await h.hub.shutdown();
      await h.cleanup.stop();
      await proxy.drop(prefix);
    }
  });

  test(`redis (${transport}): the hub's whole lifecycle runs on the Redis store`, async () => {
    const proxy = current();
    const prefix = keyPrefix("lifecycle");
    const store = proxy.store(prefix);
    const h = await createHarness({ store });
    try {
      const first = await h.connect("c1");
      await first.conn.subscribe("chat");
      await first.conn.close();
      for (let n = 1; n <= 20; n++) await h.publish({ n });
      await h.clock.advance(WINDOW - 1000);
      const second = await h.connect("c1");
      assert.equal(second.conn.resumed, true);
      assert.deepEqual(second.sink.data, Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })));
      const held = await store.get("c1");
      assert.equal(held?.state, "connected");
      assert.equal(held?.epoch, second.conn.epoch);
      await second.conn.close();
      await h.clock.advance(WINDOW + 60_000);
      await settle(h.cleanup);
      assert.equal(await store.get("c1"), undefined);
      // Only the layout marker is left (redis-layout.ts).
      assert.deepEqual(await proxy.command("KEYS", `${prefix}*`), [`${prefix}~layout`]);
    } finally {
      await h.hub.shutdown();
      await h.cleanup.stop();
      await proxy.drop(prefix);
    }
  });
}

test("redis (rest): a response encoding that does not match the server is found in one round trip, before any write", async () => {
  const prefix = keyPrefix("encoding");
  // The test proxy answers in plain JSON; a store set to base64 decodes its answers wrongly.
  const wrong = proxy.store(prefix, { encoding: "base64" });
  const right = proxy.store(prefix);
  try {
    await assert.rejects(
      wrong.ping(),
      (e: GatewayError) =>
        e.code === "STORE_UNAVAILABLE" && !e.temporary &&
        /session\.redis\.encoding is "base64"/.test(e.message) &&
        /set encoding: none/.test(e.message),
    );
    await assert.rejects(wrong.connect("enc-1", attachAt(Date.now())), /session\.redis\.encoding/);
    assert.equal(await right.get("enc-1"), undefined, "nothing was written that could not be read back");
    await right.ping();
    assert.equal((await right.connect("enc-1", attachAt(Date.now()))).outcome, "created");
  } finally {
    await proxy.drop(prefix);
  }
});

/** A store on a private Redis started with `args`, over RESP with `settings`. */
async function startupCheck(
  args: string[],
  settings: { username?: string; password?: string; db?: number },
  refused: RegExp,
): Promise<void> {
  const redis = await PrivateRedis.start(args);
  const store = new RedisSessionStore({
    transport: "resp",
    host: "127.0.0.1",
    port: redis.port,
    keyPrefix: keyPrefix("refused"),
    timeout: 1000,
    ...settings,
  });
  try {
    const started = Date.now();
    await assert.rejects(store.ping(), (e: GatewayError) => {
      assert.ok(e instanceof GatewayError, String(e));
      assert.equal(e.code, "STORE_UNAVAILABLE");
      assert.equal(e.temporary, false, `not temporary: ${e.message}`);
      assert.match(e.message, refused);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
    assert.ok(Date.now() - started < 1000, "found before the timeout");
    // and again on the next call, as start-up or /readyz would see it
    await assert.rejects(store.ping(), refused);
  } finally {
    await store.close();
    await redis.stop();
  }
}

test("redis (resp): a wrong password or a missing one stops start-up with one line naming session.redis.password", async () => {
  const auth = ["--requirepass", "s3cret"];
  await startupCheck(auth, { password: "wrong" }, /refused session\.redis\.password \(WRONGPASS/);
  await startupCheck(auth, {}, /refused session\.redis\.password \(NOAUTH/);
  await startupCheck(
    [...auth, "--user", "app-user", "on", ">apppass", "~*", "+@all"],
    { username: "app-user", password: "nope-pass" },
    // Neither half of the credential is quoted (issue 19, item 1).
    /refused session\.redis\.username and session\.redis\.password \((?!.*(app-user|nope-pass))/,
  );
});

test("redis (resp): a db the server does not have stops start-up with one line naming session.redis.db", async () => {
  await startupCheck(
    ["--databases", "4"],
    { db: 7 },
    /has no database session\.redis\.db 7 \(ERR DB index is out of range/,
  );
});

test("redis (resp): a Redis that refuses scripts (EVALSHA) stops start-up with one line that says so", async () => {
  await startupCheck(["--rename-command", "EVALSHA", ""], {}, /refuses Lua scripts \(EVALSHA\)/);
  await startupCheck(
    ["--user", "default", "off", "--user", "app", "on", ">p", "~*", "+@all", "-@scripting"],
    { username: "app", password: "p" },
    /refuses Lua scripts \(EVALSHA\).*NOPERM/,
  );
});

test("redis (resp): the right password, ACL user and db start, and the store writes into that db", async () => {
  const redis = await PrivateRedis.start([
    "--requirepass",
    "s3cret",
    "--user",
    "app",
    "on",
    ">apppass",
    "~*",
    "+@all",
  ]);
  const prefix = keyPrefix("db");
  const store = new RedisSessionStore({
    transport: "resp",
    host: "127.0.0.1",
    port: redis.port,
    username: "app",
    password: "apppass",
    db: 3,
    keyPrefix: prefix,
    timeout: STORE_TIMEOUT_MS,
  });
  const admin = new RespRedis(`redis://:s3cret@127.0.0.1:${redis.port}`);
  try {
    await store.ping();
    assert.equal((await store.connect("c", attachAt(Date.now()))).outcome, "created");
    assert.equal(await admin.command("EXISTS", `${prefix}c`), 0, "not in db 0");
    await admin.command("SELECT", 3);
    assert.equal(await admin.command("EXISTS", `${prefix}c`), 1, "in db 3");
  } finally {
    await store.close();
    await admin.stop();
    await redis.stop();
  }
});
