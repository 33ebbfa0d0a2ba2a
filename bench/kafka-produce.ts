/**
 * The producer of bench/kafka.ts's fan-out runs, in a process of its own under the runtime being
 * measured, so that it does not share an event loop with the WebSocket clients it is measured
 * against (the bare consumers have a process of their own too).
 *
 *   kafka-produce.ts BROKER TOPIC COUNT
 *
 * Sends COUNT messages `{ i, t, t0 }` (t: wall-clock ms when sent, t0: when the run began) in
 * sends of 10, one after another, then exits (0 once all were acknowledged).
 */
import process from "node:process";
import { Kafka, logLevel, Partitioners } from "kafkajs";

const [broker, topic, countText] = process.argv.slice(2);
const count = Number(countText);
const wall = () => performance.timeOrigin + performance.now();
const kafka = new Kafka({ clientId: "bench-produce", brokers: [broker], logLevel: logLevel.NOTHING });
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await producer.connect();
const t0 = wall();
for (let i = 0; i < count; i += 10) {
  const messages = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
    value: JSON.stringify({ i: i + j, t: wall(), t0 }),
  }));
  await producer.send({ topic, messages });
}
await producer.disconnect();
process.exit(0);
