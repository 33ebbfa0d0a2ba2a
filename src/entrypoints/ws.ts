/**
 * WebSocket entrypoints (DESIGN.md section 7): the routes and the upgrade.
 * - `GET {path}`: multiplexed JSON frames (publish, subscribe, unsubscribe, ping): `ws-multiplexed.ts`.
 * - `GET {path}/:endpoint`: raw; bound to one endpoint on connect (query parameters other than
 *   `clientId` are the binding params), every frame is a payload: `ws-raw.ts`.
 * The socket both share (inbox, back-pressured writes, limits) is `ws-socket.ts`.
 *
 * The session is taken before the upgrade, so a bad client ID or an unreachable store is an
 * HTTP error the client can read, not a socket that opens and dies; except a permanent store
 * error (an unreadable stored session), which a WebSocket client would retry for ever as a 1006:
 * that socket is opened to get the error frame and close code 4500. The handshake is checked
 * first, as the runtimes check it: a request the runtime would refuse must not take a session
 * over (and close its owner with 4409) before failing.
 */
import type { Context, Hono } from "hono";
import type { Connection } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { CLIENT_ID_HEADER } from "../core/identity.ts";
import type { EntrypointContext } from "./common.ts";
import { admit, errorResponse, queryParams, requireEndpoints } from "./common.ts";
import { checkHandshake } from "./handshake.ts";
import { MultiplexedSocket } from "./ws-multiplexed.ts";
import { RawSocket } from "./ws-raw.ts";
import { isPermanentStoreError } from "./ws-socket.ts";

const encoder = new TextEncoder();

export function wsRoutes(app: Hono, path: string, ctx: EntrypointContext): void {
  app.get(path, (c) => upgrade(c, ctx, undefined));
  app.get(`${path}/:endpoint`, (c) => upgrade(c, ctx, c.req.param("endpoint")));
}

async function upgrade(c: Context, ctx: EntrypointContext, rawEndpoint: string | undefined) {
  const { engine, hooks } = ctx;
  let conn: Connection;
  let address: string | undefined;
  let handshakeOk = false;
  try {
    const admitted = await admit(c, engine, ctx);
    const { clientId, principal } = admitted;
    address = admitted.address;
    if (rawEndpoint !== undefined) requireEndpoints(engine, [rawEndpoint]);
    const refused = checkHandshake(c.req.raw.headers);
    if (refused) {
      return c.json(
        { type: "error", code: "BAD_REQUEST", message: refused.message, temporary: false },
        refused.status,
      );
    }
    handshakeOk = true;
    conn = await engine.hub.connect(clientId, rawEndpoint === undefined ? "ws" : "ws-raw", {
      principal,
      acks: rawEndpoint === undefined && c.req.query("ack") === "1",
    });
  } catch (error) {
    const e = GatewayError.from(error);
    if (handshakeOk && isPermanentStoreError(e)) {
      const answer = await refuseOnSocket(c, ctx, e, rawEndpoint === undefined);
      if (answer) return answer;
    }
    return errorResponse(c, engine, error);
  }
  c.header(CLIENT_ID_HEADER, conn.clientId);
  const session = rawEndpoint === undefined
    ? new MultiplexedSocket(engine, conn, hooks.bufferedAmount)
    : new RawSocket(engine, conn, hooks.bufferedAmount, rawEndpoint, queryParams(c));
  session.address = address;
  let response: Response | undefined;
  try {
    response = await hooks.upgradeWebSocket(c, session.events());
  } catch (error) {
    engine.logger.debug(`[WS] Upgrade of ${conn.clientId} failed: ${(error as Error).message}`);
  }
  if (response) return response;
  // The runtime refused a handshake that passed our check: nothing to deliver to.
  void conn.close();
  return c.json(
    { type: "error", code: "BAD_REQUEST", message: "WebSocket upgrade failed", temporary: false },
    400,
  );
}

/**
 * Upgrades only to refuse: a multiplexed socket gets the error frame (`"temporary":false`), then
 * every socket is closed with PERMANENT_ERROR and `<CODE>: <message>` as the reason. Undefined
 * when the runtime refused the upgrade (the caller answers over HTTP then).
 */
async function refuseOnSocket(
  c: Context,
  { engine, hooks }: EntrypointContext,
  e: GatewayError,
  multiplexed: boolean,
): Promise<Response | undefined> {
  const frame = JSON.stringify({ type: "error", code: e.code, message: e.message, temporary: false });
  try {
    const response = await hooks.upgradeWebSocket(c, {
      onOpen: (_evt, ws) => {
        if (multiplexed) ws.send(frame);
        // A close reason is at most 123 bytes of UTF-8.
        ws.close(CloseCode.PERMANENT_ERROR, truncateUtf8(`${e.code}: ${e.message}`, 123));
      },
    });
    if (response) {
      engine.hub.recordError(e);
      engine.logger.debug(`[WS] ${c.req.path}: refused for good: ${e.code} ${e.message}`);
    }
    return response;
  } catch {
    return undefined;
  }
}

/** `text` cut to at most `max` bytes of UTF-8, on a character boundary. */
function truncateUtf8(text: string, max: number): string {
  if (encoder.encode(text).length <= max) return text;
  let cut = text.slice(0, max);
  while (encoder.encode(cut).length > max) cut = cut.slice(0, -1);
  return cut;
}
