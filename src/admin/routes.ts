/**
 * The admin API and the operator's page (docs/operations.md "Admin API"), served on the admin
 * listener only (`admin.host:admin.port`), never on the clients' port. Every call but the page's
 * files and the OpenAPI document needs one of `admin.tokens` as a bearer token, and every call
 * is logged at info with who made it (the token's name, never the token).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { Engine } from "../engine.ts";
import { GatewayError } from "../core/errors.ts";
import { encodeData } from "../core/payload.ts";
import { heldAt } from "../core/session.ts";
import type { Session, SessionQuery } from "../core/session.ts";
import { adminTokens, bearer } from "./auth.ts";
import { openApi } from "./openapi.ts";
import pageHtml from "./page.html" with { type: "text" };
import pageJs from "./page.js" with { type: "text" };
import pageCss from "./page.css" with { type: "text" };

/** What the admin API asks of the process around the engine (src/serve.ts). */
export interface AdminControls {
  /** Starts draining this node (readyz 503, 1001s in waves, then exit 0); resolves at once. */
  drain(): void;
}

/** The most sessions one page lists, and the number when `limit` is not given. */
export const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

type Json = Record<string, unknown>;

const fail = (c: Context, status: 400 | 401 | 404 | 409 | 503, code: string, message: string) =>
  c.json({ type: "error", code, message }, status);

export function createAdminApp(engine: Engine, controls: AdminControls): Hono {
  const app = new Hono();
  const tokens = adminTokens(engine.config.admin.tokens);
  const { logger, hub, store, scheduler } = engine;
  const open = new Set(["/admin", "/admin/", "/admin/page.js", "/admin/page.css", "/admin/openapi.json"]);

  app.use("*", async (c, next) => {
    const who = tokens.who(bearer(c.req.header("authorization")));
    const line = `${c.req.method} ${c.req.path}`;
    if (!open.has(c.req.path) && who === undefined) {
      logger.warn(`[Admin] Refused ${line}: no valid admin token`);
      return fail(c, 401, "UNAUTHENTICATED", "an admin token is needed: Authorization: Bearer <token>");
    }
    await next();
    // The page's files and the document need no token: those calls say "anonymous" when none came.
    logger.info(`[Admin] ${who ?? "anonymous"}: ${line} -> ${c.res.status}`);
  });

  app.get("/admin", (c) => c.redirect("/admin/"));
  app.get("/admin/", (c) => c.body(pageHtml, 200, { "Content-Type": "text/html; charset=utf-8" }));
  app.get("/admin/page.js", (c) => c.body(pageJs, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  app.get("/admin/page.css", (c) => c.body(pageCss, 200, { "Content-Type": "text/css; charset=utf-8" }));
  app.get("/admin/openapi.json", (c) => c.json(openApi));

  app.get("/admin/sessions", async (c) => {
    const state = c.req.query("state");
    if (state !== undefined && state !== "connected" && state !== "disconnected") {
      return fail(c, 400, "BAD_REQUEST", 'state must be "connected" or "disconnected"');
    }
    const limitText = c.req.query("limit");
    const limit = limitText === undefined ? DEFAULT_PAGE : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
      return fail(c, 400, "BAD_REQUEST", `limit must be a whole number from 1 to ${MAX_PAGE}`);
    }
    const query: SessionQuery = {};
    if (state) query.state = state;
    for (const key of ["subject", "node", "endpoint"] as const) {
      const value = c.req.query(key);
      if (value) query[key] = value;
    }
    const now = scheduler.now();
    const page = await store.listSessions(query, c.req.query("cursor") || undefined, limit, now);
    return c.json({ sessions: page.sessions.map((s) => view(s, now)), cursor: page.cursor ?? null });
  });

  app.get("/admin/sessions/:clientId", async (c) => {
    const clientId = c.req.param("clientId");
    const session = await store.get(clientId);
    if (!session) return fail(c, 404, "NOT_FOUND", `no session of ${clientId}`);
    const now = scheduler.now();
    const here = hub.operations.connectionInfo(clientId);
    return c.json({ ...view(session, now), connection: here ? { node: engine.nodeId, ...here } : null });
  });

  app.post("/admin/sessions/:clientId/disconnect", async (c) => {
    const clientId = c.req.param("clientId");
    const outcome = await hub.operations.disconnectClient(clientId);
    if (outcome === "no session") return fail(c, 404, "NOT_FOUND", `no session of ${clientId}`);
    if (outcome === "not connected") return fail(c, 409, "NOT_CONNECTED", `${clientId} is not connected`);
    return c.json({ clientId, outcome }, outcome === "signalled" ? 202 : 200);
  });

  app.delete("/admin/sessions/:clientId", async (c) => {
    const clientId = c.req.param("clientId");
    const outcome = await hub.operations.endSession(clientId);
    if (outcome === "no session") return fail(c, 404, "NOT_FOUND", `no session of ${clientId}`);
    if (outcome === "failed") {
      return fail(
        c,
        503,
        "UPSTREAM_UNAVAILABLE",
        `the session of ${clientId} could not be ended now (a broker refused, or it changed); try again`,
      );
    }
    return c.json({ clientId, outcome }, outcome === "signalled" ? 202 : 200);
  });

  app.post("/admin/sessions/:clientId/messages", async (c) => {
    const clientId = c.req.param("clientId");
    const body = await jsonBody(c);
    if (!body || typeof body.endpoint !== "string" || !("data" in body)) {
      return fail(c, 400, "BAD_REQUEST", 'the body is {"endpoint": "<name>", "data": <JSON>}');
    }
    if (!hub.endpoints.has(body.endpoint)) {
      return fail(c, 404, "UNKNOWN_ENDPOINT", `no endpoint ${body.endpoint}`);
    }
    const outcome = await hub.operations.deliverTo(clientId, body.endpoint, encodeData(body.data));
    if (outcome === "no session") return fail(c, 404, "NOT_FOUND", `no session of ${clientId}`);
    if (outcome === "not connected" || outcome === "not written") {
      return fail(
        c,
        409,
        "NOT_CONNECTED",
        `${clientId} is not connected, or does not take ${body.endpoint} now`,
      );
    }
    return c.json({ clientId, outcome }, outcome === "signalled" ? 202 : 200);
  });

  app.post("/admin/endpoints/:name/messages", async (c) => {
    const name = c.req.param("name");
    const body = await jsonBody(c);
    if (!body || !("data" in body)) {
      return fail(c, 400, "BAD_REQUEST", 'the body is {"data": <JSON>, "params": {...}, "clientId": "..."}');
    }
    if (!hub.endpoints.has(name)) return fail(c, 404, "UNKNOWN_ENDPOINT", `no endpoint ${name}`);
    const params = isRecord(body.params) ? body.params as Record<string, string> : {};
    const clientId = typeof body.clientId === "string" ? body.clientId : "admin";
    try {
      const receipt = await hub.endpoint(name).publish(clientId, { payload: encodeData(body.data) }, params);
      return c.json({ endpoint: name, receipt });
    } catch (error) {
      const e = GatewayError.from(error);
      return c.json({ type: "error", code: e.code, message: e.message }, e.status as 400);
    }
  });

  app.get("/admin/nodes", async (c) => {
    const nodes = await store.nodes(scheduler.now());
    return c.json({ nodes, self: engine.nodeId });
  });

  app.get("/admin/stats", async (c) => {
    const now = scheduler.now();
    const text = await engine.metrics.render();
    return c.json({
      node: engine.nodeId,
      at: now,
      draining: hub.draining,
      connections: hub.connectionCount,
      sessions: await store.counts(now),
      bindings: byEndpoint(text, "mediation_bindings"),
      messages: {
        in: byEndpoint(text, "mediation_messages_in_total"),
        out: byEndpoint(text, "mediation_messages_out_total"),
      },
    });
  });

  app.post("/admin/drain", (c) => {
    const already = hub.draining;
    if (!already) controls.drain();
    return c.json(
      { node: engine.nodeId, draining: true, drain_time_ms: engine.config.admin.drain_time },
      202,
    );
  });

  app.notFound((c) => fail(c, 404, "NOT_FOUND", `no route ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    const e = GatewayError.from(error);
    logger.error(`[Admin] ${c.req.method} ${c.req.path} failed`, error);
    return c.json({ type: "error", code: e.code, message: e.message }, e.status as 500);
  });
  return app;
}

/** A session as the admin API shows it. */
function view(session: Session, now: number): Json {
  const connected = heldAt(session, now);
  return {
    clientId: session.clientId,
    state: connected ? "connected" : "disconnected",
    subject: session.subject ?? null,
    node: connected ? session.nodeId ?? null : null,
    epoch: session.epoch,
    connectedAt: session.connectedAt,
    disconnectedAt: session.disconnectedAt ?? null,
    deadline: session.reconnectionDeadline ?? null,
    subscriptions: session.subscriptions.map((s) => ({
      endpoint: s.endpoint,
      params: s.params,
      boundAt: s.boundAt,
    })),
  };
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) &&
  Object.values(value).every((v) => typeof v === "string");

async function jsonBody(c: Context): Promise<Json | undefined> {
  try {
    const body = await c.req.json();
    return typeof body === "object" && body !== null && !Array.isArray(body) ? body : undefined;
  } catch {
    return undefined;
  }
}

/** One metric's values by their `endpoint` label, from the Prometheus text (this node's). */
function byEndpoint(text: string, metric: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const endpoint = line.match(/endpoint="((?:[^"\\]|\\.)*)"/)?.[1];
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (endpoint !== undefined && Number.isFinite(value)) out[endpoint] = (out[endpoint] ?? 0) + value;
  }
  return out;
}
