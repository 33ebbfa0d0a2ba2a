/**
 * What every entrypoint shares: identity from the request, error responses, and the runtime
 * hooks an adapter supplies.
 */
import type { Context } from "hono";
import type { WSEvents } from "hono/ws";
import { GatewayError } from "../core/errors.ts";
import type { Principal } from "../core/auth.ts";
import { CLIENT_ID_HEADER, CLIENT_ID_QUERY, isSafeName, resolveIdentity } from "../core/identity.ts";
import type { Identity } from "../core/identity.ts";
import type { TrustedProxies } from "../core/client-address.ts";
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
  /** The address the request came from (the TCP peer), if the runtime tells. */
  remoteAddress(c: Context): string | undefined;
}

export interface EntrypointContext {
  engine: Engine;
  hooks: RuntimeHooks;
  /**
   * The client's address: the TCP peer's, or what a trusted proxy's forwarding header names
   * (server.trusted_proxies, core/client-address.ts). For the per-address limits and the logs.
   */
  clientAddress(c: Context): string | undefined;
}

/** Who is asking, and as which client. */
export interface Admitted extends Identity {
  principal?: Principal;
  /** The client's address (EntrypointContext.clientAddress), for a connection being opened. */
  address?: string;
}

/** EntrypointContext.clientAddress over the runtime's peer address and server.trusted_proxies. */
export function clientAddressOf(
  hooks: RuntimeHooks,
  proxies: TrustedProxies,
): (c: Context) => string | undefined {
  return (c) =>
    proxies.clientAddress(hooks.remoteAddress(c), {
      forwarded: c.req.header("forwarded"),
      xForwardedFor: c.req.header("x-forwarded-for"),
    });
}

/**
 * Admits a request: its origin (server.allowed_origins), its credential (`Authorization: Bearer`,
 * else the `token` query parameter: browsers cannot set headers on WebSocket or EventSource), and
 * its client ID (the header, the query parameter, a fresh UUID, or the configured claim). Throws
 * FORBIDDEN (origin, client ID of another claim), UNAUTHENTICATED, BAD_CLIENT_ID.
 */
export async function admit(
  c: Context,
  engine: Engine,
  connecting?: Pick<EntrypointContext, "clientAddress">,
): Promise<Admitted> {
  const authorization = c.req.header("authorization");
  const credential = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? c.req.query(TOKEN_QUERY);
  checkOrigin(c, engine, credential !== undefined);
  const principal = await engine.auth.authenticate(credential);
  // New connections a second, per address and per subject: one client cannot flood the store
  // and the brokers with sessions.
  const address = connecting?.clientAddress(c);
  if (connecting) engine.hub.admitConnection(address, principal?.subject);
  const identity = resolveIdentity(c.req.header(CLIENT_ID_HEADER), c.req.query(CLIENT_ID_QUERY));
  const claim = engine.config.auth.jwt?.client_id_claim;
  if (principal && claim) {
    const value = principal.claims[claim];
    if (!isSafeName(value)) {
      throw new GatewayError("FORBIDDEN", `the token's "${claim}" claim is not a client ID`);
    }
    if (!identity.generated && identity.clientId !== value) {
      throw new GatewayError("FORBIDDEN", `client ID ${identity.clientId} is not the token's`);
    }
    return { clientId: value, generated: false, principal, address };
  }
  return { ...identity, principal, address };
}

/**
 * A browser page of another origin may not act through a user's browser (any page could then
 * take over sessions, or publish with a cross-site POST), unless `server.allowed_origins` lists
 * it (or `*`), or the request carries a credential, which a page cannot make a browser send on
 * its own. Requests without an Origin (not from a browser page) are not affected.
 */
function checkOrigin(c: Context, engine: Engine, credentialed: boolean): void {
  const origin = c.req.header("origin");
  if (origin === undefined) return;
  const allowed = engine.config.server.allowed_origins;
  if (allowed.includes("*") || allowed.includes(origin) || isSameOrigin(c, origin)) return;
  if (credentialed && engine.auth.required) return;
  throw new GatewayError("FORBIDDEN", `origin ${origin} is not allowed (server.allowed_origins)`);
}

/** The page is served from this gateway's own host. */
export function isSameOrigin(c: Context, origin: string): boolean {
  try {
    return new URL(origin).host === (c.req.header("host") ?? new URL(c.req.url).host);
  } catch {
    return false;
  }
}

/** A JSON error response with the status that fits the error's code. */
export function errorResponse(c: Context, engine: Engine, error: unknown): Response {
  const e = GatewayError.from(error);
  engine.hub.recordError(e);
  // Client mistakes are logged at debug only: anyone can cause them, as often as they like.
  if (e.code === "INTERNAL") engine.logger.error(`[HTTP] ${c.req.method} ${c.req.path} failed`, error);
  else engine.logger.debug(`[HTTP] ${c.req.method} ${c.req.path}: ${e.code} ${e.message}`);
  const retryAfter = e.retryAfterMs !== undefined ? Math.max(1, Math.ceil(e.retryAfterMs / 1000)) : 1;
  return c.json(
    {
      type: "error",
      code: e.code,
      message: e.message,
      temporary: e.temporary,
      ...(e.retryAfterMs !== undefined ? { retry_after_ms: e.retryAfterMs } : {}),
    },
    e.status as 400,
    e.temporary ? { "Retry-After": String(retryAfter) } : {},
  );
}

/** Query parameters that are not binding params. */
const TOKEN_QUERY = "token";
const RESERVED = new Set([CLIENT_ID_QUERY, TOKEN_QUERY, "endpoints", "ack", "lastEventId"]);

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
  for (const name of names) engine.hub.endpoints.get(name);
}
