/**
 * Entry point for `deno task start` and `bun run src/main.ts`: loads the config, builds the
 * engine and app, and hands them to the adapter of the runtime it runs on.
 *
 * Exit codes: 0 after a graceful shutdown, 1 when start-up fails, 2 for a bad configuration.
 */
import process from "node:process";
import { ConfigError, configPath, loadConfig } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import type { Logger } from "./core/logger.ts";
import { Engine } from "./engine.ts";
import type { Adapter } from "./serve.ts";
import { serve } from "./serve.ts";

async function loadAdapter(): Promise<Adapter> {
  if ("Deno" in globalThis) return (await import("../adapters/deno.ts")).denoAdapter;
  if ("Bun" in globalThis) return (await import("../adapters/bun.ts")).bunAdapter;
  throw new Error("unsupported runtime: run under Deno (deno task start) or Bun (bun run src/main.ts)");
}

let config: Config;
let warnings: string[];
try {
  ({ config, warnings } = await loadConfig(configPath(process.argv.slice(2), process.env), process.env));
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : String(error));
  process.exit(2);
}

/**
 * Process warnings go through the log. kafkajs arms a timer with a negative delay whenever its
 * request queue is idle (the runtime clamps it to 1 ms; nothing is wrong), so that one is dropped.
 */
function routeWarnings(logger: Logger): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    if (warning.name !== "TimeoutNegativeWarning") {
      logger.warn(`[Process] ${warning.name}: ${warning.message}`);
    }
  });
}

try {
  const engine = new Engine(config);
  routeWarnings(engine.logger);
  for (const warning of warnings) engine.logger.warn(`[Config] ${warning}`);
  await serve(engine, await loadAdapter());
} catch (error) {
  console.error(`ERROR [Server] Start-up failed: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
