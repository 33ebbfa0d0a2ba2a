/**
 * The MQTT endpoint against real Mosquitto: broker-side sessions, the producer pool, failure and
 * recovery. Tests that break the broker use a private instance on a free port.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GatewayError } from "../../src/core/errors.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { encodeText } from "../../src/core/payload.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import type { MqttEndpointOptions } from "../../src/endpoints/mqtt/mqtt-endpoint.ts";
import { eventually, RecordingHandler } from "../conformance/endpoint-contract.ts";
import type { OptionalKeys, Same } from "../conformance/endpoint-contract.ts";
import {
  brokerHasSession,
  freePort,
  makeMqttEndpoint,
  namespace,
  outsideClient,
  PrivateMosquitto,
} from "../support/mqtt.ts";

const id = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

test("mqtt: suspend keeps the broker session; unbind ends it for good", async () => {
  const ns = namespace("session");
  const endpoint = makeMqttEndpoint({ ns });
  await endpoint.start(new RecordingHandler());
  const client = id("c");
  try {
    await endpoint.bindClient(client, {});
    await endpoint.suspendClient(client);
    assert.equal(await brokerHasSession(endpoint.consumerId(client)), true);
    // The probe above ended that session (expiry 0): bind again for the unbind check.
    await endpoint.bindClient(client, {});
    await endpoint.unbindClient(client, {});
    assert.equal(await brokerHasSession(endpoint.consumerId(client)), false);
  } finally {
    await endpoint.stop();
  }
});

test("mqtt: 50 bound clients share exactly producer_pool_size publish connections", async () => {
  const ns = namespace("pool");
  const endpoint = makeMqttEndpoint({ ns, producerPoolSize: 5 });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const clients = Array.from({ length: 50 }, () => id("p"));
  const outside = await outsideClient();
  const seen: string[] = [];
  await outside.subscribeAsync(`${ns}/+/up`, { qos: 1 });
  outside.on("message", (topic) => seen.push(topic));
  try {
    await Promise.all(clients.map((c) => endpoint.bindClient(c, {})));
    assert.equal(endpoint.consumerCount, 50);
    assert.equal(endpoint.producerCount, 5);
    for (const c of clients) {
      const receipt = await endpoint.publish(c, { payload: encodeText(`from ${c}`) }, {});
      assert.equal(receipt.meta?.topic, `${ns}/${c}/up`);
    }
    await eventually(() => seen.length >= 50, "50 publishes at the outside subscriber");
    assert.equal(endpoint.producerCount, 5, "publishing did not open connections");
  } finally {
    await Promise.all(clients.map((c) => endpoint.unbindClient(c, {})));
    await outside.endAsync();
    await endpoint.stop();
  }
});

test("mqtt: one client's publishes reach the broker in order", async () => {
  const ns = namespace("order");
  const endpoint = makeMqttEndpoint({ ns });
  await endpoint.start(new RecordingHandler());
  const outside = await outsideClient();
  const got: string[] = [];
  await outside.subscribeAsync(`${ns}/+/up`, { qos: 1 });
  outside.on("message", (_t, payload) => got.push(payload.toString()));
  try {
    await Promise.all(
      range("m", 200).map((m) => endpoint.publish("orderly", { payload: encodeText(m) }, {})),
    );
    await eventually(() => got.length >= 200, "200 messages");
    assert.deepEqual(got, range("m", 200));
  } finally {
    await outside.endAsync();
    await endpoint.stop();
  }
});

test("mqtt: a disconnect during a burst in flight loses nothing", async () => {
  const ns = namespace("burst");
  const endpoint = makeMqttEndpoint({ ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const client = id("b");
  const outside = await outsideClient();
  try {
    await endpoint.bindClient(client, {});
    // Under the shared broker's default queue limit (max_queued_messages 1000).
    const burst = range("b", 800);
    // The client goes away right after its 50th message, with the rest of the burst in flight.
    let suspended: Promise<void> | undefined;
    handler.onDelivered = (c, count) => {
      if (count === 50) suspended = endpoint.suspendClient(c);
    };
    const sending = Promise.all(
      burst.map((m) => outside.publishAsync(`${ns}/${client}/down`, m, { qos: 1 })),
    );
    await eventually(() => suspended !== undefined, "the burst to start arriving");
    await suspended;
    handler.onDelivered = undefined;
    assert.ok(handler.of(client).length < burst.length, "the suspend cut the burst");
    await sending;
    await endpoint.resumeClient(client, {});
    await eventually(() => new Set(handler.of(client)).size >= burst.length, "every message of the burst");
    const firstSeen = [...new Set(handler.of(client))];
    assert.deepEqual(firstSeen, burst, "all of it, in broker order");
    await endpoint.unbindClient(client, {});
  } finally {
    await outside.endAsync();
    await endpoint.stop();
  }
});

test("mqtt: broker restart: publishes fail fast while it is down, then everything recovers", async () => {
  const broker = await PrivateMosquitto.start();
  const ns = namespace("restart");
  const endpoint = makeMqttEndpoint({ ns, url: broker.url, producerPoolSize: 2 });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const clients = [id("r1"), id("r2")];
  try {
    for (const c of clients) await endpoint.bindClient(c, {});
    await broker.pause();
    // Once the pool has seen its connections drop, publishes must not wait for anything.
    await eventually(() => endpoint.producersUp === 0, "the pool to notice the broker is gone");
    const started = Date.now();
    await assert.rejects(
      endpoint.publish(clients[0], { payload: encodeText("while down") }, {}),
      (e: GatewayError) => e.code === "UPSTREAM_UNAVAILABLE",
    );
    assert.ok(Date.now() - started < 500, "fails fast, not after a timeout");
    assert.equal((await endpoint.health()).ok, false);

    await broker.resume();
    await eventually(() => endpoint.consumerCount === 2 && endpoint.producerCount === 2, "reconnection");
    let published = false;
    await eventually(() => {
      endpoint.publish(clients[0], { payload: encodeText("probe") }, {}).then(
        () => (published = true),
        () => {},
      );
      return published;
    }, "publishing to recover");
    assert.equal((await endpoint.health()).ok, true);

    const outside = await outsideClient(broker.url);
    for (const c of clients) {
      for (const m of range("after", 20)) await outside.publishAsync(`${ns}/${c}/down`, m, { qos: 1 });
    }
    await outside.endAsync();
    for (const c of clients) {
      await eventually(() => handler.of(c).length >= 20, `deliveries to ${c} after the restart`);
      assert.deepEqual(handler.of(c), range("after", 20));
    }
  } finally {
    await endpoint.stop();
    await broker.stop();
  }
});

test("mqtt: past the broker's max_queued_messages Mosquitto drops, unseen by the gateway (docs: size it for the window)", async () => {
  const broker = await PrivateMosquitto.start({ maxQueuedMessages: 10 });
  const ns = namespace("queue-limit");
  const endpoint = makeMqttEndpoint({ ns, url: broker.url });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const client = id("q");
  const outside = await outsideClient(broker.url);
  try {
    await endpoint.bindClient(client, {});
    await endpoint.suspendClient(client);
    for (const m of range("away", 30)) await outside.publishAsync(`${ns}/${client}/down`, m, { qos: 1 });
    await endpoint.resumeClient(client, {});
    await eventually(() => handler.of(client).length >= 10, "the queued messages after the resume");
    // A probe after the queued ones: once it is here, nothing more of the 30 is coming.
    await outside.publishAsync(`${ns}/${client}/down`, "probe", { qos: 1 });
    await eventually(() => handler.of(client).includes("probe"), "the probe");
    assert.deepEqual(handler.of(client), [...range("away", 10), "probe"], "the first 10 kept, 20 dropped");
  } finally {
    await outside.endAsync();
    await endpoint.stop();
    await broker.stop();
  }
});

test("mqtt: a bind or resume that cannot reach the broker leaves no binding behind", async () => {
  const url = `mqtt://127.0.0.1:${await freePort()}`;
  const endpoint = makeMqttEndpoint({
    ns: namespace("nobind"),
    url,
    connectTimeout: 300,
    producerPoolSize: 1,
  });
  await endpoint.start(new RecordingHandler());
  try {
    const unavailable = (e: GatewayError) => e.code === "UPSTREAM_UNAVAILABLE";
    await assert.rejects(endpoint.bindClient("c1", {}), unavailable);
    assert.equal(endpoint.bindingCount(), 0, "a failed bind is not counted");
    await assert.rejects(endpoint.resumeClient("c1", {}), unavailable);
    assert.equal(endpoint.bindingCount(), 0, "a failed resume is not counted");
  } finally {
    await endpoint.stop();
  }
});

test("mqtt: an unbind that cannot reach the broker says why in the debug log", async () => {
  const url = `mqtt://127.0.0.1:${await freePort()}`;
  const logger = memoryLogger();
  const endpoint = makeMqttEndpoint({
    ns: namespace("nounbind"),
    url,
    connectTimeout: 300,
    producerPoolSize: 1,
    logger,
  });
  await endpoint.start(new RecordingHandler());
  try {
    await assert.rejects(
      endpoint.unbindClient("c1", {}),
      (e: GatewayError) => e.code === "UPSTREAM_UNAVAILABLE",
    );
    assert.ok(
      logger.lines.some((l) => /^DEBUG \[MQTT\] sensors: ending the session of c1: .*ECONNREFUSED/.test(l)),
      `a debug line naming the client and the cause, got ${JSON.stringify(logger.lines)}`,
    );
  } finally {
    await endpoint.stop();
  }
});

/** Settles as `promise` does, or fails after `ms` of real time: what a virtual clock must end must not wait. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms of real time`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A private broker, frozen once the endpoint's pool is up, and an endpoint on a virtual clock. */
async function frozenBroker(label: string, timeout: number) {
  const broker = await PrivateMosquitto.start();
  const clock = new VirtualClock();
  const endpoint = makeMqttEndpoint({
    ns: namespace(label),
    url: broker.url,
    producerPoolSize: 1,
    connectTimeout: timeout,
    publishTimeout: timeout,
    scheduler: clock,
  });
  await endpoint.start(new RecordingHandler());
  assert.equal(endpoint.producersUp, 1);
  broker.freeze();
  const done = async () => {
    broker.thaw();
    const stopping = endpoint.stop();
    await clock.advance(timeout);
    await stopping;
    await broker.stop();
  };
  return { endpoint, clock, done };
}

const outcome = (p: Promise<unknown>) => p.then(() => "done", (e: GatewayError) => e.code);

test("mqtt: the endpoint's timeouts run on its scheduler: a bind to a frozen broker ends on the virtual clock", async () => {
  // Long enough that only the virtual clock can end the wait (mqtt.js's own timers are real).
  const timeout = 60_000;
  const { endpoint, clock, done } = await frozenBroker("frozen-bind", timeout);
  try {
    const bound = outcome(endpoint.bindClient("c1", {}));
    await clock.advance(timeout);
    assert.equal(await within(bound, 2000, "the bind"), "UPSTREAM_UNAVAILABLE");
    assert.equal(endpoint.bindingCount(), 0);
  } finally {
    await done();
  }
});

test("mqtt: a publish written to a broker that stops answering is OUTCOME_UNKNOWN after publish_timeout", async () => {
  const timeout = 60_000;
  const { endpoint, clock, done } = await frozenBroker("frozen-publish", timeout);
  try {
    const published = outcome(endpoint.publish("c1", { payload: encodeText("unconfirmed") }, {}));
    await clock.advance(timeout);
    // Written to the broker's connection, never confirmed: it may or may not have arrived.
    assert.equal(await within(published, 2000, "the publish"), "OUTCOME_UNKNOWN");
  } finally {
    await done();
  }
});

test("mqtt: only options without a default are optional: the config schema writes the defaults once", () => {
  const onlyUnset: Same<OptionalKeys<MqttEndpointOptions>, "username" | "password"> = true;
  assert.equal(onlyUnset, true);
});
