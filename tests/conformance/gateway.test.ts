/**
 * The black-box gateway suite under the runtime that runs the tests (`deno test` starts the
 * gateway under Deno, `bun test` under Bun), so `npm test` covers both.
 */
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";
import { GATEWAY_CONFIG, scenarios, shutdownScenario } from "./gateway-scenarios.ts";
import { MQTT_GATEWAY_CONFIG, mqttScenarios } from "./mqtt-scenarios.ts";

let gw: Gateway;
let mqttGw: Gateway;
before(async () => {
  [gw, mqttGw] = await Promise.all([
    startGateway(currentRuntime, GATEWAY_CONFIG),
    startGateway(currentRuntime, MQTT_GATEWAY_CONFIG),
  ]);
});
after(async () => {
  await Promise.all([gw?.stop("SIGKILL"), mqttGw?.stop("SIGKILL")]);
});

for (const scenario of scenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
}

for (const scenario of mqttScenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(mqttGw));
}

test(`gateway (${currentRuntime}): SIGTERM -> clients get 1001, exit 0`, () =>
  shutdownScenario(currentRuntime));
