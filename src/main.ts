/**
 * Entry point for `deno task start`, `bun run src/main.ts` and `node src/main.ts`: loads the
 * config, builds the engine and app, and hands them to the adapter of the runtime it runs on.
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
import type { Engine } from "./engine.ts";
import type { Adapter } from "./serve.ts";

const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);
// Node reads the console's files, imported as text, through a module hook, which must be in place
// before the engine's modules load: so the engine is imported here, after it, not above.
if (onNode) await import("../adapters/node-imports.ts");
const { createEngine } = await import("./engine.ts");
const { serve } = await import("./serve.ts");

async function loadAdapter(): Promise<Adapter> {
  if ("Deno" in globalThis) return (await import("../adapters/deno.ts")).denoAdapter;
  if ("Bun" in globalThis) return (await import("../adapters/bun.ts")).bunAdapter;
  if (onNode) return (await import("../adapters/node.ts")).nodeAdapter;
  throw new Error("unsupported runtime: run under Deno, Bun or Node");
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
