/**
 * The bare side of bench/kafka.ts, run as its own process under the runtime being measured:
 * N bare kafkajs consumers, each in a group of its own, doing what the gateway's consumers do
 * (deliver each message, commit after each batch), without the gateway.
 *
 *   bare-kafka.ts BROKER TOPIC N WARMUP M
 *
 * Prints `ready` once every consumer runs, `warm` once each has WARMUP messages, then one JSON
 * line with its figures once each has M more (or after 60 s). CPU is this process's.
 */
import process from "node:process";
import { Kafka, logLevel } from "kafkajs";
import { cpuMs, percentile } from "./measure.ts";

const [broker, topic, nText, warmupText, mText] = process.argv.slice(2);
const [n, warmup, m] = [Number(nText), Number(warmupText), Number(mText)];
const wall = () => performance.timeOrigin + performance.now();
const kafka = new Kafka({ clientId: "bench-bare", brokers: [broker], logLevel: logLevel.NOTHING });
let latencies: number[] = [];
let start = 0;
let last = 0;

const consumers = await Promise.all(Array.from({ length: n }, async (_, i) => {
  const consumer = kafka.consumer({
    groupId: `bench-bare-${i}-${crypto.randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  // The topic is new and empty: from the beginning means nothing is missed while joining.
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      for (const message of batch.messages) {
        const { t, t0 } = JSON.parse(message.value!.toString());
        const now = wall();
        latencies.push(now - t);
        start = t0;
        last = now;
        resolveOffset(message.offset);
      }
      const next = (BigInt(batch.lastOffset()) + 1n).toString();
      await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }]);
    },
  });
  return consumer;
}));
console.log("ready");

const until = async (count: number) => {
  const deadline = Date.now() + 60_000;
  while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
};
await until(n * warmup);
latencies = [];
const cpu = cpuMs(process.pid);
console.log("warm");
await until(n * m);
console.log(JSON.stringify({
  delivered: latencies.length,
  perSecond: latencies.length / ((last - start) / 1000),
  cpuUsPerDelivery: ((cpuMs(process.pid) - cpu) * 1000) / latencies.length,
  p50: percentile(latencies, 50),
  p99: percentile(latencies, 99),
}));
await Promise.all(consumers.map((c) => c.disconnect()));
process.exit(0);
