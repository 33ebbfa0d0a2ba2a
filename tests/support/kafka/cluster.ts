/**
 * The Kafka the tests use: Apache Kafka at `KAFKA_BROKERS` (comma-separated host:port),
 * 127.0.0.1:9092 by default, like the other services of the machine (.ci/run starts it with
 * tests/support/kafka-broker/start.sh). Tests that break a broker start a private one.
 */
import process from "node:process";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Producer } from "kafkajs";
import { memoryLogger } from "../../../src/core/logger.ts";
import { RealScheduler } from "../../../src/core/scheduler.ts";
import { KafkaEndpoint } from "../../../src/endpoints/kafka/kafka-endpoint.ts";
import type { KafkaEndpointOptions } from "../../../src/endpoints/kafka/kafka-endpoint.ts";

/** The brokers of `KAFKA_BROKERS`, else 127.0.0.1:9092. */
export const KAFKA_BROKERS: string[] = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",")
  .map((b) => b.trim()).filter(Boolean);

export interface TestKafka {
  brokers: string[];
  /** A plain kafkajs client (not the gateway), for producing and admin work. */
  kafka: Kafka;
  stop(): Promise<void>;
}

/** The shared broker, and a plain client of it (nothing to start: it runs like Mosquitto or Redis). */
export function startKafka(): Promise<TestKafka> {
  const brokers = KAFKA_BROKERS;
  const kafka = new Kafka({ clientId: "outside", brokers, logLevel: logLevel.NOTHING });
  return Promise.resolve({ brokers, kafka, stop: () => Promise.resolve() });
}

/** A topic namespace unique to this run (Kafka topic characters only). */
export const kafkaNamespace = (label: string) => `test.${label}-${crypto.randomUUID().slice(0, 8)}`;

/** A connected plain kafkajs producer. */
export async function outsideProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  return producer;
}

export function makeKafkaEndpoint(
  brokers: string[],
  options: Partial<KafkaEndpointOptions> & { ns: string },
): KafkaEndpoint {
  return new KafkaEndpoint({
    name: "orders",
    brokers,
    publishTopic: `${options.ns}.{clientId}.up`,
    subscribeTopic: `${options.ns}.{clientId}.down`,
    startFrom: "latest",
    ssl: false,
    nodeId: "test",
    logger: memoryLogger(),
    scheduler: new RealScheduler(),
    connectTimeout: 3000,
    publishTimeout: 3000,
    fetchMaxWait: 100,
    ...options,
  });
}
