/**
 * `deno task conformance` / `npm run conformance`: runs the black-box gateway scenarios against
 * src/main.ts under every runtime and prints a matrix, scenario x runtime (session store and
 * endpoint in the column heading). Exits 1 if any cell failed.
 */
import process from "node:process";
import { startGateway } from "../support/gateway-process.ts";
import type { Runtime } from "../support/runtime.ts";
import { scenarios, shutdownScenario } from "./gateway-scenarios.ts";
import { GATEWAY_CONFIG } from "./gateway-scenarios.ts";

const runtimes: Runtime[] = ["deno", "bun"];
const column = (r: Runtime) => `${r} / memory store / memory endpoint`;
const rows = [...scenarios.map((s) => s.name), "SIGTERM -> clients get 1001, exit 0"];
const results = new Map<string, Map<Runtime, string>>(rows.map((r) => [r, new Map()]));
const failures: string[] = [];

for (const runtime of runtimes) {
  const record = (row: string, error?: unknown) => {
    results.get(row)!.set(runtime, error ? "FAIL" : "pass");
    if (error) failures.push(`${runtime} | ${row}: ${error instanceof Error ? error.message : error}`);
  };
  let gw;
  try {
    gw = await startGateway(runtime, GATEWAY_CONFIG);
  } catch (error) {
    for (const row of rows) record(row, error);
    continue;
  }
  for (const scenario of scenarios) {
    await scenario.run(gw).then(() => record(scenario.name), (error) => record(scenario.name, error));
  }
  await gw.stop("SIGKILL");
  await shutdownScenario(runtime).then(() => record(rows.at(-1)!), (error) => record(rows.at(-1)!, error));
}

const width = Math.max(...rows.map((r) => r.length));
const widths = runtimes.map((r) => column(r).length);
console.log(
  `\n${"scenario".padEnd(width)} | ${runtimes.map((r, i) => column(r).padEnd(widths[i])).join(" | ")}`,
);
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
process.exit(failures.length ? 1 : 0);
