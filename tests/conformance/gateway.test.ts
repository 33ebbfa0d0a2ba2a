/**
 * The black-box gateway suite under the runtime that runs the tests (`deno test` starts the
 * gateway under Deno, `bun test` under Bun), so `npm test` covers both.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { GATEWAY_CONFIG, scenarios, shutdownScenario, withRedisStore } from "./gateway-scenarios.ts";
import { MQTT_GATEWAY_CONFIG, mqttInject, mqttScenarios } from "./mqtt-scenarios.ts";
import { kafkaGatewayConfig, kafkaInject, kafkaScenarios } from "./kafka-scenarios.ts";
import { kafkaNamespace, startKafka } from "../support/kafka/cluster.ts";
import { natsGatewayConfig, natsInject, natsScenarios } from "./nats-scenarios.ts";
import { natsNamespace, OutsideNats } from "../support/nats.ts";
import { portableScenarios, resumeScenarios } from "./portable-scenarios.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { checkQuietStream, hardeningScenarios, openQuietStream } from "./hardening-scenarios.ts";
import { ackScenarios, dedupeScenario, memoryInject, sseReplayScenarios } from "./ack-scenarios.ts";
import type { QuietStream } from "./hardening-scenarios.ts";

let gw: Gateway;
let mqttGw: Gateway;
let redisGw: Gateway;
let redisMemGw: Gateway;
let kafkaGw: Gateway;
let natsGw: Gateway;
let proxy: RedisProxy;
let kafka: TestKafka;
let quiet: QuietStream;
const kafkaNs = kafkaNamespace("gateway");
const natsNs = natsNamespace("gateway");
const prefix = keyPrefix("gateway");
// Its own: gateways with different endpoints must not clean up each other's sessions.
const memPrefix = keyPrefix("gateway-mem");
before(async () => {
  proxy = await RedisProxy.start();
  kafka = await startKafka();
  [gw, mqttGw, redisGw, kafkaGw, redisMemGw, natsGw] = await Promise.all([
    startGateway(currentRuntime, GATEWAY_CONFIG),
    startGateway(currentRuntime, MQTT_GATEWAY_CONFIG),
    startGateway(
      currentRuntime,
      withRedisStore(MQTT_GATEWAY_CONFIG, { url: proxy.url, token: proxy.token, prefix }),
    ),
    startGateway(currentRuntime, kafkaGatewayConfig(kafka.brokers, kafkaNs)),
    startGateway(
      currentRuntime,
      withRedisStore(GATEWAY_CONFIG, { url: proxy.url, token: proxy.token, prefix: memPrefix }),
    ),
    startGateway(currentRuntime, natsGatewayConfig(natsNs)),
  ]);
  // Stays quiet while the other scenarios run; checked by the last test.
  quiet = await openQuietStream(gw);
});
after(async () => {
  await Promise.all([gw, mqttGw, redisGw, kafkaGw, redisMemGw, natsGw].map((g) => g?.stop("SIGKILL")));
  await kafka.stop();
  const nats = await OutsideNats.connect();
  await nats.dropStream(natsNs.stream);
  await nats.close();
  await proxy.drop(prefix);
  await proxy.drop(memPrefix);
  await proxy.stop();
});

for (const scenario of scenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
}

for (const scenario of hardeningScenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
}

test(`gateway (${currentRuntime}): ${dedupeScenario.name}`, () => dedupeScenario.run(gw));
for (const scenario of sseReplayScenarios(memoryInject)) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
  test(`gateway (${currentRuntime}, redis store): ${scenario.name}`, () => scenario.run(redisMemGw));
}
test(`gateway (${currentRuntime}, redis store): ${dedupeScenario.name}`, () =>
  dedupeScenario.run(redisMemGw));
for (
  const scenario of [
    ...resumeScenarios("inbox", memoryInject, "memory"),
    ...ackScenarios("inbox", memoryInject, "memory"),
  ]
) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
}
for (const scenario of ackScenarios("sensors", mqttInject, "mqtt")) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(mqttGw));
  test(`gateway (${currentRuntime}, redis store): ${scenario.name}`, () => scenario.run(redisGw));
}
for (const scenario of ackScenarios("orders", kafkaInject(() => kafka.kafka, kafkaNs), "kafka")) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(kafkaGw));
}

for (
  const scenario of [
    ...natsScenarios(natsNs),
    ...portableScenarios("events", natsInject(natsNs), "nats"),
  ]
) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(natsGw));
}

for (const scenario of mqttScenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(mqttGw));
}

for (const scenario of mqttScenarios) {
  test(`gateway (${currentRuntime}, redis store): ${scenario.name}`, () => scenario.run(redisGw));
}

for (const scenario of kafkaScenarios(() => kafka.kafka, kafkaNs)) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(kafkaGw));
}

test(`gateway (${currentRuntime}): SIGTERM -> clients get 1001, exit 0`, () =>
  shutdownScenario(currentRuntime));

test(`gateway (${currentRuntime}): a bad config stops start-up with exit code 2 and one line per problem`, () => {
  const dir = mkdtempSync(join(tmpdir(), "mediation-badcfg-"));
  const file = join(dir, "config.yaml");
  writeFileSync(
    file,
    "session: { reconnection_window: five }\nendpoints: [{ name: x, type: carrier-pigeon }]\n",
  );
  try {
    const result = spawnSync(
      runtimeBinary(currentRuntime),
      runArgs(currentRuntime, "src/main.ts", ["--config", file]),
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      },
    );
    assert.equal(result.status, 2);
    assert.match(result.stderr, /session\.reconnection_window: expected a duration like "5m", got "five"/);
    assert.match(result.stderr, /endpoints\[0\]\.type: expected an endpoint of type/);
    const viaEnv = spawnSync(runtimeBinary(currentRuntime), runArgs(currentRuntime, "src/main.ts"), {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1", MEDIATION_CONFIG: join(dir, "missing.yaml") },
    });
    assert.equal(viaEnv.status, 2);
    assert.match(viaEnv.stderr, /missing\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs src/main.ts with `config` until it exits or `ms` pass (then kills it); returns what it said. */
function runBriefly(config: string, ms: number) {
  const dir = mkdtempSync(join(tmpdir(), "mediation-cfg-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, config);
  try {
    return spawnSync(
      runtimeBinary(currentRuntime),
      runArgs(currentRuntime, "src/main.ts", ["--config", file]),
      {
        cwd: ROOT,
        encoding: "utf8",
        timeout: ms,
        killSignal: "SIGKILL",
        env: { ...process.env, NO_COLOR: "1", PORT: "0" },
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test(`gateway (${currentRuntime}): a REST store whose response encoding does not match stops start-up, naming the setting`, () => {
  const prefix = keyPrefix("encoding");
  const result = runBriefly(
    `server: { host: 127.0.0.1, port: 0 }
session: { type: redis, redis: { url: "${proxy.url}", token: "${proxy.token}", keyPrefix: "${prefix}" } }
endpoints: [{ name: chat, type: memory }]
`,
    15_000,
  );
  assert.equal(result.status, 1, result.stdout + result.stderr);
  assert.match(
    result.stderr,
    /session\.redis\.encoding is "base64" but the REST server .* answers without encoding: set encoding: none/,
  );
});

test(`gateway (${currentRuntime}): the seed's session block with type memory starts; \${PORT:-8080} is a port`, () => {
  const result = runBriefly(
    `server:
  host: 127.0.0.1
  port: \${PORT:-8080}
session:
  type: "memory"
  reconnection_window: "5m"
  cleanup_interval: "30s"
  redis:
    addr: "localhost:6379"
    password: ""
    db: 0
    keyPrefix: "mediation:session:"
endpoints: [{ name: chat, type: memory }]
`,
    4000,
  );
  assert.match(result.stdout + result.stderr, /\[Server\] Listening on http:\/\/127\.0\.0\.1:\d+/);
  assert.match(result.stdout + result.stderr, /session\.redis/, "the ignored redis mapping is mentioned");
});

// Last: the quiet stream opened before the other scenarios has been quiet for 30 s by now.
test(`gateway (${currentRuntime}): an SSE stream quiet for 30 s stays open and still delivers`, () =>
  checkQuietStream(gw, quiet));
