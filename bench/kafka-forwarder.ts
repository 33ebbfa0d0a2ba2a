/**
 * The physical-limit baseline of bench/kafka.ts: a minimal forwarder between kafkajs and
 * WebSocket with none of the gateway's logic, served by the runtime's own server in a process of
 * its own, like the gateway (bench/forwarder-server.ts).
 *
 * `subscribe` starts one kafkajs consumer for the client, in a group of its own, from the
 * beginning of its (new, empty) topic; every message of a fetched batch is sent as the gateway's
 * message frame, then the batch's offset is committed, as the gateway's consumers do.
 * `unsubscribe` disconnects it.
 *
 *   kafka-forwarder.ts BROKER NAME=TOPIC...    prints `listening PORT`
 */
import { Kafka, logLevel } from "kafkajs";
import { args, messageFrame, serve } from "./forwarder-server.ts";

const [broker, ...endpointArgs] = await args();
const topics = new Map(endpointArgs.map((a) => a.split("=", 2) as [string, string]));
const kafka = new Kafka({ clientId: "bench-forwarder", brokers: [broker], logLevel: logLevel.NOTHING });

await serve({
  async subscribe(client, endpoint) {
    const topic = topics.get(endpoint)!;
    const consumer = kafka.consumer({
      groupId: `forwarder-${client.id}-${crypto.randomUUID()}`,
      maxWaitTimeInMs: 100,
    });
    client.consumers.set(endpoint, { close: () => void consumer.disconnect() });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        for (const message of batch.messages) {
          const meta = `{"topic":"${topic}","partition":${batch.partition},"offset":"${message.offset}"}`;
          client.send(messageFrame(client, endpoint, message.value!, meta));
          resolveOffset(message.offset);
        }
        const next = (BigInt(batch.lastOffset()) + 1n).toString();
        await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }]);
      },
    });
  },
  async unsubscribe(client, endpoint) {
    const held = client.consumers.get(endpoint);
    client.consumers.delete(endpoint);
    held?.close();
    await Promise.resolve();
  },
  publish: () => Promise.reject(new Error("the Kafka forwarder only consumes")),
});
