/**
 * `deno task conformance` / `npm run conformance`: the black-box gateway scenarios as a matrix,
 * pass or fail per scenario and column; exits 1 if any cell failed.
 *
 * - No arguments: every built-in group (session store x endpoint, with the brokers this repo's
 *   tests use) against src/main.ts under Deno, Bun and Node.
 * - `--target ws://host:port --profile FILE`: a gateway started separately; the portable rows
 *   (portable-scenarios.ts) for every endpoint the profile names (profile.ts says how).
 * - `--config FILE --profile FILE [--runtime deno|bun|node]`: the same rows against src/main.ts
 *   started on that config, under each runtime (all three by default).
 */
import { execFileSync } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";
import { startGateway } from "../support/gateway-process.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { RUNTIMES } from "../support/runtime.ts";
import type { Runtime } from "../support/runtime.ts";
import type { Scenario } from "./gateway-scenarios.ts";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { GATEWAY_CONFIG, scenarios, shutdownScenario, withRedisStore } from "./gateway-scenarios.ts";
import { MQTT_GATEWAY_CONFIG, mqttInject, mqttScenarios } from "./mqtt-scenarios.ts";
import { kafkaGatewayConfig, kafkaInject, kafkaScenarios } from "./kafka-scenarios.ts";
import { hardeningScenarios } from "./hardening-scenarios.ts";
import { dedupeScenario, memoryInject, sseReplayScenarios } from "./ack-scenarios.ts";
import { kafkaNamespace, startKafka } from "../support/kafka/cluster.ts";
import { natsGatewayConfig, natsInject, natsScenarios } from "./nats-scenarios.ts";
import { natsNamespace, OutsideNats } from "../support/nats.ts";
import { portableScenarios } from "./portable-scenarios.ts";
import { loadProfile } from "./profile.ts";

const USAGE = `usage: deno task conformance [--target ws://host:port --profile FILE]
                                [--config FILE --profile FILE [--runtime deno|bun|node]]
                                [--token TOKEN | --token-command COMMAND]

  --token TOKEN            a gateway with auth on: every client request carries ?token=TOKEN
  --token-command COMMAND  the same, with the token printed by COMMAND (run once, by sh -c)`;

/** Prints the matrix (one row per scenario, one column per runtime or target) and the failures. */
function printMatrix(
  heading: string,
  columns: string[],
  rows: string[],
  results: Map<string, Map<string, string>>,
  failures: string[],
): void {
  const width = Math.max(heading.length, ...rows.map((r) => r.length));
  const widths = columns.map((c) => Math.max(c.length, 4));
  console.log(`\n${heading.padEnd(width)} | ${columns.map((c, i) => c.padEnd(widths[i])).join(" | ")}`);
  console.log(`${"-".repeat(width)}-|-${widths.map((w) => "-".repeat(w)).join("-|-")}`);
  for (const row of rows) {
    const cells = columns.map((c, i) => (results.get(row)?.get(c) ?? "-").padEnd(widths[i]));
    console.log(`${row.padEnd(width)} | ${cells.join(" | ")}`);
  }
  const cells = [...results.values()].flatMap((m) => [...m.values()]);
  const passed = cells.filter((c) => c === "pass").length;
  console.log(`\n${passed} passed, ${cells.length - passed} failed`);
  for (const f of failures) console.log(`  FAIL ${f}`);
}

/** The token `command` prints (run by `sh -c`); exits 2 with its error when it fails or prints none. */
function tokenFrom(command: string): string {
  try {
    const token = execFileSync("sh", ["-c", command], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    })
      .trim();
    if (token) return token;
    console.error(`--token-command printed no token: ${command}`);
  } catch (error) {
    console.error(`--token-command failed (${(error as Error).message.split("\n")[0]})`);
  }
  process.exit(2);
}

/** Runs `scenarios` against `gw` in order, recording each in column `column`. */
async function runRows(
  gw: Gateway,
  column: string,
  rows: Array<{ row: string; scenario: Scenario }>,
  results: Map<string, Map<string, string>>,
  failures: string[],
): Promise<void> {
  for (const { row, scenario } of rows) {
    const error = await scenario.run(gw).then(() => undefined, (e) => e ?? new Error("failed"));
    if (!results.has(row)) results.set(row, new Map());
    results.get(row)!.set(column, error ? "FAIL" : "pass");
    if (error) failures.push(`${column} | ${row}: ${error instanceof Error ? error.message : error}`);
  }
}

/** `--target` / `--config` with `--profile`: the portable rows of the profile's endpoints. */
async function profileMatrix(options: {
  target?: string;
  config?: string;
  profile?: string;
  runtime?: string;
  token?: string;
  "token-command"?: string;
}): Promise<number> {
  if (
    !options.profile || (!options.target && !options.config) || (options.target && options.config) ||
    (options.token && options["token-command"])
  ) {
    console.error(USAGE);
    return 2;
  }
  const token = options["token-command"] ? tokenFrom(options["token-command"]) : options.token;
  const endpoints = loadProfile(options.profile);
  const rows = endpoints.flatMap((e) =>
    portableScenarios(e.name, e.inject, e.name).map((scenario) => ({
      row: `[${e.name} via ${e.via}] ${scenario.name.slice(e.name.length + 2)}`,
      scenario,
    }))
  );
  const results = new Map<string, Map<string, string>>();
  const failures: string[] = [];
  const columns: string[] = [];
  if (options.target) {
    const url = new URL(options.target.replace(/^ws/, "http"));
    const base = `${url.protocol}//${url.host}`;
    const gw = { http: base, ws: base.replace(/^http/, "ws"), token } as Gateway;
    const ready = await fetch(`${base}/readyz`).then((r) => r.status, (e) => e.message);
    if (ready !== 200) {
      console.error(`${base}/readyz answered ${ready}: is the gateway up, with every endpoint reachable?`);
      return 1;
    }
    columns.push(options.target);
    await runRows(gw, options.target, rows, results, failures);
  } else {
    const runtimes = (options.runtime ? [options.runtime] : RUNTIMES) as Runtime[];
    for (const runtime of runtimes) {
      columns.push(runtime);
      let gw: Gateway;
      try {
        gw = await startGateway(runtime, { file: options.config! });
        gw.token = token;
      } catch (error) {
        for (const { row } of rows) {
          if (!results.has(row)) results.set(row, new Map());
          results.get(row)!.set(runtime, "FAIL");
        }
        failures.push(`${runtime}: ${(error as Error).message}`);
        continue;
      }
      await runRows(gw, runtime, rows, results, failures);
      await gw.stop("SIGTERM");
    }
  }
  printMatrix("[endpoint via publish] scenario", columns, rows.map((r) => r.row), results, failures);
  return failures.length ? 1 : 0;
}

const { values: options } = parseArgs({
  args: process.argv.slice(2),
  options: {
    target: { type: "string" },
    config: { type: "string" },
    profile: { type: "string" },
    runtime: { type: "string" },
    token: { type: "string" },
    "token-command": { type: "string" },
    help: { type: "boolean" },
  },
});
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}
if (options.target || options.config || options.profile) process.exit(await profileMatrix(options));

const runtimes = [...RUNTIMES];
const proxy = await RedisProxy.start();
const prefix = keyPrefix("matrix");
const redis = { url: proxy.url, token: proxy.token, prefix };
const kafka = await startKafka();
const kafkaNs = kafkaNamespace("matrix");
const kafkaConfig = kafkaGatewayConfig(kafka.brokers, kafkaNs);
const natsNs = natsNamespace("matrix");
const natsConfig = natsGatewayConfig(natsNs);
const natsRows = [...natsScenarios(natsNs), ...portableScenarios("events", natsInject(natsNs), "nats")];
const SHUTDOWN = "SIGTERM -> clients get 1001, exit 0";
/** Each group: one gateway config (session store x endpoint) and its scenarios. */
const memory = [
  ...scenarios,
  ...hardeningScenarios,
  dedupeScenario,
  ...sseReplayScenarios(memoryInject),
  ...portableScenarios("inbox", memoryInject, "memory"),
];
const mqtt = [...mqttScenarios, ...portableScenarios("sensors", mqttInject, "mqtt")];
const kafkaRows = () => [
  ...kafkaScenarios(() => kafka.kafka, kafkaNs),
  ...portableScenarios("orders", kafkaInject(() => kafka.kafka, kafkaNs), "kafka"),
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
const results = new Map<string, Map<string, string>>(rows.map((r) => [r, new Map()]));
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

printMatrix("[session store / endpoint] scenario", runtimes, rows, results, failures);
await proxy.drop(prefix);
await proxy.stop();
await kafka.stop();
const nats = await OutsideNats.connect();
await nats.dropStream(natsNs.stream);
await nats.close();
process.exit(failures.length ? 1 : 0);
