/**
 * `deno task conformance` / `npm run conformance`: runs the black-box gateway scenarios against
 * src/main.ts under every runtime and prints a matrix: runtime x session store x endpoint, pass or
 * fail per scenario. Exits 1 if any cell failed.
 */
import process from "node:process";
import { startGateway } from "../support/gateway-process.ts";
import type { Runtime } from "../support/runtime.ts";
import type { Scenario } from "./gateway-scenarios.ts";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { GATEWAY_CONFIG, scenarios, shutdownScenario, withRedisStore } from "./gateway-scenarios.ts";
import { MQTT_GATEWAY_CONFIG, mqttInject, mqttScenarios } from "./mqtt-scenarios.ts";
import { kafkaGatewayConfig, kafkaInject, kafkaScenarios } from "./kafka-scenarios.ts";
import { hardeningScenarios } from "./hardening-scenarios.ts";
import { ackScenarios, dedupeScenario, memoryInject, sseReplayScenarios } from "./ack-scenarios.ts";
import { kafkaNamespace, startKafka } from "../support/kafka/cluster.ts";
import { natsGatewayConfig, natsInject, natsScenarios } from "./nats-scenarios.ts";
import { natsNamespace, OutsideNats } from "../support/nats.ts";

const runtimes: Runtime[] = ["deno", "bun"];
const proxy = await RedisProxy.start();
const prefix = keyPrefix("matrix");
const redis = { url: proxy.url, token: proxy.token, prefix };
const kafka = await startKafka();
const kafkaNs = kafkaNamespace("matrix");
const kafkaConfig = kafkaGatewayConfig(kafka.brokers, kafkaNs);
const natsNs = natsNamespace("matrix");
const natsConfig = natsGatewayConfig(natsNs);
const natsRows = [...natsScenarios(natsNs), ...ackScenarios("events", natsInject(natsNs), "nats")];
const SHUTDOWN = "SIGTERM -> clients get 1001, exit 0";
/** Each group: one gateway config (session store x endpoint) and its scenarios. */
const memory = [
  ...scenarios,
  ...hardeningScenarios,
  dedupeScenario,
  ...sseReplayScenarios(memoryInject),
  ...ackScenarios("inbox", memoryInject, "memory"),
];
const mqtt = [...mqttScenarios, ...ackScenarios("sensors", mqttInject, "mqtt")];
const kafkaRows = () => [
  ...kafkaScenarios(() => kafka.kafka, kafkaNs),
  ...ackScenarios("orders", kafkaInject(() => kafka.kafka, kafkaNs), "kafka"),
];
const groups: Array<{ label: string; config: string; scenarios: Scenario[] }> = [
  { label: "memory store / memory endpoint", config: GATEWAY_CONFIG, scenarios: memory },
  { label: "memory store / mqtt endpoint", config: MQTT_GATEWAY_CONFIG, scenarios: mqtt },
  {
    label: "redis store / memory endpoint",
    config: withRedisStore(GATEWAY_CONFIG, redis),
    scenarios: memory,
  },
  {
    label: "redis store / mqtt endpoint",
    config: withRedisStore(MQTT_GATEWAY_CONFIG, redis),
    scenarios: mqtt,
  },
  { label: "memory store / kafka endpoint", config: kafkaConfig, scenarios: kafkaRows() },
  {
    label: "redis store / kafka endpoint",
    config: withRedisStore(kafkaConfig, redis),
    scenarios: kafkaRows(),
  },
  { label: "memory store / nats endpoint", config: natsConfig, scenarios: natsRows },
  { label: "redis store / nats endpoint", config: withRedisStore(natsConfig, redis), scenarios: natsRows },
];
const rowName = (label: string, scenario: string) => `[${label}] ${scenario}`;
const rows = [
  ...groups.flatMap((g) => g.scenarios.map((s) => rowName(g.label, s.name))),
  rowName(groups[0].label, SHUTDOWN),
];
const results = new Map<string, Map<Runtime, string>>(rows.map((r) => [r, new Map()]));
const failures: string[] = [];

for (const runtime of runtimes) {
  const record = (row: string, error?: unknown) => {
    results.get(row)!.set(runtime, error ? "FAIL" : "pass");
    if (error) failures.push(`${runtime} | ${row}: ${error instanceof Error ? error.message : error}`);
  };
  for (const group of groups) {
    let gw;
    try {
      gw = await startGateway(runtime, group.config);
    } catch (error) {
      for (const s of group.scenarios) record(rowName(group.label, s.name), error);
      continue;
    }
    for (const s of group.scenarios) {
      const row = rowName(group.label, s.name);
      await s.run(gw).then(() => record(row), (error) => record(row, error));
    }
    await gw.stop("SIGKILL");
  }
  const row = rowName(groups[0].label, SHUTDOWN);
  await shutdownScenario(runtime).then(() => record(row), (error) => record(row, error));
}

const width = Math.max(...rows.map((r) => r.length));
const widths = runtimes.map((r) => Math.max(r.length, 4));
const heading = "[session store / endpoint] scenario";
console.log(`\n${heading.padEnd(width)} | ${runtimes.map((r, i) => r.padEnd(widths[i])).join(" | ")}`);
console.log(`${"-".repeat(width)}-|-${widths.map((w) => "-".repeat(w)).join("-|-")}`);
for (const row of rows) {
  console.log(
    `${row.padEnd(width)} | ${
      runtimes.map((r, i) => (results.get(row)!.get(r) ?? "-").padEnd(widths[i])).join(" | ")
    }`,
  );
}
const cells = [...results.values()].flatMap((m) => [...m.values()]);
const passed = cells.filter((c) => c === "pass").length;
console.log(`\n${passed} passed, ${cells.length - passed} failed`);
for (const f of failures) console.log(`  FAIL ${f}`);
await proxy.drop(prefix);
await proxy.stop();
await kafka.stop();
const nats = await OutsideNats.connect();
await nats.dropStream(natsNs.stream);
await nats.close();
process.exit(failures.length ? 1 : 0);
