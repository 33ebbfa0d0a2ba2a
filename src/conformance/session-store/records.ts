/**
 * Session store contract, records: a session's round trip, and create, update, delete and
 * setSubscription as compare-and-set on the epoch, also between two nodes (src/core/session.ts).
 */
import assert from "node:assert/strict";
import { away, plain, session, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the records cases. */
export function recordCases({ run, id }: StoreCases): void {
  run("ping answers", async (store) => {
    await store.ping();
  });

  run("every field survives a round trip, and absent ones stay absent", async (store, peer) => {
    const c = id("c");
    const full = session(c, {
      epoch: 7,
      leaseUntil: T0 + 15_000,
      reconnectionDeadline: T0 + 315_000,
      subscriptions: [
        { endpoint: "chat", params: {}, boundAt: T0 },
        { endpoint: "rooms", params: { room: "a b", "ü": "ö" }, boundAt: T0 + 1 },
      ],
    });
    await store.create(full);
    assert.deepEqual(await peer.get(c), full);
    const gone = away(c, T0 + 9000, 8);
    await store.update(gone, 7);
    assert.deepEqual(plain(await peer.get(c)), plain(gone), "an update replaces every field");
  });

  run("create, then get returns an equal copy", async (store) => {
    const c = id("c");
    const s = session(c, { subscriptions: [{ endpoint: "chat", params: { room: "r" }, boundAt: T0 }] });
    assert.equal(await store.get(c), undefined);
    assert.equal(await store.create(s), true);
    assert.deepEqual(await store.get(c), s);
    assert.equal(await store.create(session(c, { epoch: 9 })), false, "create never overwrites");
    assert.equal((await store.get(c))?.epoch, 1);
  });

  run("update is compare-and-set on the epoch", async (store) => {
    const c = id("c");
    await store.create(session(c));
    assert.equal(await store.update(session(c, { epoch: 2, nodeId: "n2" }), 1), true);
    assert.equal(await store.update(session(c, { epoch: 3, nodeId: "n3" }), 1), false, "stale epoch");
    assert.equal((await store.get(c))?.nodeId, "n2");
    assert.equal(await store.update(session(id("missing")), 1), false, "no session, no write");
  });

  run("delete is compare-and-set on the epoch", async (store) => {
    const c = id("c");
    await store.create(session(c, { epoch: 4 }));
    assert.equal(await store.delete(c, 3), false);
    assert.ok(await store.get(c));
    assert.equal(await store.delete(c, 4), true);
    assert.equal(await store.get(c), undefined);
    assert.equal(await store.delete(c, 4), false);
  });

  run("update is compare-and-set across nodes: of two racing writers one wins", async (store, peer) => {
    const c = id("c");
    await store.create(session(c, { epoch: 3 }));
    const results = await Promise.all([
      store.update(session(c, { epoch: 4, nodeId: "a" }), 3),
      peer.update(session(c, { epoch: 4, nodeId: "b" }), 3),
    ]);
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await store.get(c))?.nodeId, results[0] ? "a" : "b");
  });

  run("setSubscription is compare-and-set; it adds, replaces and removes one endpoint", async (store) => {
    const c = id("c");
    await store.create(session(c, { epoch: 2 }));
    const chat = { endpoint: "chat", params: {}, boundAt: T0 + 1 };
    const rooms = { endpoint: "rooms", params: { room: "a" }, boundAt: T0 + 2 };
    assert.equal(await store.setSubscription(c, 1, "chat", chat), false, "stale epoch");
    assert.deepEqual((await store.get(c))?.subscriptions, []);
    assert.equal(await store.setSubscription(c, 2, "chat", chat), true);
    assert.equal(await store.setSubscription(c, 2, "rooms", rooms), true);
    assert.deepEqual((await store.get(c))?.subscriptions, [chat, rooms]);
    const moved = { ...rooms, params: { room: "b" } };
    await store.setSubscription(c, 2, "rooms", moved);
    assert.deepEqual((await store.get(c))?.subscriptions, [chat, moved]);
    await store.setSubscription(c, 2, "chat", undefined);
    assert.deepEqual((await store.get(c))?.subscriptions, [moved]);
    assert.equal(await store.setSubscription(id("missing"), 1, "chat", chat), false, "creates nothing");
  });
}
