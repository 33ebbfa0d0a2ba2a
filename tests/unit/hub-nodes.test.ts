/**
 * Several nodes sharing one session store (DESIGN.md section 4, node death), on virtual clocks:
 * each node is a hub with a clock of its own, so a crashed node is one whose clock stops.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CloseCode, type GatewayError } from "../../src/core/errors.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import { CLEANUP_INTERVAL, createHarness, LEASE, WINDOW } from "../support/hub-harness.ts";

async function cluster() {
  const store = new MemorySessionStore();
  const a = await createHarness({ store, nodeId: "node-a", clock: new VirtualClock() });
  const b = await createHarness({ store, nodeId: "node-b", clock: new VirtualClock() });
  /** Advances the clocks of the given (live) nodes together, a second at a time. */
  const advance = async (ms: number, nodes = [a, b]) => {
    for (let done = 0; done < ms; done += 1000) {
      for (const node of nodes) await node.clock.advance(Math.min(1000, ms - done));
    }
  };
  return { store, a, b, advance };
}

const unbinds = (logs: string[], id: string) =>
  logs.filter((l) => l.includes(`[CleanupWorker] Unbound client ${id} from endpoint`)).length;

test("nodes: a node renews its leases, so a long-connected client never expires", async () => {
  const { store, a, b, advance } = await cluster();
  await (await a.connect("c1")).conn.subscribe("chat");
  await advance(3 * WINDOW);
  const session = await store.get("c1");
  assert.equal(session?.state, "connected");
  assert.equal(session?.nodeId, "node-a");
  assert.ok(session!.leaseUntil! > a.clock.now(), "lease runs ahead of the clock");
  assert.equal(session?.reconnectionDeadline, session!.leaseUntil! + WINDOW);
  assert.equal(unbinds(b.logger.lines, "c1") + unbinds(a.logger.lines, "c1"), 0);
});

test("nodes: a crashed node's client resumes on another node within lease + window", async () => {
  const { store, a, b, advance } = await cluster();
  const first = await a.connect("c1");
  await first.conn.subscribe("chat");
  await advance(10_000);
  const held = await store.get("c1");
  // Node A dies: its clock stops, so it renews nothing more.
  await advance(held!.leaseUntil! - b.clock.now() + WINDOW - 5000, [b]);
  const second = await b.connect("c1");
  assert.equal(second.conn.resumed, true);
  assert.ok(second.conn.epoch > first.conn.epoch);
  assert.deepEqual([...second.conn.bound.keys()], ["chat"]);
  const session = await store.get("c1");
  assert.equal(session?.nodeId, "node-b");
  assert.equal(session?.state, "connected");
});

test("nodes: a crashed node's client that does not come back is unbound once by another node", async () => {
  const { store, a, b, advance } = await cluster();
  await (await a.connect("gone")).conn.subscribe("chat");
  const leaseUntil = (await store.get("gone"))!.leaseUntil!;
  await advance(leaseUntil - b.clock.now() + WINDOW - 1000, [b]);
  assert.ok(await store.get("gone"), "still inside lease + window");
  await advance(1000 + CLEANUP_INTERVAL, [b]);
  assert.equal(await store.get("gone"), undefined);
  assert.equal(unbinds(b.logger.lines, "gone"), 1);
  assert.equal(unbinds(a.logger.lines, "gone"), 0);
});

test("nodes: connecting to node B takes over from node A, which closes with 4409 and lets go", async () => {
  const { store, a, b, advance } = await cluster();
  const onA = await a.connect("c1");
  await onA.conn.subscribe("chat");
  const onB = await b.connect("c1");
  assert.equal(onB.conn.resumed, true);
  assert.equal(onB.conn.epoch, onA.conn.epoch + 1);
  await advance(LEASE);
  assert.equal(onA.sink.closed?.code, CloseCode.TAKEN_OVER);
  assert.equal(a.hub.connectionCount, 0);
  assert.ok(a.logger.lines.some((l) => l.includes("Client c1 taken over elsewhere")));
  assert.equal(onB.sink.closed, undefined);
  const session = await store.get("c1");
  assert.equal(session?.nodeId, "node-b", "the old node writes nothing");
  assert.equal(session?.epoch, onB.conn.epoch);
  await assert.rejects(
    onA.conn.subscribe("rooms", { room: "r" }),
    (e: GatewayError) => e.code === "FORBIDDEN",
  );
});

test("nodes: graceful shutdown marks sessions disconnected at once, so they resume elsewhere now", async () => {
  const { store, a, b } = await cluster();
  const onA = await a.connect("c1");
  await onA.conn.subscribe("chat");
  await a.hub.shutdown();
  assert.equal(onA.sink.closed?.code, CloseCode.GOING_AWAY);
  const session = await store.get("c1");
  assert.equal(session?.state, "disconnected");
  assert.equal(session?.reconnectionDeadline, a.clock.now() + WINDOW);
  const onB = await b.connect("c1");
  assert.equal(onB.conn.resumed, true);
});

test("nodes: two cleanup workers at once unbind each expired session exactly once", async () => {
  const { store, a, b, advance } = await cluster();
  const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
  for (const [i, id] of ids.entries()) {
    const { conn } = await (i % 2 ? a : b).connect(id);
    await conn.subscribe("chat");
    await conn.close();
  }
  await advance(WINDOW + 1000);
  await Promise.all([a.cleanup.run(), b.cleanup.run()]);
  for (const id of ids) {
    assert.equal(unbinds(a.logger.lines, id) + unbinds(b.logger.lines, id), 1, id);
    assert.equal(await store.get(id), undefined);
  }
});

test("nodes: a client coming back while another node cleans its expired session is told to retry", async () => {
  const { store, a, b, advance } = await cluster();
  const { conn } = await a.connect("c1");
  await conn.close();
  await advance(WINDOW + 1000);
  assert.ok(await store.claimExpired("c1", a.clock.now(), 60_000), "node A's cleanup holds it");
  await assert.rejects(
    b.connect("c1"),
    (e: GatewayError) => e.code === "STORE_UNAVAILABLE" && e.status === 503 && /cleaned up/.test(e.message),
  );
});
