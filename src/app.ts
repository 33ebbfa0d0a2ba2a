/**
 * Builds the Hono app from an Engine and the adapter's runtime hooks: the configured
 * entrypoints plus the operational routes (`/healthz`, `/readyz`, `/metrics`) and, with
 * `server.console: true`, the browser console (`/console`).
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import { consoleRoutes } from "./console/routes.ts";
import { TrustedProxies } from "./core/client-address.ts";
import { clientAddressOf, isSameOrigin } from "./entrypoints/common.ts";
import type { Engine } from "./engine.ts";
import type { RuntimeHooks } from "./entrypoints/common.ts";
import { httpRoutes } from "./entrypoints/http.ts";
import { sseRoutes } from "./entrypoints/sse.ts";
import { wsRoutes } from "./entrypoints/ws.ts";

export type { RuntimeHooks } from "./entrypoints/common.ts";

/**
 * @example
 * const app = createApp(engine, { upgradeWebSocket: (c, events) => upgradeWebSocket(c, events), bufferedAmount });
 * Deno.serve({ port: 8080 }, app.fetch);
 */
export function createApp(engine: Engine, hooks: RuntimeHooks): Hono {
  const app = new Hono();
  const proxies = new TrustedProxies(engine.config.server.trusted_proxies);
  const ctx = { engine, hooks, clientAddress: clientAddressOf(hooks, proxies) };
  // CORS for pages of the allowed origins (SSE and HTTP publish; WebSocket has no CORS, its
  // upgrade checks the Origin itself), preflight included. Others get no CORS headers, so their
  // browsers keep the answers from them; the request itself is refused by its entrypoint.
  const allowed = engine.config.server.allowed_origins;
  const corsFor = cors({
    origin: (
      origin,
      c,
    ) => (allowed.includes("*") || allowed.includes(origin) || isSameOrigin(c, origin) ? origin : null),
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ["Authorization", "Content-Type", "X-WSO2-Client-ID", "X-Message-ID", "Last-Event-ID"],
    exposeHeaders: ["X-WSO2-Client-ID"],
    maxAge: 600,
  });
  for (const entrypoint of engine.config.entrypoints) {
    if (entrypoint.type !== "websocket") {
      app.use(`${entrypoint.path}/*`, corsFor).use(entrypoint.path, corsFor);
    }
    switch (entrypoint.type) {
      case "websocket":
        wsRoutes(app, entrypoint.path, ctx);
        break;
      case "sse":
        sseRoutes(app, entrypoint.path, ctx);
        break;
      case "http":
        httpRoutes(app, entrypoint.path, ctx);
        break;
    }
  }
  app.get("/healthz", (c) => c.json({ status: "ok", node: engine.nodeId }));
  app.get("/readyz", async (c) => {
    const readiness = await engine.readiness();
    return c.json(readiness, readiness.ok ? 200 : 503);
  });
  app.get(
    "/metrics",
    async (c) => c.body(await engine.metrics.render(), 200, { "Content-Type": "text/plain; version=0.0.4" }),
  );
  if (engine.config.server.console) consoleRoutes(app, engine);
  app.notFound((c) =>
    c.json(
      { type: "error", code: "UNKNOWN_ENDPOINT", message: `no route ${c.req.path}`, temporary: false },
      404,
    )
  );
  app.onError((error, c) => {
    engine.logger.error(`[HTTP] ${c.req.method} ${c.req.path} failed`, error);
    return c.json({ type: "error", code: "INTERNAL", message: "internal error", temporary: false }, 500);
  });
  return app;
}
