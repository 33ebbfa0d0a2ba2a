/**
 * The Kafka endpoint against a private Apache Kafka broker of its own (tests/support/kafka-broker/,
 * Kafka's default group settings, free ports), for what only a broker this file may break does:
 * its group coordinator is not ready for a few seconds after start; a broker that stops
 * answering in the middle of requests (SIGSTOP, with its connections open) and comes back at once
 * (SIGCONT); a broker killed (kill -9) under load and started again, which keeps what it
 * acknowledged. Needs Java 17 (start.sh says so when it is missing).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import process from "node:process";
import { after, before, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import type { EachMessagePayload } from "kafkajs";
import type { GatewayError } from "../../src/core/errors.ts";
import { encodeText } from "../../src/core/payload.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { eventually, RecordingHandler } from "../conformance/endpoint-contract.ts";
import { kafkaNamespace, makeKafkaEndpoint, outsideProducer } from "../support/kafka/cluster.ts";
import { freePort } from "../support/net.ts";
import { ROOT } from "../support/runtime.ts";

const script = (name: string) => `${ROOT}/tests/support/kafka-broker/${name}`;
let port = 0;
let controllerPort = 0;
let dir = "";
let brokers: string[] = [];
const run = (name: string, env: Record<string, string>) =>
  execFileSync(script(name), [String(port), dir], { stdio: "pipe", env: { ...process.env, ...env } });
const start = () => run("start.sh", { CONTROLLER_PORT: String(controllerPort) });
const kill = () => run("stop.sh", { KILL: "1" });
/** Stops (SIGSTOP) or continues (SIGCONT) the broker's process: its sockets stay open meanwhile. */
const signal = (name: "SIGSTOP" | "SIGCONT") =>
  process.kill(Number(readFileSync(`${dir}/broker.pid`, "utf8").trim()), name);

before(async () => {
  port = await freePort();
  dir = `/tmp/kafka-broker-test-${port}`;
  controllerPort = await freePort();
  brokers = [`127.0.0.1:${port}`];
  start();
});
after(() => {
  try {
    signal("SIGCONT");
  } catch { /* not running */ }
  kill();
  rmSync(dir, { recursive: true, force: true });
});

const id = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
const outcome = (p: Promise<unknown>) => p.then(() => "receipt", (e: GatewayError) => e.code);
const outside = () => new Kafka({ clientId: "outside", brokers, logLevel: logLevel.NOTHING });

/** Every value in `topic` from its beginning, read by a plain consumer until `last` came. */
async function readTopic(topic: string, last: string): Promise<string[]> {
  const values: string[] = [];
  const consumer = outside().consumer({ groupId: id("reader"), maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }: EachMessagePayload) => {
        values.push(message.value!.toString());
        return Promise.resolve();
      },
    });
    await eventually(() => values.includes(last), `"${last}" in ${topic}`, 30_000);
  } finally {
    await consumer.disconnect();
  }
  return values;
}

test("kafka (private broker): the first bind on a broker just started waits for its group coordinator, then delivers", async () => {
  const ns = kafkaNamespace("fresh");
  const endpoint = makeKafkaEndpoint(brokers, { ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const producer = await outsideProducer(outside());
  const client = id("f");
  try {
    // A fresh broker answers NOT_COORDINATOR while it loads __consumer_offsets.
    await endpoint.bindClient(client, {});
    await producer.send({ topic: `${ns}.${client}.down`, messages: [{ value: "first" }] });
    await eventually(() => handler.of(client).length === 1, "the first message");
    assert.deepEqual(handler.of(client), ["first"]);
    await endpoint.unbindClient(client);
  } finally {
    await producer.disconnect();
    await endpoint.stop();
  }
});

test("kafka (private broker): past publish_timeout on a broker that stopped answering, a queued publish is withdrawn, a sent one OUTCOME_UNKNOWN", async () => {
  const ns = kafkaNamespace("timeout");
  const clock = new VirtualClock();
  // Only the virtual clock ends these waits: kafkajs (real time) waits for the one it sent.
  const timeout = 60_000;
  const endpoint = makeKafkaEndpoint(brokers, { ns, publishTimeout: timeout, scheduler: clock });
  await endpoint.start(new RecordingHandler());
  const client = id("t");
  let stopped = false;
  try {
    await endpoint.publish(client, { payload: encodeText("before") }, {});
    signal("SIGSTOP");
    stopped = true;
    // One key: the first is handed to kafkajs, the others wait in its lane behind it.
    const outcomes = range("t", 4).map((m) =>
      outcome(endpoint.publish(client, { payload: encodeText(m) }, {}))
    );
    await clock.advance(timeout);
    assert.deepEqual(await Promise.all(outcomes), [
      "OUTCOME_UNKNOWN",
      "UPSTREAM_UNAVAILABLE",
      "UPSTREAM_UNAVAILABLE",
      "UPSTREAM_UNAVAILABLE",
    ]);
    signal("SIGCONT");
    stopped = false;
    // Confirmed once kafkajs is done with the one it had: the lane has nothing else to send.
    let confirmed = false;
    await eventually(
      () => {
        endpoint.publish(client, { payload: encodeText("after") }, {}).then(
          () => (confirmed = true),
          () => {},
        );
        return confirmed;
      },
      "publishing to recover",
      30_000,
    );
    const values = await readTopic(`${ns}.${client}.up`, "after");
    assert.equal(values[0], "before");
    for (const withdrawn of ["t2", "t3", "t4"]) {
      assert.ok(!values.includes(withdrawn), `${withdrawn} was sent`);
    }
  } finally {
    if (stopped) signal("SIGCONT");
    await endpoint.stop();
  }
});

test("kafka (private broker): killed under load and started again: publishes answer a receipt, UPSTREAM_UNAVAILABLE or OUTCOME_UNKNOWN, health says down, the bound client's fetch comes back by itself, nothing acknowledged is lost", async () => {
  const ns = kafkaNamespace("restart");
  // Longer than kafkajs's retries (about 1.5 s): its refusal, not the timeout, ends most publishes.
  const endpoint = makeKafkaEndpoint(brokers, { ns, publishTimeout: 5000, connectTimeout: 500 });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const client = id("r");
  const topic = `${ns}.${client}.down`;
  const publisher = id("p");
  const produce = async (values: string[]) => {
    const producer = await outsideProducer(outside());
    await producer.send({ topic, messages: values.map((value) => ({ value })) });
    await producer.disconnect();
  };
  // Four publishes at a time, one after another, for the whole test: the load the kill cuts.
  const outcomes = new Map<string, string>();
  let publishing = true;
  let n = 0;
  const lanes = Array.from({ length: 4 }, async () => {
    while (publishing) {
      const value = `m${++n}`;
      outcomes.set(value, await outcome(endpoint.publish(publisher, { payload: encodeText(value) }, {})));
    }
  });
  const receipts = () => [...outcomes.values()].filter((o) => o === "receipt").length;
  try {
    await endpoint.bindClient(client, {});
    await produce(range("before", 10));
    await eventually(
      () => handler.of(client).length === 10 && receipts() >= 20,
      "the first ten, and receipts",
    );
    // No clean shutdown: the requests in flight break, and the client stays bound throughout.
    kill();
    await eventually(
      () => [...outcomes.values()].some((o) => o !== "receipt"),
      "a publish to fail",
      30_000,
    );
    assert.equal((await endpoint.health()).ok, false, "health says the brokers are down");
    const before = receipts();
    start();
    await produce(range("after", 10));
    await eventually(() => handler.of(client).length >= 20, "the ten after the restart", 60_000);
    assert.deepEqual(handler.of(client), [...range("before", 10), ...range("after", 10)]);
    await eventually(() => receipts() > before + 20, "publishes to get receipts again", 60_000);
    publishing = false;
    await Promise.all(lanes);
    const codes = new Set(outcomes.values());
    for (const code of codes) {
      assert.ok(["receipt", "UPSTREAM_UNAVAILABLE", "OUTCOME_UNKNOWN"].includes(code), `answered ${code}`);
    }
    // Every publish the broker acknowledged (a receipt) is in the topic after the restart.
    const acked = [...outcomes].filter(([, o]) => o === "receipt").map(([v]) => v);
    const last = acked.at(-1)!;
    const stored = new Set(await readTopic(`${ns}.${publisher}.up`, last));
    assert.deepEqual(acked.filter((v) => !stored.has(v)), [], "acknowledged and lost");
    await endpoint.unbindClient(client);
  } finally {
    publishing = false;
    await Promise.all(lanes);
    await endpoint.stop();
  }
});
