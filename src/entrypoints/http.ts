/**
 * HTTP publish (`POST {path}/:endpoint`): the body is the payload; 202 with a receipt once the
 * broker confirmed it. Query parameters other than `clientId` are the binding params that fill
 * the endpoint's topic template. Publishing over HTTP creates no session and binds nothing: a request has
 * no connection to deliver to, so broker resources for it would only wait to expire.
 */
import type { Hono } from "hono";
import { GatewayError } from "../core/errors.ts";
import type { EntrypointContext } from "./common.ts";
import { admit, errorResponse, queryParams, requireEndpoints } from "./common.ts";

export function httpRoutes(app: Hono, path: string, { engine }: EntrypointContext): void {
  const limit = engine.config.policy.max_message_bytes;
  app.post(`${path}/:endpoint`, async (c) => {
    try {
      const { clientId, principal } = await admit(c, engine);
      const endpoint = c.req.param("endpoint");
      requireEndpoints(engine, [endpoint]);
      // Refuse an oversized body before reading it.
      const declared = Number(c.req.header("content-length") ?? 0);
      if (declared > limit) throw new GatewayError("TOO_LARGE", `body of ${declared} bytes exceeds ${limit}`);
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
