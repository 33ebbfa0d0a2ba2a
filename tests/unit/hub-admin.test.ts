/**
 * What the admin API asks of a hub, on the virtual clock: drain (new connections refused, the
 * live ones closed with 1001 in waves over the drain time), disconnect (4000, the session stays
 * and resumes), end (4404, unbound and deleted), a message written to one client, and all three
 * reaching a client on another node through the store's signals.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CloseCode, type GatewayError } from "../../src/core/errors.ts";
import { encodeData } from "../../src/core/payload.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import { createHarness, LEASE } from "../support/hub-harness.ts";

test("hub admin: a drain refuses new connections and closes the live ones with 1001 in even waves", async () => {
  const h = await createHarness();
  const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => h.connect(`d${i}`)));
  const closed = () => clients.filter((c) => c.sink.closed).length;
  const draining = h.hub.drain(10_000, 10);
  assert.equal(h.hub.draining, true);
  await assert.rejects(h.connect("late"), (e: GatewayError) => e.code === "UPSTREAM_UNAVAILABLE");
  assert.equal(closed(), 0, "nothing closes before the first wave");
  const waves: number[] = [];
  for (let i = 0; i < 10; i++) {
    await h.clock.advance(1000);
    waves.push(closed());
  }
  await draining;
  assert.deepEqual(waves, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
  for (const { sink } of clients) {
    assert.deepEqual(sink.closed, { code: CloseCode.GOING_AWAY, reason: "server draining" });
  }
  const counts = await h.store.counts(h.clock.now());
  assert.deepEqual(counts, { connected: 0, disconnected: 20 }, "every session kept, disconnected");
});

test("hub admin: a drain spreads a few connections over the whole drain time", async () => {
  const h = await createHarness();
  const clients = await Promise.all(Array.from({ length: 3 }, (_, i) => h.connect(`f${i}`)));
  const draining = h.hub.drain(10_000, 10);
  const waves: number[] = [];
  for (let i = 0; i < 10; i++) {
    await h.clock.advance(1000);
    waves.push(clients.filter((c) => c.sink.closed).length);
  }
  await draining;
  assert.deepEqual(waves, [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]);
});

test("hub admin: a drain spreads what is left when clients leave on their own", async () => {
  const h = await createHarness();
  const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => h.connect(`e${i}`)));
  const draining = h.hub.drain(3000, 3);
  await h.clock.advance(1000);
  assert.equal(clients.filter((c) => c.sink.closed).length, 3);
  // Three more go by themselves: the two waves left share the other three.
  for (const c of clients.filter((c) => !c.sink.closed).slice(0, 3)) await c.conn.close();
  await h.clock.advance(1000);
  assert.equal(h.hub.connectionCount, 1);
  await h.clock.advance(1000);
  await draining;
  assert.equal(h.hub.connectionCount, 0);
});

test("hub admin: disconnect closes with 4000 and keeps the session, which the client resumes", async () => {
  const h = await createHarness();
  const first = await h.connect("kick");
  await first.conn.subscribe("chat");
  assert.equal(await h.hub.operations.disconnectClient("kick"), "disconnected");
  assert.deepEqual(first.sink.closed, {
    code: CloseCode.DISCONNECTED,
    reason: "disconnected by an operator",
  });
  assert.equal((await h.store.get("kick"))?.state, "disconnected");
  await h.publish("while away");
  const second = await h.connect("kick");
  assert.equal(second.conn.resumed, true);
  assert.deepEqual([...second.conn.bound.keys()], ["chat"]);
  assert.deepEqual(second.sink.data, ["while away"], "what came while away is delivered");
  assert.equal(await h.hub.operations.disconnectClient("nobody"), "no session");
  await second.conn.close();
  assert.equal(await h.hub.operations.disconnectClient("kick"), "not connected");
});

test("hub admin: end closes with 4404, unbinds at the broker and deletes the session", async () => {
  const h = await createHarness();
  const { conn, sink } = await h.connect("ender");
  await conn.subscribe("rooms", { room: "r1" });
  assert.equal(await h.hub.operations.endSession("ender"), "ended");
  assert.deepEqual(sink.closed, { code: CloseCode.SESSION_ENDED, reason: "session ended by an operator" });
  assert.equal(await h.store.get("ender"), undefined);
  assert.ok(h.logger.lines.some((l) => l.includes("[Admin] Unbound client ender from endpoint rooms")));
  await h.hub.publishDetached("publisher", "rooms", encodeData("after the end"), { room: "r1" });
  const fresh = await h.connect("ender");
  assert.equal(fresh.conn.resumed, false, "a fresh session");
  await fresh.conn.subscribe("rooms", { room: "r1" });
  assert.deepEqual(fresh.sink.data, [], "nothing was kept for the ended session");
  assert.equal(await h.hub.operations.endSession("nobody"), "no session");
  // A disconnected session is ended too.
  await fresh.conn.close();
  assert.equal(await h.hub.operations.endSession("ender"), "ended");
  assert.equal(await h.store.get("ender"), undefined);
  // A session whose cleanup is under way (claimed) is left to it: not unbound twice at once.
  await (await h.connect("held")).conn.close();
  const held = (await h.store.get("held"))!;
  await h.store.update({ ...held, reconnectionDeadline: h.clock.now() - 1 }, held.epoch);
  assert.ok(await h.store.claimExpired("held", h.clock.now(), 60_000));
  assert.equal(await h.hub.operations.endSession("held"), "failed");
  assert.ok(await h.store.get("held"), "the cleanup deletes it, not the admin API");
});

test("hub admin: a message written to a client arrives as from its endpoint", async () => {
  const h = await createHarness();
  const { sink } = await h.connect("target");
  assert.equal(await h.hub.operations.deliverTo("target", "chat", encodeData({ notice: "hi" })), "delivered");
  assert.deepEqual(sink.data, [{ notice: "hi" }]);
  assert.equal(sink.deliveries[0].endpoint, "chat");
  await assert.rejects(
    h.hub.operations.deliverTo("target", "nope", encodeData(1)),
    (e: GatewayError) => e.code === "UNKNOWN_ENDPOINT",
  );
});

test("hub admin: nodes announce themselves, and a client on another node is reached through signals", async () => {
  const store = new MemorySessionStore();
  const a = await createHarness({ store, nodeId: "node-a", clock: new VirtualClock(), announce: true });
  const b = await createHarness({ store, nodeId: "node-b", clock: new VirtualClock(), announce: true });
  const onB = await b.connect("far");
  await onB.conn.subscribe("chat");
  await b.clock.advance(LEASE / 3);
  const nodes = await store.nodes(a.clock.now());
  assert.deepEqual(nodes.map((n) => [n.id, n.connected, n.draining]), [["node-a", 0, false], [
    "node-b",
    1,
    false,
  ]]);

  assert.equal(await a.hub.operations.deliverTo("far", "chat", encodeData("from a")), "signalled");
  assert.equal(await a.hub.operations.disconnectClient("far"), "signalled");
  const closedWith = (sink: { closed?: { code: number } }) => sink.closed?.code;
  assert.equal(closedWith(onB.sink), undefined, "nothing until b announces itself");
  await b.clock.advance(LEASE / 3);
  assert.deepEqual(onB.sink.data, ["from a"]);
  assert.equal(closedWith(onB.sink), CloseCode.DISCONNECTED);
  assert.equal((await store.get("far"))?.state, "disconnected");

  const again = await b.connect("far");
  assert.equal(again.conn.resumed, true);
  assert.equal(await a.hub.operations.endSession("far"), "signalled");
  await b.clock.advance(LEASE / 3);
  assert.equal(closedWith(again.sink), CloseCode.SESSION_ENDED);
  assert.equal(await store.get("far"), undefined);

  // A draining node says so.
  const drain = b.hub.drain(1000, 1);
  await b.clock.advance(1000);
  await drain;
  assert.equal((await store.nodes(b.clock.now())).find((n) => n.id === "node-b")?.draining, true);
  // An announcement holds for a lease: a node that stops is gone after it.
  await b.hub.shutdown();
  await a.clock.advance(3 * LEASE);
  assert.deepEqual((await store.nodes(a.clock.now())).map((n) => n.id), ["node-a"]);
});
