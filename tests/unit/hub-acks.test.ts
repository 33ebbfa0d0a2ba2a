/**
 * End-to-end acknowledgements in the hub (DESIGN.md section 5), on the virtual clock with the
 * memory endpoint: ack-gated broker acks, flow control, redelivery, the resume report.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatewayError } from "../../src/core/errors.ts";
import type { BindableEndpoint } from "../../src/core/endpoint.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import { createHarness, RecordingSink, WINDOW } from "../support/hub-harness.ts";

const badFrame = (e: GatewayError) => e.code === "BAD_FRAME";

test("acks: the broker lets go only of what the client acknowledged; the rest comes again, flagged", async () => {
  const h = await createHarness();
  const first = await h.connect("c1", undefined, true);
  assert.equal(first.conn.acks, true);
  await first.conn.subscribe("chat");
  for (let n = 1; n <= 5; n++) await h.publish({ n });
  assert.deepEqual(first.sink.data, [1, 2, 3, 4, 5].map((n) => ({ n })));
  assert.equal(h.chat.queued("c1"), 5, "delivered, but nothing acknowledged yet");
  first.conn.ack("chat", first.sink.deliveries[1].id); // cumulative: 1 and 2
  assert.equal(h.chat.queued("c1"), 3);
  await first.conn.close();
  const second = await h.connect("c1", undefined, true);
  assert.deepEqual(second.sink.data, [3, 4, 5].map((n) => ({ n })), "the unacknowledged, in order");
  assert.deepEqual(second.sink.deliveries.map((d) => d.redelivered), [true, true, true]);
  await h.publish({ n: 6 });
  assert.equal(second.sink.deliveries[3].redelivered, undefined, "a new message is not flagged");
  second.conn.ack("chat", second.sink.deliveries[3].id);
  assert.equal(h.chat.queued("c1"), 0);
});

test("acks: an ack for an unknown, earlier-connection or future id is BAD_FRAME and changes nothing", async () => {
  const h = await createHarness();
  const first = await h.connect("c1", undefined, true);
  await first.conn.subscribe("chat");
  await h.publish({ n: 1 });
  const oldId = first.sink.deliveries[0].id;
  await first.conn.close();
  const { conn, sink } = await h.connect("c1", undefined, true);
  assert.throws(() => conn.ack("chat", oldId), badFrame, "an earlier connection's id");
  assert.throws(() => conn.ack("chat", `${conn.epoch}.99`), badFrame, "not yet sent");
  assert.throws(() => conn.ack("chat", "nonsense"), badFrame);
  assert.throws(
    () => conn.ack("nope", sink.deliveries[0].id),
    (e: GatewayError) => e.code === "UNKNOWN_ENDPOINT",
  );
  assert.equal(h.chat.queued("c1"), 1, "nothing was settled by the bad acks");
  const plain = await h.connect("c2");
  assert.throws(() => plain.conn.ack("chat", "1.1"), /ack=1/);
});

test("acks: at most max_in_flight wait per endpoint; acks let the rest through", async () => {
  const h = await createHarness({ maxInFlight: 3 });
  const { conn, sink } = await h.connect("c1", undefined, true);
  await conn.subscribe("chat");
  for (let n = 1; n <= 10; n++) await h.publish({ n });
  assert.equal(sink.deliveries.length, 3, "the endpoint holds the rest");
  conn.ack("chat", sink.deliveries[1].id);
  assert.equal(sink.deliveries.length, 5);
  conn.ack("chat", sink.deliveries[4].id);
  assert.equal(sink.deliveries.length, 8);
  assert.deepEqual(sink.data, [1, 2, 3, 4, 5, 6, 7, 8].map((n) => ({ n })), "in order, none twice");
});

test("acks: a same-node takeover redelivers what the older connection left unacknowledged", async () => {
  const h = await createHarness();
  const older = await h.connect("c1", undefined, true);
  await older.conn.subscribe("chat");
  await h.publish({ n: 1 });
  await h.publish({ n: 2 });
  older.conn.ack("chat", older.sink.deliveries[0].id);
  const newer = await h.connect("c1", undefined, true);
  assert.deepEqual(newer.sink.data, [{ n: 2 }]);
  assert.equal(newer.sink.deliveries[0].redelivered, true);
});

test("resume report: recovered, unless the queue overflowed (with counts) or the session had expired", async () => {
  const h = await createHarness();
  const reports: unknown[] = [];
  const reconnect = async () => {
    const conn = await h.hub.connect("c1", "test");
    await conn.open(new RecordingSink(), (r) => reports.push(r));
    return conn;
  };
  const first = await h.connect("c1");
  await first.conn.subscribe("chat");
  await first.conn.close();
  await h.publish({ n: 1 });
  await (await reconnect()).close();
  assert.deepEqual(reports.pop(), { recovered: true });
  for (let n = 1; n <= 10_005; n++) await h.publish({ n }); // the queue holds 10,000
  await (await reconnect()).close();
  assert.deepEqual(reports.pop(), { recovered: false, reason: "dropped", lost: { chat: 5 } });
  await h.cleanup.stop(); // the client comes back after its window, before any cleanup ran
  await h.clock.advance(WINDOW + 1000);
  const late = await reconnect();
  assert.equal(late.resumed, false);
  assert.deepEqual(reports.pop(), { recovered: false, reason: "expired" });
});

test("resume report: an endpoint may count its losses asynchronously, given the binding's params; one that fails counts as nothing known", async () => {
  const h = await createHarness();
  const reports: unknown[] = [];
  const reconnect = async () => {
    const conn = await h.hub.connect("c1", "test");
    await conn.open(new RecordingSink(), (r) => reports.push(r));
    return conn;
  };
  const asked: Array<Record<string, string>> = [];
  // As the Kafka endpoint does: it asks its broker before the welcome.
  const rooms: BindableEndpoint = h.rooms;
  rooms.takeLosses = async (_clientId, params) => {
    asked.push(params);
    await Promise.resolve();
    return 3;
  };
  const first = await h.connect("c1");
  await first.conn.subscribe("rooms", { room: "r1" });
  await first.conn.close();
  await (await reconnect()).close();
  assert.deepEqual(reports.pop(), { recovered: false, reason: "dropped", lost: { rooms: 3 } });
  assert.deepEqual(asked, [{ room: "r1" }]);
  rooms.takeLosses = () => Promise.reject(new Error("broker gone"));
  await (await reconnect()).close();
  assert.deepEqual(reports.pop(), { recovered: true });
});

test("dedupe: a publish retried with its id after a reconnect is not sent again and gets the first receipt", async () => {
  const h = await createHarness();
  const watcher = await h.connect("watcher");
  await watcher.conn.subscribe("chat");
  const first = await h.connect("c1");
  const receipt = await first.conn.publish("chat", new TextEncoder().encode('"once"'), "m-1");
  await first.conn.close();
  const second = await h.connect("c1");
  const retried = await second.conn.publish("chat", new TextEncoder().encode('"once"'), "m-1");
  assert.deepEqual(retried, { meta: receipt.meta });
  assert.deepEqual(watcher.sink.data, ["once"], "the broker got it once");
  await second.conn.publish("chat", new TextEncoder().encode('"other endpoint, same id"'), "m-2");
  await second.conn.publish("chat", new TextEncoder().encode('"twice"'), "m-3");
  assert.deepEqual(watcher.sink.data, ["once", "other endpoint, same id", "twice"]);
});

test("dedupe: a publish that failed frees its id, so its retry is sent", async () => {
  const h = await createHarness();
  const watcher = await h.connect("watcher");
  await watcher.conn.subscribe("chat");
  const { conn } = await h.connect("c1");
  const publish = h.chat.publish.bind(h.chat);
  h.chat.publish = () => Promise.reject(new GatewayError("UPSTREAM_UNAVAILABLE", "broker down"));
  await assert.rejects(conn.publish("chat", new TextEncoder().encode('"retry me"'), "m-1"));
  h.chat.publish = publish;
  await conn.publish("chat", new TextEncoder().encode('"retry me"'), "m-1");
  assert.deepEqual(watcher.sink.data, ["retry me"]);
});

test("dedupe: with the store out of reach a publish with an id still goes out (live traffic flows)", async () => {
  class Unreachable extends MemorySessionStore {
    override reservePublish(): Promise<never> {
      return Promise.reject(new GatewayError("STORE_UNAVAILABLE", "session store unreachable"));
    }
  }
  const h = await createHarness({ store: new Unreachable() });
  const watcher = await h.connect("watcher");
  await watcher.conn.subscribe("chat");
  const { conn } = await h.connect("c1");
  await conn.publish("chat", new TextEncoder().encode('"during the outage"'), "m-1");
  assert.deepEqual(watcher.sink.data, ["during the outage"]);
  assert.ok(h.logger.lines.some((l) => l.includes("sent without dedupe")));
});

test("acks: a newer connection waits for the older one's sink to settle, so what it kept is not sent again", async () => {
  const h = await createHarness();
  const older = await h.connect("c1", undefined, true);
  await older.conn.subscribe("chat");
  await h.publish({ n: 1 });
  await h.publish({ n: 2 });
  // Like an SSE stream: it keeps what it wrote, and acknowledges once kept (a moment later).
  older.sink.settled = async () => {
    await Promise.resolve();
    older.conn.ack("chat", older.sink.deliveries[1].id);
  };
  const newer = await h.connect("c1", undefined, true);
  assert.deepEqual(newer.sink.data, [], "both were kept by the older stream: none comes again");
  assert.equal(h.chat.queued("c1"), 0);
  await h.publish({ n: 3 });
  assert.deepEqual(newer.sink.data, [{ n: 3 }]);
});

test("limits: publishes past the client's rate are RATE_LIMITED with a retry hint; the rate refills", async () => {
  const h = await createHarness({ publishesPerSecond: 5 });
  const { conn } = await h.connect("c1");
  const send = () => conn.publish("chat", new TextEncoder().encode("1"));
  for (let i = 0; i < 10; i++) await send(); // a burst of twice the rate
  await assert.rejects(send(), (e: GatewayError) => e.code === "RATE_LIMITED" && (e.retryAfterMs ?? 0) > 0);
  await assert.rejects(
    h.hub.publishDetached("c1", "chat", new TextEncoder().encode("1")),
    (e: GatewayError) => e.code === "RATE_LIMITED",
    "the same client over HTTP shares the budget",
  );
  await h.clock.advance(1000);
  await send(); // five more a second
  const other = await h.connect("c2");
  await other.conn.publish("chat", new TextEncoder().encode("1")); // other clients are not affected
});
