/**
 * Runs an engine behind an adapter: start, listen, and the graceful shutdown of DESIGN.md
 * section 10 on SIGINT/SIGTERM. Adapters only translate the runtime's server API.
 */
import { createAdminApp } from "./admin/routes.ts";
import { createApp } from "./app.ts";
import type { RuntimeHooks } from "./app.ts";
import type { Engine } from "./engine.ts";
import type { Hono } from "hono";
import type { TlsConfig } from "./config/listener-schema.ts";
import { redact } from "./core/redact.ts";
import { loadTls } from "./tls.ts";
import type { TlsMaterial } from "./tls.ts";

export interface Listening {
  hostname: string;
  port: number;
  /** Stops accepting new connections (on every listener a rotation left serving, too). */
  stopAccepting(): Promise<void>;
  /**
   * With TLS: serves new connections with `tls` from now on, on the same port, with no moment
   * where nothing listens. Rejects when the runtime cannot, and the current certificate is still
   * served then. What becomes of live connections is the runtime's (docs/operations.md "TLS").
   */
  rotateTls?(tls: TlsMaterial): Promise<void>;
}

/** What a runtime adapter provides. */
export interface Adapter {
  readonly runtime: string;
  hooks(engine: Engine): RuntimeHooks;
  /**
   * Binds `server.host:server.port` (or `at`: the admin listener) and serves `app`, over TLS
   * with `tls`; throws (or rejects, where binding is asynchronous: Node) when it cannot bind.
   */
  listen(
    app: Pick<Hono, "fetch">,
    engine: Engine,
    tls?: TlsMaterial,
    at?: { host: string; port: number },
  ): Listening | Promise<Listening>;
  onSignal(signal: Signal, handler: () => void): void;
  exit(code: number): never;
}

/**
 * The signals the gateway handles: SIGINT/SIGTERM stop it, SIGHUP reloads the certificates,
 * SIGUSR2 drains it (docs/operations.md "Drain"; Deno and Bun both deliver it on Linux and macOS).
 */
export type Signal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGUSR2";

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
  // Read before the port is bound: a missing or unreadable file stops start-up with its name.
  const tlsConfig = engine.config.server.tls;
  const tls = tlsConfig ? loadTls(tlsConfig, "server.tls") : undefined;
  const { admin: adminConfig } = engine.config;
  const adminTls = adminConfig.enabled && adminConfig.tls ? loadTls(adminConfig.tls, "admin.tls") : undefined;
  const listening = await bind(adapter, { fetch }, engine, tls);
  engine.node.address = `${listening.hostname}:${listening.port}`;
  let admin: Listening | undefined;
  try {
    if (adminConfig.enabled) {
      const adminApp = createAdminApp(engine, { drain: () => void drain("POST /admin/drain") });
      admin = await bind(adapter, adminApp, engine, adminTls, {
        host: adminConfig.host,
        port: adminConfig.port,
      });
    }
    await engine.start();
  } catch (error) {
    started(false);
    // Not awaited: the caller exits on this error, and a stop that waits for clients must not hold it.
    // A listener that fails to close is closed by that exit anyway; the start-up error is what counts.
    listening.stopAccepting().catch(() => {});
    admin?.stopAccepting().catch(() => {});
    throw error;
  }
  ready = true;
  started(true);
  let stopping = false;
  const reloads: Array<() => void> = [];
  if (tlsConfig && tls) {
    reloads.push(reloader(engine, listening, tlsConfig, () => stopping));
    engine.logger.info(`[Server] TLS certificate ${tls.summary}`);
  }
  if (admin && adminConfig.tls && adminTls) {
    reloads.push(reloader(engine, admin, adminConfig.tls, () => stopping, "admin.tls"));
    engine.logger.info(`[Admin] TLS certificate ${adminTls.summary}`);
  }
  // Before the line that says it listens: a SIGHUP from then on is a reload, never an exit.
  if (reloads.length > 0) adapter.onSignal("SIGHUP", () => reloads.forEach((reload) => reload()));
  engine.logger.info(
    `[Server] Listening on ${
      tls ? "https" : "http"
    }://${listening.hostname}:${listening.port} (${adapter.runtime})`,
  );
  if (admin) {
    engine.logger.info(
      `[Admin] Listening on ${adminTls ? "https" : "http"}://${admin.hostname}:${admin.port}`,
    );
  }
  let draining = false;
  /**
   * Drain (docs/operations.md "Drain"): /readyz answers 503 and new connections are refused at
   * once; the live ones close with 1001 in waves over admin.drain_time; then the graceful
   * shutdown, and exit 0.
   */
  async function drain(why: string): Promise<void> {
    if (draining || stopping) return;
    draining = true;
    const time = engine.config.admin.drain_time;
    engine.logger.info(`[Server] ${why}: draining over ${time} ms, then exiting`);
    await engine.hub.drain(time, DRAIN_WAVES).catch((error) =>
      engine.logger.error("[Server] Drain failed", error)
    );
    await shutdown("drained");
  }
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
      const adminAccepting = admin?.stopAccepting();
      await engine.stop();
      await accepting;
      await adminAccepting;
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
  adapter.onSignal("SIGUSR2", () => void drain("SIGUSR2"));
  return listening;
}

/** How many waves a drain closes its connections in, spread evenly over admin.drain_time. */
export const DRAIN_WAVES = 10;

const PROBES = /^\/(healthz|readyz)$/;

/** What a failed bind's code means, in words (Deno, Bun and Node all set `code`). */
const BIND_PROBLEMS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "the address is not one of this machine's",
};

/**
 * SIGHUP's handler: reads the certificate files again and serves what they hold now; a problem
 * (a file half-written, a key of another certificate) is a WARN, and the current certificate
 * stays. Reloads run one at a time, in order.
 */
function reloader(
  engine: Engine,
  listening: Listening,
  tls: TlsConfig,
  stopping: () => boolean,
  key: "server.tls" | "admin.tls" = "server.tls",
): () => void {
  const component = key === "server.tls" ? "Server" : "Admin";
  let queue = Promise.resolve();
  const keep = (problem: string) =>
    engine.logger.warn(`[${component}] SIGHUP: keeping the current certificate: ${problem}`);
  return () => {
    queue = queue.then(async () => {
      if (stopping()) return;
      let material: TlsMaterial;
      try {
        material = loadTls(tls, key);
      } catch (error) {
        return keep((error as Error).message);
      }
      try {
        if (!listening.rotateTls) {
          throw new Error("this runtime cannot change the certificate of its listener");
        }
        await listening.rotateTls(material);
      } catch (error) {
        return keep(redact(error instanceof Error ? error.message : String(error)));
      }
      engine.logger.info(`[${component}] SIGHUP: serving the new TLS certificate ${material.summary}`);
    });
  };
}

/** adapter.listen, with an error that names the address whatever the runtime says. */
async function bind(
  adapter: Adapter,
  app: Pick<Hono, "fetch">,
  engine: Engine,
  tls?: TlsMaterial,
  at?: { host: string; port: number },
): Promise<Listening> {
  try {
    return await adapter.listen(app, engine, tls, at);
  } catch (error) {
    const { host, port } = at ?? engine.config.server;
    const code = (error as { code?: unknown } | undefined)?.code;
    const problem = (typeof code === "string" && BIND_PROBLEMS[code]) ||
      (error instanceof Error ? error.message : String(error));
    throw new Error(`cannot listen on ${host.includes(":") ? `[${host}]` : host}:${port}: ${problem}`);
  }
}
