/**
 * The hub under races and hostile timing (issue 9): stale connections, cleanup that must keep
 * running, renewals against claims, streams that carry some endpoints only. Virtual clock.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CloseCode, GatewayError } from "../../src/core/errors.ts";
import type { Lease, LostLease, Session } from "../../src/core/session.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import { CLEANUP_INTERVAL, createHarness, LEASE, WINDOW } from "../support/hub-harness.ts";

const forbidden = (e: GatewayError) => e.code === "FORBIDDEN";
const takenOver = (e: GatewayError) => e.code === "TAKEN_OVER";

test("hub: a stale connection's unsubscribe cannot unbind the new owner's consumer (one node)", async () => {
  const h = await createHarness();
  const old = await h.connect("c1");
  await old.conn.subscribe("rooms", { room: "r1" });
  // The reconnect takes the client's lock first; the old socket's unsubscribe is queued behind it.
  const reconnecting = h.hub.connect("c1", "test");
  const unsubscribing = old.conn.unsubscribe("rooms");
  const newer = await reconnecting;
  await assert.rejects(unsubscribing, forbidden);
  assert.equal(h.rooms.bindingCount(), 1, "the binding the new connection resumes is intact");
  assert.deepEqual((await h.store.get("c1"))?.subscriptions.map((s) => s.endpoint), ["rooms"]);
  const { RecordingSink } = await import("../support/hub-harness.ts");
  const sink = new RecordingSink();
  await newer.open(sink);
  await h.hub.publishDetached("p", "rooms", new TextEncoder().encode('"after"'), { room: "r1" });
  assert.deepEqual(sink.data, ["after"]);
});

test("hub: a connection taken over on another node cannot unbind there (the store fences it)", async () => {
  const store = new MemorySessionStore();
  const a = await createHarness({ store, nodeId: "node-a", clock: new VirtualClock() });
  const b = await createHarness({ store, nodeId: "node-b", clock: new VirtualClock() });
  const old = await a.connect("c1");
  await old.conn.subscribe("chat");
  let unbinds = 0;
  const unbind = a.chat.unbindClient.bind(a.chat);
  a.chat.unbindClient = (id, params) => (unbinds++, unbind(id, params));
  await b.connect("c1"); // node A does not know yet: it learns at its next lease renewal
  await assert.rejects(old.conn.unsubscribe("chat"), takenOver);
  assert.equal(unbinds, 0, "nothing touched the broker state the new owner resumes");
  assert.deepEqual((await store.get("c1"))?.subscriptions.map((s) => s.endpoint), ["chat"]);
});

/** A store whose renewals can be made to fail, and that can take a client over right after a claim. */
class TroubledStore extends MemorySessionStore {
  renewFails = false;
  takeOverOnClaim?: string;
  override renew(leases: Lease[], now: number, leaseUntil: number, deadline: number): Promise<LostLease[]> {
    if (this.renewFails) return Promise.reject(new GatewayError("STORE_UNAVAILABLE", "unreachable"));
    return super.renew(leases, now, leaseUntil, deadline);
  }
  override async claimExpired(clientId: string, now: number, ttl: number): Promise<Session | undefined> {
    const claimed = await super.claimExpired(clientId, now, ttl);
    if (claimed && clientId === this.takeOverOnClaim) {
      // Another node's connect lands between this claim and whatever the claimer does next.
      await super.update({ ...claimed, epoch: claimed.epoch + 1, nodeId: "node-b" }, claimed.epoch);
    }
    return claimed;
  }
}

test("hub: cleanup of a session live on this node never waits on its own lock, and keeps running", async () => {
  const store = new TroubledStore();
  const h = await createHarness({ store });
  const live = await h.connect("c1");
  await live.conn.subscribe("chat");
  // The store is out of reach for longer than lease + window: the lease lapses.
  store.renewFails = true;
  await h.clock.advance(LEASE + WINDOW + 1000);
  store.renewFails = false;
  store.takeOverOnClaim = "c1";
  let settled = false;
  const run = h.cleanup.run().then(() => (settled = true));
  await h.clock.advance(1);
  assert.ok(settled, "the cleanup run finished (it used to deadlock on the client's lock)");
  await run;
  assert.equal(live.sink.closed, undefined, "renewed, the live client stays");
  // And cleanup goes on: a later expired session is cleaned up at the next interval.
  const other = await h.connect("c2");
  await other.conn.subscribe("chat");
  await other.conn.close();
  await h.clock.advance(WINDOW + CLEANUP_INTERVAL);
  assert.equal(await h.store.get("c2"), undefined);
});

test("hub: a node whose lease was claimed by another node's cleanup lets go with 4410", async () => {
  const store = new TroubledStore();
  const a = await createHarness({ store, nodeId: "node-a", clock: new VirtualClock() });
  const b = await createHarness({ store, nodeId: "node-b", clock: new VirtualClock() });
  const live = await a.connect("c1");
  await live.conn.subscribe("chat");
  store.renewFails = true;
  await a.clock.advance(LEASE + WINDOW + 1000);
  await b.clock.advance(LEASE + WINDOW + 1000);
  store.renewFails = false;
  assert.equal(await b.cleanup.run(), 1, "node B cleaned the expired session up");
  await a.clock.advance(LEASE);
  assert.equal(live.sink.closed?.code, CloseCode.SESSION_EXPIRED, "told to reconnect for a fresh session");
  assert.equal(a.hub.connectionCount, 0);
});

test("hub: cleanup is not starved by more stuck claims than a page, and clears 20,000 in one interval", async () => {
  const h = await createHarness();
  // Unbinding from rooms fails (a broker down) for the stuck ones: their claims stay held.
  const unbind = h.rooms.unbindClient.bind(h.rooms);
  h.rooms.unbindClient = (id, params) =>
    id.startsWith("stuck") ? Promise.reject(new Error("broker down")) : unbind(id, params);
  const now = h.clock.now();
  const away = (clientId: string, deadline: number, endpoint?: string): Session => ({
    clientId,
    state: "disconnected",
    epoch: 1,
    connectedAt: now - WINDOW,
    disconnectedAt: deadline - WINDOW,
    reconnectionDeadline: deadline,
    subscriptions: endpoint ? [{ endpoint, params: { room: "r" }, boundAt: now - WINDOW }] : [],
  });
  for (let i = 0; i < 600; i++) await h.store.create(away(`stuck-${i}`, now - 10_000 + i, "rooms"));
  assert.equal(await h.cleanup.run(), 0, "every one of them failed and stays claimed");
  // Newer expired sessions behind 600 held claims (the page is 500).
  for (let i = 0; i < 20_000; i++) await h.store.create(away(`gone-${i}`, h.clock.now() - 1));
  const runs = async () =>
    Number((await h.metrics.render()).match(/^mediation_cleanup_runs_total (\d+)$/m)?.[1] ?? 0);
  const before = await runs();
  await h.clock.advance(CLEANUP_INTERVAL);
  await h.cleanup.stop(); // waits for the run the interval started
  assert.equal(await runs() - before, 1, "one run");
  const left = await h.store.counts(h.clock.now());
  assert.equal(left.disconnected, 600, "every newer expired session is gone; the stuck ones wait");
});

test("hub: a stream that carries one endpoint gets only that endpoint's messages; the rest stay queued", async () => {
  const h = await createHarness();
  const ws = await h.connect("c1");
  await ws.conn.subscribe("chat");
  await ws.conn.subscribe("rooms", { room: "r1" });
  await ws.conn.close();
  const sse = await h.connect("c1", ["rooms"]);
  await h.publish("for chat");
  await h.hub.publishDetached("p", "rooms", new TextEncoder().encode('"for rooms"'), { room: "r1" });
  assert.deepEqual(sse.sink.data, ["for rooms"]);
  assert.deepEqual(sse.sink.deliveries.map((d) => d.endpoint), ["rooms"]);
  assert.equal(h.chat.queued("c1"), 1, "chat's message waits with its broker");
  // A same-node takeover by a stream that does not carry chat suspends chat's consumer.
  const ws2 = await h.connect("c1");
  assert.deepEqual(ws2.sink.data, ["for chat"], "the next connection that carries chat gets it");
  const sse2 = await h.connect("c1", ["rooms"]);
  await h.publish("chat again");
  assert.equal(sse2.sink.deliveries.length, 0);
  assert.equal(h.chat.queued("c1"), 1);
});

test("hub: a delivery whose sink throws is retried as base64, and a broken sink is closed", async () => {
  const h = await createHarness();
  const { conn, sink } = await h.connect("c1");
  await conn.subscribe("chat");
  let throws = 1;
  const deliver = sink.deliver.bind(sink);
  sink.deliver = (d) => {
    if (throws-- > 0) throw new RangeError("Maximum call stack size exceeded");
    return deliver(d);
  };
  await h.publish({ n: 1 });
  assert.equal(sink.deliveries[0].prepared.encoding, "base64");
  await h.publish({ n: 2 });
  assert.deepEqual(sink.data.slice(1), [{ n: 2 }]);
  throws = 2;
  await h.publish({ n: 3 });
  assert.equal(sink.closed?.code, CloseCode.INTERNAL_ERROR);
  assert.equal(h.chat.queued("c1"), 1, "what was not written stays with the endpoint");
  await h.publish({ n: 4 }); // and publishing goes on for everyone
});

test("hub: concurrent subscribes with different params: the second is judged against the first's binding", async () => {
  const h = await createHarness();
  const { conn } = await h.connect("c1");
  const first = conn.subscribe("rooms", { room: "a" });
  const second = conn.subscribe("rooms", { room: "b" });
  await first;
  await assert.rejects(second, (e: GatewayError) => e.code === "BAD_FRAME" && /other params/.test(e.message));
  // A first publish that cannot bind (rooms needs its param) does not fail a subscribe that can.
  const other = await h.connect("c2");
  const publishing = other.conn.publish("rooms", new TextEncoder().encode("1"));
  const subscribing = other.conn.subscribe("rooms", { room: "a" });
  await assert.rejects(publishing, /needs the param "room"/);
  await subscribing;
  assert.deepEqual([...other.conn.bound], [["rooms", { room: "a" }]]);
});
