/**
 * The broker-down policy's back-off on the Scheduler (src/core/reachability.ts): a NATS or Kafka
 * endpoint whose server does not answer at start tries again after 1 s, 2 s, 4 s... up to 30 s, on
 * the virtual clock, with one WARN for all of it; NATS then comes back with one INFO. MQTT's
 * reconnects run on mqtt.js's own timer, whose period follows the same schedule.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type { MqttClient } from "mqtt";
import { memoryLogger } from "../../src/core/logger.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { reconnectWithBackOff } from "../../src/endpoints/mqtt/producer-pool.ts";
import { eventually, RecordingHandler } from "../../src/conformance/endpoint-contract.ts";
import { makeKafkaEndpoint } from "../support/kafka/cluster.ts";
import { freePort } from "../support/net.ts";
import { makeNatsEndpoint, natsNamespace, OutsideNats, PrivateNats } from "../support/nats.ts";

const SCHEDULE = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];

/** Waits until the endpoint's next attempt is scheduled (the last one failed), and returns its delay. */
async function nextRetry(clock: VirtualClock, what: string): Promise<number> {
  await eventually(() => clock.pending === 1 && clock.nextDue! > clock.now(), what, 20_000);
  return clock.nextDue! - clock.now();
}

test("nats: a server down at start is tried again after 1, 2, 4... 30 s on the scheduler, one WARN; once up, one INFO", async () => {
  const server = await PrivateNats.start();
  await server.kill();
  const clock = new VirtualClock();
  const logger = memoryLogger();
  const ns = natsNamespace("retry");
  const endpoint = makeNatsEndpoint({ ns, servers: [server.server], scheduler: clock, logger });
  try {
    await endpoint.start(new RecordingHandler());
    assert.equal(endpoint.reachability.state, "down");
    assert.equal((await endpoint.health()).ok, false);
    const delays: number[] = [];
    for (let i = 0; i < SCHEDULE.length; i++) {
      const delay = await nextRetry(clock, `retry ${i + 1} scheduled`);
      delays.push(delay);
      await clock.advance(delay);
    }
    assert.deepEqual(delays, SCHEDULE);
    await server.resume();
    await clock.advance(await nextRetry(clock, "the retry after the server is back"));
    await eventually(() => endpoint.reachability.reachable, "connected", 10_000);
    assert.equal((await endpoint.health()).ok, true);
    assert.equal(logger.lines.filter((l) => l.startsWith("WARN")).length, 1, logger.lines.join("\n"));
    assert.equal(logger.lines.filter((l) => /^INFO .*is reachable again/.test(l)).length, 1);
  } finally {
    await endpoint.stop();
    const outside = await OutsideNats.connect(server.server).catch(() => undefined);
    await outside?.dropStream(ns.stream);
    await outside?.close();
    await server.stop();
  }
});

test("kafka: brokers down at start are tried again after 1, 2, 4... 30 s on the scheduler, one WARN, no kafkajs lines above debug", async () => {
  const clock = new VirtualClock();
  const logger = memoryLogger();
  const endpoint = makeKafkaEndpoint([`127.0.0.1:${await freePort()}`], {
    ns: "retry",
    scheduler: clock,
    logger,
  });
  try {
    await endpoint.start(new RecordingHandler());
    assert.equal(endpoint.reachability.state, "down");
    assert.equal((await endpoint.health()).ok, false);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const delay = await nextRetry(clock, `retry ${i + 1} scheduled`);
      delays.push(delay);
      await clock.advance(delay);
    }
    assert.deepEqual(delays, SCHEDULE.slice(0, 4));
    await nextRetry(clock, "the fourth retry failed");
    assert.deepEqual(logger.lines.filter((l) => !l.startsWith("DEBUG")).length, 1, logger.lines.join("\n"));
  } finally {
    await endpoint.stop();
  }
});

test("mqtt: reconnects follow the same back-off, from 1 s again after a connect", () => {
  const client = Object.assign(new EventEmitter(), { options: { reconnectPeriod: 1000 } });
  reconnectWithBackOff(client as unknown as MqttClient);
  const periods: number[] = [];
  for (let i = 0; i < 6; i++) {
    client.emit("reconnect");
    periods.push(client.options.reconnectPeriod);
  }
  assert.deepEqual(periods, SCHEDULE.slice(1));
  client.emit("connect");
  assert.equal(client.options.reconnectPeriod, 1000);
  client.emit("reconnect");
  assert.equal(client.options.reconnectPeriod, 2000);
});
