/**
 * Entry point for `deno task start` and `bun run src/main.ts`: loads the config, builds the
 * engine and app, and hands them to the adapter of the runtime it runs on.
 *
 * Exit codes: 0 after a graceful shutdown, 1 when start-up fails, 2 for a bad command line or
 * configuration (`--help` prints the usage and exits 0).
 */
import process from "node:process";
import { commandLine, usage, USAGE_HINT, UsageError } from "./config/command-line.ts";
import type { CommandLine } from "./config/command-line.ts";
import { ConfigError, configPath } from "./config/load.ts";
import type { Logger } from "./core/logger.ts";
import { redact } from "./core/redact.ts";
import { createEngine } from "./engine.ts";
import type { Engine } from "./engine.ts";
import type { Adapter } from "./serve.ts";
import { serve } from "./serve.ts";

async function loadAdapter(): Promise<Adapter> {
  if ("Deno" in globalThis) return (await import("../adapters/deno.ts")).denoAdapter;
  if ("Bun" in globalThis) return (await import("../adapters/bun.ts")).bunAdapter;
  throw new Error("unsupported runtime: run under Deno (deno task start) or Bun (bun run src/main.ts)");
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

let args: CommandLine;
try {
  args = commandLine(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`${error.message}\n${USAGE_HINT}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage());
  process.exit(0);
}

let engine: Engine;
try {
  engine = await createEngine({ configPath: configPath(process.argv.slice(2), process.env) });
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(redact(error.message));
    process.exit(2);
  }
  console.error(
    `ERROR [Server] Start-up failed: ${redact(error instanceof Error ? error.message : String(error))}`,
  );
  process.exit(1);
}

try {
  routeWarnings(engine.logger);
  await serve(engine, await loadAdapter());
} catch (error) {
  // Through the log: its format, its timestamp, and the stack of what failed.
  engine.logger.error("[Server] Start-up failed", error);
  process.exit(1);
}
