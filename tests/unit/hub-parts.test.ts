/**
 * The hub's collaborators on their own (issue 21, the hub): the endpoint set that answers
 * UNKNOWN_ENDPOINT, the hub options built from the config alone, and the rate limits that now
 * all live in the publisher (connections per address and subject, the client that ignores
 * RATE_LIMITED), on the virtual clock.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HUB_TIMINGS, hubOptionsFromConfig } from "../../src/config/hub-options.ts";
import { parseConfig } from "../../src/config/load.ts";
import { EndpointSet } from "../../src/core/endpoint-set.ts";
import type { Endpoint } from "../../src/core/endpoint.ts";
import { GatewayError } from "../../src/core/errors.ts";
import { Hub } from "../../src/core/hub.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { Metrics } from "../../src/core/metrics.ts";
import { Refusals } from "../../src/core/publisher.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";

const memory = (name: string) =>
  new MemoryEndpoint({ name, logger: memoryLogger(), queueLimit: 10, queueBytes: 1024, totalBytes: 4096 });

/** An endpoint that only publishes (no per-client resources). */
const publishOnly: Endpoint = {
  name: "audit",
  start: () => Promise.resolve(),
  stop: () => Promise.resolve(),
  publish: () => Promise.resolve({}),
  health: () => Promise.resolve({ ok: true }),
};

const config = (yaml: object) => parseConfig(JSON.stringify(yaml), {}, "test").config;

function hubOn(clock: VirtualClock, policy: object = {}) {
  const c = config({ policy, endpoints: [{ name: "chat", type: "memory" }] });
  return new Hub(hubOptionsFromConfig(c, {
    store: new MemorySessionStore(),
    endpoints: [memory("chat")],
    scheduler: clock,
    logger: memoryLogger(),
    metrics: new Metrics(),
    nodeId: "n",
  }));
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return GatewayError.from(error).code;
  }
  return undefined;
};

test("hub parts: the endpoint set answers UNKNOWN_ENDPOINT and tells endpoints with per-client resources", () => {
  const chat = memory("chat");
  const set = new EndpointSet([chat, publishOnly]);
  assert.equal(set.get("chat"), chat);
  assert.equal(code(() => set.get("nope")), "UNKNOWN_ENDPOINT");
  assert.equal(set.bindable("chat"), chat);
  assert.equal(set.bindable("audit"), undefined, "an endpoint without LifecycleBinder binds nothing");
  assert.equal(set.bindable("nope"), undefined);
  assert.equal(set.find("nope"), undefined);
  assert.deepEqual(set.names, ["chat", "audit"]);
  assert.deepEqual([...set], [chat, publishOnly]);
});

test("hub parts: hubOptionsFromConfig takes every setting from the config, the schema's defaults where unset", () => {
  const parts = {
    store: new MemorySessionStore(),
    endpoints: [],
    scheduler: new VirtualClock(),
    logger: memoryLogger(),
    metrics: new Metrics(),
    nodeId: "n",
  };
  const set = hubOptionsFromConfig(
    config({
      session: { reconnection_window: "2m", lease: "20s" },
      policy: {
        max_json_depth: 9,
        publishes_per_second: 7,
        publish_bytes_per_second: 70,
        max_pending_publishes: 3,
        connections_per_second: 5,
        connections_per_second_per_address: 6,
        sessions_per_subject: 4,
      },
      delivery: { max_in_flight: 11, dedupe_ids: 12, dedupe_window: "13s", replay_bytes: 14 },
      endpoints: [{ name: "chat", type: "memory" }],
    }),
    parts,
  );
  const { policy: _policy, ...options } = set;
  assert.deepEqual(options, {
    ...parts,
    ...HUB_TIMINGS,
    reconnectionWindow: 120_000,
    lease: 20_000,
    maxJsonDepth: 9,
    maxInFlight: 11,
    dedupeIds: 12,
    dedupeWindow: 13_000,
    replayBytes: 14,
    publishesPerSecond: 7,
    publishBytesPerSecond: 70,
    maxPendingPublishes: 3,
    connectionsPerSecond: 5,
    connectionsPerSecondPerAddress: 6,
    sessionsPerSubject: 4,
  });
  const defaults = hubOptionsFromConfig(config({ endpoints: [{ name: "chat", type: "memory" }] }), parts);
  assert.equal(defaults.reconnectionWindow, 5 * 60_000);
  assert.equal(defaults.lease, 15_000);
  assert.equal(defaults.publishesPerSecond, 1000);
  assert.equal(defaults.connectionsPerSecond, 50);
  assert.equal(code(() => defaults.policy.checkPublish("c", "chat", 65_537, {})), "TOO_LARGE");
});

test("hub parts: new connections a second per address and per subject, bursts of twice as many, then RATE_LIMITED", async () => {
  const clock = new VirtualClock();
  const hub = hubOn(clock, { connections_per_second: 2, connections_per_second_per_address: 3 });
  for (let i = 0; i < 6; i++) hub.admitConnection("10.0.0.1", undefined);
  assert.equal(code(() => hub.admitConnection("10.0.0.1", undefined)), "RATE_LIMITED");
  for (let i = 0; i < 4; i++) hub.admitConnection(`10.0.1.${i}`, "alice");
  assert.equal(code(() => hub.admitConnection("10.0.2.1", "alice")), "RATE_LIMITED");
  assert.equal(
    code(() => hub.admitConnection("10.0.2.1", "bob")),
    undefined,
    "another subject has its own bucket",
  );
  await clock.advance(1000);
  assert.equal(code(() => hub.admitConnection("10.0.0.1", "alice")), undefined, "refilled a second later");
});

test("hub parts: a socket refused more than its publish rate in one second keeps pushing; the count starts over each second", async () => {
  const clock = new VirtualClock();
  const refusals = new Refusals(clock, 3);
  assert.deepEqual([1, 2, 3, 4].map(() => refusals.keepsPushing()), [false, false, false, true]);
  await clock.advance(1000);
  assert.equal(refusals.keepsPushing(), false);
  assert.equal(hubOn(clock, { publishes_per_second: 1 }).refusals().keepsPushing(), false);
});
