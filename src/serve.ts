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
  /**
   * Binds `server.host:server.port` and serves `app`; throws (or rejects, where binding is
   * asynchronous: Node) when it cannot bind.
   */
  listen(app: Pick<Hono, "fetch">, engine: Engine): Listening | Promise<Listening>;
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): void;
  exit(code: number): never;
}

/**
 * Binds the port, starts the engine, and shuts down gracefully on SIGINT/SIGTERM. The port is
 * bound first, so a taken one stops start-up before any broker is connected and before anything
 * says it started; requests that arrive while the engine starts wait for it (the probes
 * `/healthz` and `/readyz` are answered at once: not ready yet).
 */
export async function serve(engine: Engine, adapter: Adapter): Promise<Listening> {
  const app = createApp(engine, adapter.hooks(engine));
  let ready = false;
  let started!: (ok: boolean) => void;
  const starting = new Promise<boolean>((resolve) => started = resolve);
  const fetch: Hono["fetch"] = (request, env, ctx) => {
    if (ready || PROBES.test(new URL(request.url).pathname)) return app.fetch(request, env, ctx);
    return starting.then((ok) =>
      ok ? app.fetch(request, env, ctx) : Response.json(
        { type: "error", code: "UPSTREAM_UNAVAILABLE", message: "the gateway failed to start" },
        { status: 503 },
      )
    );
  };
  const listening = await bind(adapter, { fetch }, engine);
  try {
    await engine.start();
  } catch (error) {
    started(false);
    // Not awaited: the caller exits on this error, and a stop that waits for clients must not hold it.
    listening.stopAccepting().catch(() => {});
    throw error;
  }
  ready = true;
  started(true);
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

const PROBES = /^\/(healthz|readyz)$/;

/** What a failed bind's code means, in words (Deno, Bun and Node all set `code`). */
const BIND_PROBLEMS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "the address is not one of this machine's",
};

/** adapter.listen, with an error that names the address whatever the runtime says. */
async function bind(adapter: Adapter, app: Pick<Hono, "fetch">, engine: Engine): Promise<Listening> {
  try {
    return await adapter.listen(app, engine);
  } catch (error) {
    const { host, port } = engine.config.server;
    const code = (error as { code?: unknown } | undefined)?.code;
    const problem = (typeof code === "string" && BIND_PROBLEMS[code]) ||
      (error instanceof Error ? error.message : String(error));
    throw new Error(`cannot listen on ${host.includes(":") ? `[${host}]` : host}:${port}: ${problem}`);
  }
}
