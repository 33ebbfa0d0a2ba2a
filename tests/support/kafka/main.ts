/**
 * The test broker as a command, for trying the gateway's Kafka endpoint by hand:
 *
 *   deno run -A tests/support/kafka/main.ts --port 9092 [--partitions 3]
 *   bun tests/support/kafka/main.ts --port 9092
 *
 * Data lives in memory until the process ends (Ctrl-C).
 */
import process from "node:process";
import { KafkaTestBroker } from "./broker.ts";

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name}: expected a whole number, got ${JSON.stringify(process.argv[at + 1] ?? "")}`);
    process.exit(2);
  }
  return value;
}

const broker = await KafkaTestBroker.start({
  port: option("port", 9092),
  defaultPartitions: option("partitions", 1) || 1,
});
console.log(`Kafka test broker listening on ${broker.brokers[0]}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => void broker.stop().then(() => process.exit(0)));
}
