/**
 * The Kafka the tests use: the cluster named by `KAFKA_BROKERS` (comma-separated host:port) if
 * set, else the test broker of this folder, started in this process on a free port.
 */
import process from "node:process";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Producer } from "kafkajs";
import { memoryLogger } from "../../../src/core/logger.ts";
import { RealScheduler } from "../../../src/core/scheduler.ts";
import { KafkaEndpoint } from "../../../src/endpoints/kafka/kafka-endpoint.ts";
import type { KafkaEndpointOptions } from "../../../src/endpoints/kafka/kafka-endpoint.ts";
import { KafkaTestBroker } from "./broker.ts";

export interface TestKafka {
  brokers: string[];
  /** The in-process broker, when not running against a real cluster. */
  broker?: KafkaTestBroker;
  /** A plain kafkajs client (not the gateway), for producing and admin work. */
  kafka: Kafka;
  stop(): Promise<void>;
}

export async function startKafka(): Promise<TestKafka> {
  const external = process.env.KAFKA_BROKERS?.split(",").map((b) => b.trim()).filter(Boolean);
  const broker = external?.length ? undefined : await KafkaTestBroker.start();
  const brokers = external?.length ? external : broker!.brokers;
  const kafka = new Kafka({ clientId: "outside", brokers, logLevel: logLevel.NOTHING });
  return { brokers, broker, kafka, stop: async () => await broker?.stop() };
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
