/**
 * The session lifecycle of DESIGN.md section 4, on the virtual clock.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CloseCode, type GatewayError } from "../../src/core/errors.ts";
import { encodeData } from "../../src/core/payload.ts";
import { CLEANUP_INTERVAL, createHarness, WINDOW } from "../support/hub-harness.ts";

test("hub: a new client gets a fresh session, not resumed", async () => {
  const h = await createHarness();
  const { conn } = await h.connect("c1");
  assert.equal(conn.resumed, false);
  const session = await h.store.get("c1");
  assert.equal(session?.state, "connected");
  assert.equal(session?.nodeId, "node-a");
  assert.deepEqual(session?.subscriptions, []);
});

test("hub: the first publish binds the client-endpoint pair once, then publishes", async () => {
  const h = await createHarness();
  const { conn, sink } = await h.connect("c1");
  await Promise.all([
    conn.publish("chat", encodeData({ n: 1 })),
    conn.publish("chat", encodeData({ n: 2 })),
  ]);
  await conn.publish("chat", encodeData({ n: 3 }));
  const binds = h.logger.lines.filter((l) =>
    l.includes("[Binding] Creating endpoint binding: client=c1 endpoint=chat")
  );
  assert.equal(binds.length, 1);
  assert.equal(h.chat.bindingCount(), 1);
  const session = await h.store.get("c1");
  assert.deepEqual(session?.subscriptions.map((s) => s.endpoint), ["chat"]);
  // The client is bound to the topic it publishes to, so it hears its own messages, in order.
  assert.deepEqual(sink.data, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.deepEqual(sink.deliveries.map((d) => d.id), [
    `${conn.epoch}.1`,
    `${conn.epoch}.2`,
    `${conn.epoch}.3`,
  ]);
});

test("hub: disconnect suspends; messages published while away arrive on resume, in order, exactly once", async () => {
  const h = await createHarness();
  const first = await h.connect("c1");
  await first.conn.subscribe("chat");
  await first.conn.close();
  const away = await h.store.get("c1");
  assert.equal(away?.state, "disconnected");
  assert.equal(away?.reconnectionDeadline, h.clock.now() + WINDOW);

  for (let n = 1; n <= 50; n++) await h.publish({ n });
  assert.equal(h.chat.queued("c1"), 50);
  assert.equal(first.sink.deliveries.length, 0, "nothing reaches a closed connection");

  await h.clock.advance(WINDOW - 1000);
  const second = await h.connect("c1");
  assert.equal(second.conn.resumed, true);
  assert.deepEqual(second.sink.data, Array.from({ length: 50 }, (_, i) => ({ n: i + 1 })));
  assert.equal(h.chat.queued("c1"), 0);

  await h.publish({ n: 51 });
  assert.equal(second.sink.deliveries.length, 51);
  const ids = second.sink.deliveries.map((d) => d.id);
  assert.equal(new Set(ids).size, 51, "delivery ids are unique");
});

test("hub: delivery ids keep increasing across reconnects", async () => {
  const h = await createHarness();
  const a = await h.connect("c1");
  await a.conn.subscribe("chat");
  await h.publish("x");
  await a.conn.close();
  await h.publish("y");
  const b = await h.connect("c1");
  const order = (id: string) => id.split(".").map(Number);
  const [ea, sa] = order(a.sink.deliveries[0].id);
  const [eb, sb] = order(b.sink.deliveries[0].id);
  assert.ok(eb > ea || (eb === ea && sb > sa));
});

test("hub: reconnect after the window starts fresh and the old queue is gone", async () => {
  const h = await createHarness();
  const first = await h.connect("c1");
  await first.conn.subscribe("chat");
  await first.conn.close();
  await h.publish({ lost: true });
  h.cleanup.stop(); // the connect itself must notice the expiry
  await h.clock.advance(WINDOW + 1);
  const second = await h.connect("c1");
  assert.equal(second.conn.resumed, false);
  assert.deepEqual(second.sink.deliveries, []);
  assert.equal(h.chat.bindingCount(), 0, "old binding was unbound");
  assert.deepEqual((await h.store.get("c1"))?.subscriptions, []);
  await second.conn.subscribe("chat");
  await h.publish({ fresh: true });
  assert.deepEqual(second.sink.data, [{ fresh: true }]);
});

test("hub: the cleanup worker unbinds and deletes expired sessions, with the seed's log lines", async () => {
  const h = await createHarness();
  for (const id of ["c1", "c2"]) {
    const { conn } = await h.connect(id);
    await conn.subscribe("chat");
    await conn.close();
  }
  const stays = await h.connect("c3");
  await stays.conn.subscribe("chat");

  await h.clock.advance(WINDOW - CLEANUP_INTERVAL);
  assert.ok(await h.store.get("c1"), "not expired before the deadline");

  await h.clock.advance(CLEANUP_INTERVAL * 2);
  assert.equal(await h.store.get("c1"), undefined);
  assert.equal(await h.store.get("c2"), undefined);
  assert.ok(await h.store.get("c3"), "a connected session never expires");
  assert.equal(h.chat.bindingCount(), 1);
  assert.ok(h.logger.lines.includes("INFO [CleanupWorker] Found 2 expired sessions"));
  assert.ok(h.logger.lines.includes("INFO [CleanupWorker] Unbound client c1 from endpoint chat"));
  assert.ok(h.logger.lines.includes("INFO [CleanupWorker] Unbound client c2 from endpoint chat"));
  assert.match(await h.metrics.render(), /mediation_sessions_expired_total 2/);
});

test("hub: a client back just before cleanup runs is not cleaned up", async () => {
  const h = await createHarness();
  const { conn } = await h.connect("c1");
  await conn.subscribe("chat");
  await conn.close();
  await h.clock.advance(WINDOW);
  const back = await h.connect("c1");
  assert.equal(back.conn.resumed, true);
  await h.clock.advance(CLEANUP_INTERVAL * 3);
  assert.ok(await h.store.get("c1"));
  assert.equal(h.chat.bindingCount(), 1);
});

test("hub: a newer connection takes over; the older one is closed with 4409 and changes nothing", async () => {
  const h = await createHarness();
  const older = await h.connect("c1");
  await older.conn.subscribe("chat");
  const newer = await h.connect("c1");
  assert.equal(older.sink.closed?.code, CloseCode.TAKEN_OVER);
  assert.equal(newer.conn.resumed, true);
  assert.ok(newer.conn.epoch > older.conn.epoch);

  await older.conn.close(); // the old socket's close event arrives late
  const session = await h.store.get("c1");
  assert.equal(session?.state, "connected", "the old close does not disconnect the new owner");
  await h.publish({ n: 1 });
  assert.deepEqual(newer.sink.data, [{ n: 1 }]);
  assert.equal(older.sink.deliveries.length, 0);
  await assert.rejects(
    older.conn.publish("chat", encodeData(1)),
    (e: GatewayError) => e.code === "FORBIDDEN",
  );
});

test("hub: a back-pressured connection stops taking messages and resumes when it drains", async () => {
  const h = await createHarness();
  const { conn, sink } = await h.connect("c1");
  await conn.subscribe("chat");
  sink.full = true;
  for (let n = 1; n <= 5; n++) await h.publish({ n });
  assert.equal(sink.deliveries.length, 0);
  assert.equal(h.chat.queued("c1"), 5, "the endpoint kept what the socket could not take");
  sink.full = false;
  await h.clock.advance(50);
  assert.deepEqual(sink.data, [1, 2, 3, 4, 5].map((n) => ({ n })));
});

test("hub: binding params expand into topics and must be safe", async () => {
  const h = await createHarness();
  const a = await h.connect("a");
  const b = await h.connect("b");
  await a.conn.subscribe("rooms", { room: "lobby" });
  await b.conn.subscribe("rooms", { room: "lobby" });
  await a.conn.publish("rooms", encodeData("hi"));
  assert.deepEqual(b.sink.data, ["hi"]);
  assert.equal(b.sink.deliveries[0].meta?.topic, "room/lobby");
  const c = await h.connect("c");
  await assert.rejects(c.conn.subscribe("rooms", { room: "#" }), /param "room"/);
  await assert.rejects(c.conn.subscribe("rooms", {}), /needs the param "room"/);
  await assert.rejects(a.conn.subscribe("rooms", { room: "other" }), /other params/);
});

test("hub: unsubscribe unbinds at once and drops the queue", async () => {
  const h = await createHarness();
  const { conn } = await h.connect("c1");
  await conn.subscribe("chat");
  await conn.unsubscribe("chat");
  assert.equal(h.chat.bindingCount(), 0);
  assert.deepEqual((await h.store.get("c1"))?.subscriptions, []);
  await h.publish("after");
  assert.equal(h.chat.queued("c1"), 0);
});

test("hub: policy refuses unknown endpoints and oversize payloads", async () => {
  const h = await createHarness();
  const { conn } = await h.connect("c1");
  await assert.rejects(
    conn.publish("nope", encodeData(1)),
    (e: GatewayError) => e.code === "UNKNOWN_ENDPOINT",
  );
  await assert.rejects(
    conn.publish("chat", new Uint8Array(2000)),
    (e: GatewayError) => e.code === "TOO_LARGE",
  );
  assert.equal(h.chat.bindingCount(), 0, "a refused publish binds nothing");
});

test("hub: a connection whose socket never opens is dropped after the open timeout", async () => {
  const h = await createHarness();
  await h.hub.connect("c1", "test");
  await h.clock.advance(10_001);
  assert.equal((await h.store.get("c1"))?.state, "disconnected");
  assert.equal(h.hub.connectionCount, 0);
});

test("hub: shutdown closes clients with 1001 and marks their sessions disconnected", async () => {
  const h = await createHarness();
  const { conn, sink } = await h.connect("c1");
  await conn.subscribe("chat");
  await h.hub.shutdown();
  assert.equal(sink.closed?.code, CloseCode.GOING_AWAY);
  assert.equal((await h.store.get("c1"))?.state, "disconnected");
  await h.publish("queued");
  assert.equal(h.chat.queued("c1"), 1, "suspended: the endpoint queues");
  await assert.rejects(h.hub.connect("c2", "test"), /shutting down/);
});
