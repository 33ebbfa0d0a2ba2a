/**
 * Chaos on Kafka (DESIGN.md sections 5 and 11), the companion of chaos.test.ts: clients reach the
 * gateway through the cutting proxy (each connection cut after a random 0.3-2 s, the bytes in
 * flight thrown away, back in 0-500 ms with the same client ID) and are bound to a Kafka endpoint
 * on Apache Kafka (KAFKA_BROKERS), where an outside kafkajs producer sends each client's
 * topic `<ns>.<clientId>.down` (key: the client ID) a numbered stream at 200 msg/s.
 *
 * With end-to-end acks (`ack=1`) nothing may be lost, and every copy of a message past the first
 * must be flagged `redelivered`: the gateway flags offsets at or below one it delivered, and
 * everything that was in the topic when a consumer resumed without that knowledge.
 *
 * The gateway runs under the runtime that runs the test. `CHAOS_SECONDS` and `CHAOS_CLIENTS`
 * scale a run (defaults 10 and 10).
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, test } from "node:test";
import type { Producer } from "kafkajs";
import {
  assertNoLossAllFlagged,
  chaosSummary,
  paceNumbered,
  runChaos,
  WsChaosClient,
} from "../support/chaos-clients.ts";
import { ChaosProxy } from "../support/chaos-proxy.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { kafkaNamespace, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { currentRuntime } from "../support/runtime.ts";

const CLIENTS = Number(process.env.CHAOS_CLIENTS ?? 10);
const SECONDS = Number(process.env.CHAOS_SECONDS ?? 10);
const RATE = 200;

const ns = kafkaNamespace("chaos");

/** The endpoint as in kafka-scenarios.ts, with a window long enough that no session expires. */
const config = (brokers: string[]) => `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 5s }
session: { type: memory, reconnection_window: 60s, cleanup_interval: 5s }
endpoints:
  - name: orders
    type: kafka
    brokers: [${brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${ns}.{clientId}.up"
    subscribe_topic: "${ns}.{clientId}.down"
    fetch_max_wait: 100ms
`;

let kafka: TestKafka;
let gw: Gateway;
before(async () => {
  kafka = await startKafka();
  gw = await startGateway(currentRuntime, config(kafka.brokers));
});
after(async () => {
  await gw?.stop("SIGKILL");
  await kafka?.stop();
});

/** Produces each client's numbered stream, one batch over all topics per tick, in order. */
function produceStreams(producer: Producer, clientIds: string[], total: number): Promise<void> {
  return paceNumbered(clientIds.length, RATE, total, async (due) => {
    const byTopic = new Map<number, Array<{ key: string; value: string }>>();
    for (const [i, n] of due) {
      const messages = byTopic.get(i) ?? [];
      messages.push({ key: clientIds[i], value: JSON.stringify({ n }) });
      byTopic.set(i, messages);
    }
    await producer.sendBatch({
      topicMessages: [...byTopic].map(([i, messages]) => ({ topic: `${ns}.${clientIds[i]}.down`, messages })),
    });
  });
}

test(
  `chaos (${currentRuntime}): Kafka, WebSocket with end-to-end acks through a cutting proxy: 0 lost, duplicates flagged redelivered`,
  { timeout: 120_000 },
  async () => {
    const proxy = await ChaosProxy.start(Number(new URL(gw.http).port));
    const run = crypto.randomUUID().slice(0, 8);
    const base = `http://127.0.0.1:${proxy.port}`;
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) =>
        new WsChaosClient({
          base,
          clientId: `chaos-kafka-${run}-${i}`,
          endpoint: "orders",
          ack: true,
          ackEveryMs: 20,
        }),
    );
    // The clients' topics do not exist yet: their first binds make them, ten at once.
    const producer = await outsideProducer(kafka.kafka);
    let r;
    try {
      r = await runChaos({
        clients,
        proxies: [proxy],
        rate: RATE,
        trafficSeconds: SECONDS,
        publish: (total) => produceStreams(producer, clients.map((c) => c.clientId), total),
      });
    } catch (error) {
      console.log(`gateway output (last 6000 characters):\n${gw.output().slice(-6000)}`);
      throw error;
    } finally {
      await producer.disconnect();
      await proxy.stop();
    }
    console.log(chaosSummary(currentRuntime, "kafka, ws + acks", r));
    assert.ok(r.cuts >= CLIENTS, `the proxy cut connections (${r.cuts})`);
    assertNoLossAllFlagged(r);
  },
);
