/**
 * Chaos on two nodes, one killed (DESIGN.md sections 4, 5 and 11), the companion of
 * chaos.test.ts: two gateway nodes share the Redis store (through the Upstash REST proxy),
 * Mosquitto and Apache Kafka, each behind a cutting proxy of its own (each connection cut after
 * a random 0.3-2 s, the bytes in flight thrown away). WebSocket clients with end-to-end acks
 * (`ack=1`) start spread over both nodes and, after each cut, come back in 0-500 ms with the
 * same client ID to either node at random; outside, a QoS 1 MQTT publisher (or a kafkajs
 * producer, for the Kafka run) sends each a numbered stream at 200 msg/s. In the middle of the
 * run the node more clients were last on is killed with `kill -9`; from then on clients come
 * back to the survivor only. The sessions the killed node had are still held by its lease
 * (`session.lease`, 3 s here): a connect takes the session over all the same (for Kafka there is
 * no group member of the killed node to wait for: the survivor reads the committed offsets).
 *
 * Nothing may be lost, and every copy of a message past the first must be flagged
 * `redelivered` (MQTT's DUP: Mosquitto sent it before, to either node; Kafka: at or below an
 * offset this node delivered, or in the topic when the survivor first fetched for the client).
 *
 * Both nodes run under the runtime that runs the test. `CHAOS_SECONDS` and `CHAOS_CLUSTER_CLIENTS`
 * (else `CHAOS_CLIENTS`) scale a run (defaults 10 and 10); the kill comes at 40% of the traffic.
 */
import assert from "node:assert/strict";
import { before } from "node:test";
import type { Producer } from "kafkajs";
import {
  assertNoLossAllFlagged,
  chaosSummary,
  paceNumbered,
  WsChaosClient,
} from "../support/chaos-clients.ts";
import type { ChaosClient } from "../support/chaos-clients.ts";
import type { ChaosProxy } from "../support/chaos-proxy.ts";
import { CHAOS_RATE, chaosSuite, mqttStreamsPublisher } from "../support/chaos-suite.ts";
import type { ChaosPublisher } from "../support/chaos-suite.ts";
import { KAFKA_BROKERS, kafkaNamespace, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import { mqttEndpointYaml, namespace } from "../support/mqtt.ts";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const ns = namespace("chaos-cluster");
const kafkaNs = kafkaNamespace("chaos-cluster");
const prefix = keyPrefix("chaos-cluster");

const nodeConfig = (redis: RedisProxy, nodeId: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${nodeId}, shutdown_timeout: 5s }
session:
  type: redis
  reconnection_window: 60s
  cleanup_interval: 5s
  lease: 3s
  redis: { url: "${redis.url}", token: "${redis.token}", keyPrefix: "${prefix}", encoding: none, timeout: 2s }
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
  - name: orders
    type: kafka
    brokers: [${KAFKA_BROKERS.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${kafkaNs}.{clientId}.up"
    subscribe_topic: "${kafkaNs}.{clientId}.down"
    fetch_max_wait: 100ms
`;

let redis: RedisProxy;
before(async () => {
  redis = await RedisProxy.start();
});
/** Nodes A and B (suite.nodes), of their own per test; which one is killed is decided in the run. */
const suite = chaosSuite({
  clientsVariable: "CHAOS_CLUSTER_CLIENTS",
  freshNodes: true,
  configs: () => {
    // Node ids of their own (see cluster.test.ts): MQTT producer connections are named after them.
    const run = crypto.randomUUID().slice(0, 8);
    return [nodeConfig(redis, `chaos-node-a-${run}`), nodeConfig(redis, `chaos-node-b-${run}`)];
  },
  cleanup: async () => {
    await redis?.drop(prefix).catch(() => {});
    await redis?.stop();
  },
});
const CLIENTS = suite.clients;
/** When the node is killed, ms into the traffic. */
const KILL_AT_MS = suite.seconds * 400;

/** Produces each client's numbered stream to its Kafka topic, one batch over all topics per tick, in order. */
function produceStreams(producer: Producer, clientIds: string[], total: number): Promise<void> {
  return paceNumbered(clientIds.length, CHAOS_RATE, total, async (due) => {
    const byTopic = new Map<number, Array<{ key: string; value: string }>>();
    for (const [i, n] of due) {
      const messages = byTopic.get(i) ?? [];
      messages.push({ key: clientIds[i], value: JSON.stringify({ n }) });
      byTopic.set(i, messages);
    }
    await producer.sendBatch({
      topicMessages: [...byTopic].map(([i, messages]) => ({
        topic: `${kafkaNs}.${clientIds[i]}.down`,
        messages,
      })),
    });
  });
}

const kafkaStreamsPublisher = async (clients: ChaosClient[]): Promise<ChaosPublisher> => {
  const producer = await outsideProducer((await startKafka()).kafka);
  const ids = clients.map((c) => c.clientId);
  return { publish: (total) => produceStreams(producer, ids, total), close: () => producer.disconnect() };
};

const NAMES = ["A", "B"];

for (
  const [broker, endpoint, streams] of [
    ["MQTT", "sensors", (clients: ChaosClient[]) => mqttStreamsPublisher(ns, clients)],
    ["Kafka", "orders", kafkaStreamsPublisher],
  ] as const
) {
  suite.test(
    `${broker}, two nodes on Redis, one killed with kill -9, WebSocket with end-to-end acks through cutting proxies: 0 lost, duplicates flagged redelivered`,
    () => twoNodesOneKilled(broker, endpoint, streams),
  );
}

async function twoNodesOneKilled(
  broker: string,
  endpoint: string,
  streams: (clients: ChaosClient[]) => Promise<ChaosPublisher>,
) {
  const nodes = suite.nodes;
  let proxies: ChaosProxy[] = [];
  /** The killed node, once killed; it is the one more clients were last on then. */
  let victim: number | undefined;
  let killedAt = 0;
  let openAtKill = 0;
  let onVictimAtKill: number[] = [];
  // The first connections alternate over the nodes; later ones pick at random, the survivor
  // only once the other node is dead. Per client: the node of its latest connection, and how
  // long after the kill it first went to the survivor.
  const tried = [0, 0];
  const onNode: number[] = [];
  const backAfterKill: number[] = [];
  const started = performance.now();
  const pick = (client: number, bases: string[]) => {
    const i = victim !== undefined
      ? 1 - victim
      : onNode[client] === undefined
      ? client % 2
      : Math.random() < 0.5
      ? 0
      : 1;
    tried[i]++;
    onNode[client] = i;
    if (victim !== undefined) backAfterKill[client] ??= performance.now() - started - killedAt * 1000;
    return bases[i];
  };
  const r = await suite.run({
    label: `cluster-${broker.toLowerCase()}`,
    client: (clientId, bases, i) =>
      new WsChaosClient({
        base: () => pick(i, bases),
        clientId,
        endpoint,
        ack: true,
        ackEveryMs: 20,
      }),
    publisher: async (clients, cutting) => {
      proxies = cutting;
      const outside = await streams(clients);
      return {
        publish: async (total) => {
          const kill = (async () => {
            await new Promise((resolve) => setTimeout(resolve, KILL_AT_MS));
            const on = (node: number) => clients.map((_, i) => i).filter((i) => onNode[i] === node);
            const v = victim = on(1).length >= on(0).length ? 1 : 0;
            killedAt = (performance.now() - started) / 1000;
            openAtKill = proxies[v].connections.length;
            onVictimAtKill = on(v);
            await nodes[v].stop("SIGKILL");
          })();
          await outside.publish(total);
          await kill;
        },
        close: outside.close,
      };
    },
  });
  const v = victim!;
  const moved = onVictimAtKill.map((i) => backAfterKill[i]);
  console.log(chaosSummary(currentRuntime, `${broker}, two nodes, one killed, ws + acks`, r));
  console.log(
    `  killed node ${NAMES[v]} at ${killedAt.toFixed(1)} s with ${openAtKill} connections open on it;` +
      ` ${onVictimAtKill.length} of ${CLIENTS} clients were last on it and went to node ${
        NAMES[1 - v]
      } after` +
      ` ${moved.map((ms) => ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`).join(", ")}` +
      ` (its lease: 3 s); connections tried: A ${tried[0]}, B ${tried[1]}`,
  );
  const failed = r.tallies.some((t) => t.lost.length > 0 || t.duplicates !== t.duplicatesFlagged);
  if (failed) console.log(suite.tails(4000));
  assert.ok(r.cuts >= CLIENTS, `the proxies cut connections (${r.cuts})`);
  assert.ok(proxies.every((p) => p.accepted >= CLIENTS / 2), "clients went to both nodes");
  assert.ok(onVictimAtKill.length > 0, "sessions were on the killed node");
  assert.ok(moved.every((ms) => ms !== undefined), "every client of the killed node went to the survivor");
  assertNoLossAllFlagged(r);
}
