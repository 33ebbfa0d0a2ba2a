/**
 * Nothing per client stays behind once its session expired (issue 19, item 21): after every
 * session ended and the cleanup worker ran, each per-client map of the hub (connections, locks,
 * rate buckets), of the endpoints (bindings, topics, consumers, locks) and of the memory store
 * (sessions, subjects) is empty.
 *
 * - Hub, memory endpoints and memory store on the virtual clock (tests/support/hub-harness.ts).
 * - The MQTT endpoint against the shared Mosquitto: bound, suspended, resumed and unbound clients
 *   leave no consumer and no lock.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RecordingSink } from "../support/hub-harness.ts";
import { CLEANUP_INTERVAL, createHarness, WINDOW } from "../support/hub-harness.ts";
import { encodeData } from "../../src/core/payload.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import { makeMqttEndpoint, namespace } from "../support/mqtt.ts";

const CLIENTS = 300;

test("expiry: once every session expired and the cleanup ran, no per-client map of hub, endpoints or store holds anything", async () => {
  const store = new MemorySessionStore();
  const h = await createHarness({ store });
  for (let i = 0; i < CLIENTS; i++) {
    const id = `r${i}`;
    // A third with an authenticated subject (the store counts sessions per subject).
    const principal = i % 3 === 0 ? { subject: `subject-${i % 7}`, claims: {} } : undefined;
    const conn = await h.hub.connect(id, "test", { principal });
    const failures = await conn.open(new RecordingSink());
    assert.deepEqual(failures, []);
    await conn.subscribe("rooms", { room: `room-${i % 10}` });
    // Publishes fill the rate buckets (the last ones are never swept by a later publish).
    await conn.publish("chat", encodeData({ i }));
    await h.publish({ to: i }, "rooms", `outside-${i}`).catch(() => {});
    await conn.close();
  }
  const busy = h.hub.retained();
  assert.ok(busy.publishBuckets > 0, `the buckets were in use: ${JSON.stringify(busy)}`);

  await h.clock.advance(WINDOW + CLEANUP_INTERVAL * 2);
  await h.cleanup.run();
  assert.equal(await h.store.get("r0"), undefined, "expired and cleaned up");
  assert.deepEqual(h.hub.retained(), { connections: 0, locks: 0, publishBuckets: 0, byteBuckets: 0 });
  assert.deepEqual(h.chat.retained(), { bindings: 0, topics: 0 });
  assert.deepEqual(h.rooms.retained(), { bindings: 0, topics: 0 });
  assert.deepEqual(store.retained(), { sessions: 0, subjects: 0 });
  await h.cleanup.stop();
});

test("expiry: the MQTT endpoint keeps no consumer and no lock for clients suspended, resumed and unbound", async () => {
  const endpoint = makeMqttEndpoint({ ns: namespace("retained") });
  await endpoint.start({ deliver: () => true });
  try {
    const ids = Array.from({ length: 20 }, (_, i) => `retained-${crypto.randomUUID().slice(0, 8)}-${i}`);
    await Promise.all(ids.map((id) => endpoint.bindClient(id, {})));
    assert.deepEqual(endpoint.retained(), { consumers: ids.length, locks: 0 });
    await Promise.all(ids.map((id) => endpoint.suspendClient(id)));
    await Promise.all(ids.map((id) => endpoint.resumeClient(id, {})));
    await Promise.all(ids.map((id) => endpoint.suspendClient(id)));
    assert.deepEqual(endpoint.retained(), { consumers: 0, locks: 0 });
    await Promise.all(ids.map((id) => endpoint.unbindClient(id, {})));
    assert.deepEqual(endpoint.retained(), { consumers: 0, locks: 0 });
  } finally {
    await endpoint.stop();
  }
});
