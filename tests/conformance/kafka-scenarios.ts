/**
 * Black-box scenarios for a gateway with a Kafka endpoint, on Apache Kafka (KAFKA_BROKERS, see
 * tests/support/kafka/cluster.ts); plain kafkajs clients play the outside world.
 */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { outsideProducer } from "../support/kafka/cluster.ts";
import { SseClient } from "../support/sse-client.ts";
import { numbered, openWelcomed } from "../support/ws-client.ts";
import { eventually } from "./endpoint-contract.ts";
import { nested } from "./hardening-scenarios.ts";
import type { Scenario } from "./gateway-scenarios.ts";
import { CLEANUP_MS, WINDOW_MS } from "./gateway-scenarios.ts";

export function kafkaGatewayConfig(brokers: string[], ns: string): string {
  return `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 5s }
session: { type: memory, reconnection_window: ${WINDOW_MS}ms, cleanup_interval: ${CLEANUP_MS}ms }
endpoints:
  - name: orders
    type: kafka
    brokers: [${brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${ns}.{clientId}.up"
    subscribe_topic: "${ns}.{clientId}.down"
    fetch_max_wait: 100ms
`;
}

/** Produces payloads to client `id`'s topic from outside (for ackScenarios). */
export function kafkaInject(kafka: () => Kafka, ns: string) {
  return async (_gw: unknown, id: string, payloads: string[]): Promise<void> => {
    const producer = await outsideProducer(kafka());
    await producer.send({
      topic: `${ns}.${id}.down`,
      messages: payloads.map((value) => ({ key: id, value })),
    });
    await producer.disconnect();
  };
}

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

/** `kafka` gives the outside client once the suite has made it (scenarios are made before). */
export function kafkaScenarios(kafka: () => Kafka, ns: string): Scenario[] {
  return [
    {
      name: "kafka: publish -> receipt after the broker's ack, seen by an outside consumer",
      async run(gw) {
        const id = unique("pub");
        const { socket } = await openWelcomed(gw.ws, id);
        socket.send({ type: "publish", endpoint: "orders", data: { qty: 3 }, id: "r-1" });
        const receipt = await socket.next((f) => f.type === "receipt" && f.id === "r-1");
        const meta = receipt.meta as Record<string, unknown>;
        assert.equal(meta.topic, `${ns}.${id}.up`);
        assert.equal(meta.offset, "0");
        const seen: string[] = [];
        const consumer = kafka().consumer({ groupId: unique("outside"), maxWaitTimeInMs: 100 });
        await consumer.connect();
        await consumer.subscribe({ topic: `${ns}.${id}.up`, fromBeginning: true });
        await consumer.run({
          eachMessage: ({ message }) => Promise.resolve(void seen.push(`${message.key}:${message.value}`)),
        });
        await eventually(() => seen.length === 1, "the outside consumer");
        assert.deepEqual(seen, [`${id}:{"qty":3}`], "keyed by the client ID");
        await consumer.disconnect();
        await socket.close();
      },
    },
    {
      name: "kafka: away, 200 produced outside, back in window -> 200 in order once; later the group is gone",
      async run(gw) {
        const id = unique("dev");
        const group = `engine-orders-client-${id}`;
        const first = await openWelcomed(gw.ws, id);
        first.socket.send({ type: "subscribe", endpoint: "orders", id: "s" });
        await first.socket.next((f) => f.type === "receipt" && f.id === "s");
        assert.match(gw.output(), new RegExp(`\\[Kafka\\] Client ${id} bound to endpoint orders`));
        await first.socket.close();

        const producer = await outsideProducer(kafka());
        for (let n = 1; n <= 200; n += 20) {
          const messages = Array.from(
            { length: 20 },
            (_, i) => ({ key: id, value: JSON.stringify({ n: n + i }) }),
          );
          await producer.send({ topic: `${ns}.${id}.down`, messages });
        }
        await producer.disconnect();

        const second = await openWelcomed(gw.ws, id);
        assert.equal(second.welcome.resumed, true);
        assert.deepEqual(await second.socket.settled("orders", 200), numbered(200), "in order, once");
        await second.socket.close();

        const admin = kafka().admin();
        await admin.connect();
        try {
          await eventually(
            () => gw.output().includes(`[CleanupWorker] Unbound client ${id} from endpoint orders`),
            "the cleanup after the window",
            WINDOW_MS + CLEANUP_MS * 10,
          );
          assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === group), "not listed");
          assert.equal((await admin.describeGroups([group])).groups[0].state, "Dead");
          const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [`${ns}.${id}.down`] });
          assert.deepEqual(offsets.partitions.map((p) => p.offset), ["-1"], "its offsets are gone");
        } finally {
          await admin.disconnect();
        }
      },
    },
    {
      name:
        "kafka: away, retention deletes 15 of 20 -> the welcome reports 15 lost, the 5 left and what follows come in order",
      async run(gw) {
        const id = unique("ret");
        const topic = `${ns}.${id}.down`;
        const first = await openWelcomed(gw.ws, id);
        first.socket.send({ type: "subscribe", endpoint: "orders", id: "s" });
        await first.socket.next((f) => f.type === "receipt" && f.id === "s");
        await first.socket.close();
        const producer = await outsideProducer(kafka());
        const send = (from: number, count: number) =>
          producer.send({
            topic,
            messages: Array.from(
              { length: count },
              (_, i) => ({ key: id, value: JSON.stringify({ n: from + i }) }),
            ),
          });
        await send(1, 20);
        const admin = kafka().admin();
        await admin.connect();
        try {
          // What retention does to old segments, at once: the log now starts at offset 15.
          await admin.fetchTopicOffsets(topic);
          await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: "15" }] });
        } finally {
          await admin.disconnect();
        }
        const second = await openWelcomed(gw.ws, id);
        assert.equal(second.welcome.resumed, true);
        assert.equal(second.welcome.recovered, false);
        assert.equal(second.welcome.reason, "dropped");
        assert.deepEqual(second.welcome.lost, { orders: 15 });
        assert.deepEqual(await second.socket.settled("orders", 5), numbered(5, 16), "the rest, in order");
        await send(21, 1);
        assert.deepEqual(await second.socket.settled("orders", 6), numbered(6, 16), "then live ones");
        await producer.disconnect();
        await second.socket.close();
        const third = await openWelcomed(gw.ws, id);
        assert.equal(third.welcome.recovered, true, "reported once");
        await third.socket.close();
      },
    },
    {
      name:
        "kafka: poison payload: 6,000 and 30,000 deep JSON arrive as text, live and after a resume; the gateway goes on",
      async run(gw) {
        const id = unique("poison");
        const topic = `${ns}.${id}.down`;
        const first = await openWelcomed(gw.ws, id);
        first.socket.send({ type: "subscribe", endpoint: "orders", id: "s" });
        await first.socket.next((f) => f.type === "receipt" && f.id === "s");
        const producer = await outsideProducer(kafka());
        const send = (value: string) => producer.send({ topic, messages: [{ key: id, value }] });
        await send(nested(6000));
        await send('{"n":1}');
        assert.deepEqual(await first.socket.settled("orders", 2), [nested(6000), { n: 1 }]);
        await first.socket.close();
        await send(nested(30_000));
        await send('{"n":2}');
        const second = await openWelcomed(gw.ws, id);
        assert.deepEqual(
          await second.socket.settled("orders", 2),
          [nested(30_000), { n: 2 }],
          "after resume",
        );
        await producer.disconnect();
        await second.socket.close();
        assert.equal((await fetch(`${gw.http}/healthz`)).status, 200);
      },
    },
    {
      name:
        "kafka: SSE says `subscribed` once its binding is in place; a message produced right after arrives",
      async run(gw) {
        const id = unique("sse-sub");
        const sse = await SseClient.open(`${gw.http}/sse/orders?clientId=${id}`);
        assert.equal(sse.status, 200);
        // A new binding starts at the topic's end: only `subscribed` says from when on a
        // message reaches the stream (the welcome comes before the bind).
        await sse.until(() => sse.events.some((e) => e.event === "subscribed"), 20_000, "subscribed");
        assert.deepEqual(sse.events.map((e) => e.event), ["welcome", "subscribed"]);
        assert.deepEqual(JSON.parse(sse.events[1].data), { endpoint: "orders" });
        const producer = await outsideProducer(kafka());
        await producer.send({ topic: `${ns}.${id}.down`, messages: [{ key: id, value: '{"n":1}' }] });
        await producer.disconnect();
        await sse.until(() => sse.events.some((e) => e.event === "message"), 20_000, "the message");
        assert.deepEqual(JSON.parse(sse.events.find((e) => e.event === "message")!.data), { n: 1 });
        await sse.close();
      },
    },
  ];
}
