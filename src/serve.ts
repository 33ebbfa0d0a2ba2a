/**
 * Runs an engine behind an adapter: start, listen, and the graceful shutdown of DESIGN.md
 * section 10 on SIGINT/SIGTERM. Adapters only translate the runtime's server API.
 */
import { createApp } from "./app.ts";
import type { RuntimeHooks } from "./app.ts";
import type { Engine } from "./engine.ts";
import type { Hono } from "hono";

export interface Listening {
  hostname: string;
  port: number;
  /** Stops accepting new connections. */
  stopAccepting(): Promise<void>;
}

/** What a runtime adapter provides. */
export interface Adapter {
  readonly runtime: string;
  hooks(engine: Engine): RuntimeHooks;
  listen(app: Hono, engine: Engine): Listening;
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): void;
  exit(code: number): never;
}

/** Starts the engine, serves its app, and shuts down gracefully on SIGINT/SIGTERM. */
export async function serve(engine: Engine, adapter: Adapter): Promise<Listening> {
  await engine.start();
  const app = createApp(engine, adapter.hooks(engine));
  const listening = adapter.listen(app, engine);
  engine.logger.info(
    `[Server] Listening on http://${listening.hostname}:${listening.port} (${adapter.runtime})`,
  );
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    engine.logger.info(`[Server] ${signal}: shutting down`);
    const timeout = engine.config.server.shutdown_timeout;
    const deadline = new Promise<"timeout">((resolve) =>
      engine.scheduler.setTimeout(() => resolve("timeout"), timeout)
    );
    const graceful = (async () => {
      const accepting = listening.stopAccepting();
      await engine.stop();
      await accepting;
    })();
    const outcome = await Promise.race([graceful.then(() => "done" as const), deadline]).catch((error) => {
      engine.logger.error("[Server] Shutdown failed", error);
      return "failed" as const;
    });
    if (outcome === "timeout") {
      engine.logger.warn(`[Server] Shutdown took over ${timeout} ms; exiting anyway`);
    } else engine.logger.info("[Server] Stopped");
    adapter.exit(0);
  };
  adapter.onSignal("SIGINT", () => void shutdown("SIGINT"));
  adapter.onSignal("SIGTERM", () => void shutdown("SIGTERM"));
  return listening;
}
