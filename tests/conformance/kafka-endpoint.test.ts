/**
 * The endpoint contract kit against the Kafka endpoint, on Apache Kafka (KAFKA_BROKERS,
 * 127.0.0.1:9092 by default). Durable: committed offsets outlive the gateway.
 */
import { after, before } from "node:test";
import type { Producer } from "kafkajs";
import { kafkaNamespace, makeKafkaEndpoint, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { freePort } from "../support/net.ts";
import { endpointContract } from "./endpoint-contract.ts";

const ns = kafkaNamespace("contract");
let kafka: TestKafka;
let producer: Producer;
/** A port nothing listens on, for the broker-down case. */
let downPort: number;
before(async () => {
  downPort = await freePort();
  kafka = await startKafka();
  producer = await outsideProducer(kafka.kafka);
});
after(async () => {
  await producer.disconnect();
  await kafka.stop();
});

endpointContract("kafka", () =>
  Promise.resolve({
    make: (logger) => makeKafkaEndpoint(kafka.brokers, { ns, ...(logger && { logger }) }),
    unreachable: (logger) => makeKafkaEndpoint([`127.0.0.1:${downPort}`], { ns, logger }),
    inject: async (clientId, text) => {
      await producer.send({ topic: `${ns}.${clientId}.down`, messages: [{ key: clientId, value: text }] });
    },
    durable: true,
    clientId: (label) => `${label}-${crypto.randomUUID().slice(0, 8)}`,
  }));
