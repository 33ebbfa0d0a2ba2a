/**
 * What every entrypoint shares: identity from the request, error responses, and the runtime
 * hooks an adapter supplies.
 */
import type { Context } from "hono";
import type { WSEvents } from "hono/ws";
import { GatewayError } from "../core/errors.ts";
import { CLIENT_ID_HEADER, CLIENT_ID_QUERY, resolveIdentity } from "../core/identity.ts";
import type { Identity } from "../core/identity.ts";
import type { Engine } from "../engine.ts";

/** What an adapter gives the app: the runtime's WebSocket upgrade and socket facts. */
export interface RuntimeHooks {
  /**
   * Upgrades the request, wiring `events` to the socket. Resolves undefined (or rejects) when
   * the runtime refuses the handshake.
   */
  upgradeWebSocket(c: Context, events: WSEvents): Promise<Response | undefined>;
  /** Bytes queued for sending on the runtime's native socket (`WSContext.raw`). */
  bufferedAmount(raw: unknown): number;
  /**
   * Exempts a long-lived response (an SSE stream) from the server's idle timeout: it lives until
   * the client goes or the server stops (Bun closes a response idle for 10 s by default).
   */
  keepStreamOpen(c: Context): void;
}

export interface EntrypointContext {
  engine: Engine;
  hooks: RuntimeHooks;
}

/** The request's client identity; throws BAD_CLIENT_ID. */
export function identify(c: Context): Identity {
  return resolveIdentity(c.req.header(CLIENT_ID_HEADER), c.req.query(CLIENT_ID_QUERY));
}

/** A JSON error response with the status that fits the error's code. */
export function errorResponse(c: Context, engine: Engine, error: unknown): Response {
  const e = GatewayError.from(error);
  engine.hub.recordError(e);
  // Client mistakes are logged at debug only: anyone can cause them, as often as they like.
  if (e.code === "INTERNAL") engine.logger.error(`[HTTP] ${c.req.method} ${c.req.path} failed`, error);
  else engine.logger.debug(`[HTTP] ${c.req.method} ${c.req.path}: ${e.code} ${e.message}`);
  return c.json(
    { type: "error", code: e.code, message: e.message },
    e.status as 400,
    e.temporary ? { "Retry-After": "1" } : {},
  );
}

/** Query parameters that are not binding params. */
const RESERVED = new Set([CLIENT_ID_QUERY, "endpoints", "ack", "lastEventId"]);

/**
 * Binding params from the query string (`/sse/rooms?room=lobby`): raw sockets, SSE and HTTP
 * publish have no frame to carry them. Endpoints validate the values before use.
 */
export function queryParams(c: Context): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [key, value] of new URL(c.req.url).searchParams) {
    if (!RESERVED.has(key)) params[key] = value;
  }
  return params;
}

/** Throws UNKNOWN_ENDPOINT unless every name is a configured endpoint. */
export function requireEndpoints(engine: Engine, names: string[]): void {
  for (const name of names) engine.hub.endpoint(name);
}
