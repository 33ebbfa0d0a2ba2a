/**
 * The Kafka endpoint against a private Apache Kafka broker of its own (tests/support/kafka-broker/,
 * Kafka's default group settings), for what only a fresh or restarted real broker does: its group
 * coordinator is not ready for a few seconds after start, and a broker killed and started again
 * keeps what it acknowledged. Skipped where Java is not installed.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import process from "node:process";
import { after, before, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { eventually, RecordingHandler } from "../conformance/endpoint-contract.ts";
import { kafkaNamespace, makeKafkaEndpoint, outsideProducer } from "../support/kafka/cluster.ts";
import { freePort } from "../support/net.ts";
import { ROOT } from "../support/runtime.ts";

const java = spawnSync("java", ["-version"]).status === 0;
const script = (name: string) => `${ROOT}/tests/support/kafka-broker/${name}`;
let port = 0;
let controllerPort = 0;
let dir = "";
const run = (name: string, env: Record<string, string>) =>
  execFileSync(script(name), [String(port), dir], { stdio: "pipe", env: { ...process.env, ...env } });
const start = () => run("start.sh", { CONTROLLER_PORT: String(controllerPort) });
const kill = () => run("stop.sh", { KILL: "1" });

before(async () => {
  if (!java) return;
  port = await freePort();
  dir = `/tmp/kafka-broker-test-${port}`;
  controllerPort = await freePort();
  start();
});
after(() => {
  if (!java) return;
  kill();
  rmSync(dir, { recursive: true, force: true });
});

const id = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

test(
  "kafka (private broker): the first bind on a broker just started waits for its group coordinator, then delivers",
  {
    skip: !java && "java is not installed",
  },
  async () => {
    const ns = kafkaNamespace("fresh");
    const brokers = [`127.0.0.1:${port}`];
    const endpoint = makeKafkaEndpoint(brokers, { ns });
    const handler = new RecordingHandler();
    await endpoint.start(handler);
    const outside = new Kafka({ clientId: "outside", brokers, logLevel: logLevel.NOTHING });
    const producer = await outsideProducer(outside);
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
  },
);

test(
  "kafka (private broker): killed and started again, the bound client's fetch comes back by itself; nothing is lost",
  {
    skip: !java && "java is not installed",
  },
  async () => {
    const ns = kafkaNamespace("restart");
    const brokers = [`127.0.0.1:${port}`];
    const endpoint = makeKafkaEndpoint(brokers, { ns });
    const handler = new RecordingHandler();
    await endpoint.start(handler);
    const outside = new Kafka({ clientId: "outside", brokers, logLevel: logLevel.NOTHING });
    const client = id("r");
    const topic = `${ns}.${client}.down`;
    const produce = async (values: string[]) => {
      const producer = await outsideProducer(outside);
      await producer.send({ topic, messages: values.map((value) => ({ value })) });
      await producer.disconnect();
    };
    try {
      await endpoint.bindClient(client, {});
      await produce(range("before", 10));
      await eventually(() => handler.of(client).length === 10, "the first ten");
      // No clean shutdown: the fetch in flight breaks, and the client stays bound throughout.
      kill();
      start();
      await produce(range("after", 10));
      await eventually(() => handler.of(client).length >= 20, "the ten after the restart", 60_000);
      assert.deepEqual(handler.of(client), [...range("before", 10), ...range("after", 10)]);
      await endpoint.unbindClient(client);
    } finally {
      await endpoint.stop();
    }
  },
);
