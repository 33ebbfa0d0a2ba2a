/**
 * The black-box gateway suite under the runtime that runs the tests (`deno test` starts the
 * gateway under Deno, `bun test` under Bun), so `npm test` covers both.
 */
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";
import { GATEWAY_CONFIG, scenarios, shutdownScenario } from "./gateway-scenarios.ts";

let gw: Gateway;
before(async () => {
  gw = await startGateway(currentRuntime, GATEWAY_CONFIG);
});
after(async () => {
  await gw?.stop("SIGKILL");
});

for (const scenario of scenarios) {
  test(`gateway (${currentRuntime}): ${scenario.name}`, () => scenario.run(gw));
}

test(`gateway (${currentRuntime}): SIGTERM -> clients get 1001, exit 0`, () =>
  shutdownScenario(currentRuntime));
