/**
 * The broker-down policy's pieces (src/core/reachability.ts): the back-off schedule, and one log
 * line per change of state however often the same state is reported.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryLogger } from "../../src/core/logger.ts";
import { BrokerReachability, retryDelay } from "../../src/core/reachability.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";

test("retryDelay: 1 s doubling to 30 s, never more", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 100].map(retryDelay), [
    1000,
    2000,
    4000,
    8000,
    16_000,
    30_000,
    30_000,
    30_000,
  ]);
  assert.equal(retryDelay(-1), 1000);
});

test("BrokerReachability: one WARN going down, one INFO coming back, nothing for repeats", async () => {
  const clock = new VirtualClock();
  const logger = memoryLogger();
  const reach = new BrokerReachability({
    component: "MQTT",
    endpoint: "sensors",
    target: "mqtt://127.0.0.1:1999",
    logger,
    scheduler: clock,
  });
  assert.equal(reach.state, "starting");
  assert.equal(reach.reachable, false);
  reach.down("connect ECONNREFUSED");
  for (let i = 0; i < 10; i++) reach.down(`attempt ${i}`);
  assert.equal(reach.reason, "connect ECONNREFUSED");
  await clock.advance(12_000);
  reach.up();
  reach.up();
  assert.equal(reach.reachable, true);
  assert.equal(reach.reason, undefined);
  assert.deepEqual(logger.lines, [
    "WARN [MQTT] Endpoint sensors: mqtt://127.0.0.1:1999 is unreachable (connect ECONNREFUSED); retrying with back-off, not ready until it answers",
    "INFO [MQTT] Endpoint sensors: mqtt://127.0.0.1:1999 is reachable again (after 12 s)",
  ]);
});

test("BrokerReachability: the first connect at start logs nothing; a later outage logs again", () => {
  const logger = memoryLogger();
  const reach = new BrokerReachability({
    component: "NATS",
    endpoint: "events",
    target: "127.0.0.1:4222",
    logger,
    scheduler: new VirtualClock(),
  });
  reach.up();
  assert.equal(logger.lines.length, 0);
  reach.down("disconnected");
  reach.up();
  reach.down("disconnected again");
  assert.deepEqual(logger.lines.map((l) => l.split(" ")[0]), ["WARN", "INFO", "WARN"]);
});
