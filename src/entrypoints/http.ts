/**
 * HTTP publish (`POST {path}/:endpoint`): the body is the payload; 202 with a receipt once the
 * broker confirmed it. Query parameters other than `clientId` are the binding params that fill
 * the endpoint's topic template. Publishing over HTTP creates no session and binds nothing: a request has
 * no connection to deliver to, so broker resources for it would only wait to expire.
 *
 * A body past `policy.max_message_bytes` is refused with 413 TOO_LARGE while it streams in: a
 * declared Content-Length at once, a chunked body as soon as it passes the limit, so no more
 * than the limit is ever held. The answer closes the connection, so the runtime does not go on
 * reading what the client still sends.
 */
import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { GatewayError } from "../core/errors.ts";
import type { Engine } from "../engine.ts";
import type { EntrypointContext } from "./common.ts";
import { admit, errorResponse, queryParams, requireEndpoints } from "./common.ts";

export function httpRoutes(app: Hono, path: string, { engine }: EntrypointContext): void {
  const limit = engine.config.policy.max_message_bytes;
  const limited = bodyLimit({ maxSize: limit, onError: (c) => tooLarge(c, engine, limit) });
  app.post(`${path}/:endpoint`, limited, async (c) => {
    try {
      const { clientId, principal } = await admit(c, engine);
      const endpoint = c.req.param("endpoint");
      requireEndpoints(engine, [endpoint]);
      const body = new Uint8Array(await c.req.arrayBuffer());
      const receipt = await engine.hub.publishDetached(
        clientId,
        endpoint,
        body,
        queryParams(c),
        principal,
      );
      const id = c.req.header("x-message-id");
      return c.json({ type: "receipt", ...(id ? { id } : {}), clientId, meta: receipt.meta ?? {} }, 202);
    } catch (error) {
      return errorResponse(c, engine, error);
    }
  });
}

/** 413 TOO_LARGE, and the connection closes: the rest of the body is not read. */
function tooLarge(c: Context, engine: Engine, limit: number): Response {
  const declared = c.req.header("content-length");
  const what = declared && !c.req.header("transfer-encoding") ? `body of ${declared} bytes` : "body";
  const response = errorResponse(c, engine, new GatewayError("TOO_LARGE", `${what} exceeds ${limit} bytes`));
  response.headers.set("Connection", "close");
  return response;
}
