/**
 * Chaos on Kafka (DESIGN.md sections 5 and 11), the companion of chaos.test.ts: clients reach the
 * gateway through the cutting proxy (each connection cut after a random 0.3-2 s, the bytes in
 * flight thrown away, back in 0-500 ms with the same client ID) and are bound to a Kafka endpoint
 * on the test broker (or KAFKA_BROKERS), where an outside kafkajs producer sends each client's
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
import type { Producer } from "kafkajs";
import {
  assertNoLossAllFlagged,
  chaosSummary,
  paceNumbered,
  WsChaosClient,
} from "../support/chaos-clients.ts";
import { CHAOS_RATE, chaosSuite } from "../support/chaos-suite.ts";
import { kafkaNamespace, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { currentRuntime } from "../support/runtime.ts";

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
    session_timeout: 10s
    fetch_max_wait: 100ms
`;

let kafka: TestKafka;
const suite = chaosSuite({
  configs: async () => {
    kafka = await startKafka();
    return [config(kafka.brokers)];
  },
  cleanup: async () => {
    await kafka?.stop();
  },
});

/** Produces each client's numbered stream, one batch over all topics per tick, in order. */
function produceStreams(producer: Producer, clientIds: string[], total: number): Promise<void> {
  return paceNumbered(clientIds.length, CHAOS_RATE, total, async (due) => {
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

suite.test(
  "Kafka, WebSocket with end-to-end acks through a cutting proxy: 0 lost, duplicates flagged redelivered",
  async () => {
    const r = await suite.run({
      label: "kafka",
      client: (clientId, [base]) =>
        new WsChaosClient({ base, clientId, endpoint: "orders", ack: true, ackEveryMs: 20 }),
      // The clients' topics do not exist yet: their first binds make them, ten at once.
      publisher: async (clients) => {
        const producer = await outsideProducer(kafka.kafka);
        const ids = clients.map((c) => c.clientId);
        return {
          publish: (total) => produceStreams(producer, ids, total),
          close: () => producer.disconnect(),
        };
      },
    });
    console.log(chaosSummary(currentRuntime, "kafka, ws + acks", r));
    assert.ok(r.cuts >= suite.clients, `the proxy cut connections (${r.cuts})`);
    assertNoLossAllFlagged(r);
  },
);
