/**
 * Deno adapter: Deno.serve, the WebSocket upgrade (with Deno's idle ping handling) mapped onto
 * hono's WSContext, and signals. It translates and nothing more.
 *
 * The upgrade is Deno's own, not hono/deno's helper: the helper compares the Upgrade header to
 * "websocket" case-sensitively and answers nothing for a legal `Upgrade: WebSocket`.
 *
 * What Deno does not offer (Deno 2.x; docs/configuration.md "Limits"): `Deno.upgradeWebSocket` has no maximum
 * message size (Deno reads a message of up to 64 MiB whole before the app sees it; the
 * entrypoint then closes the socket with 1009), and `Deno.serve` has no timeout for request
 * headers (a connection that never completes them is held until the client goes).
 */
import { WSContext } from "hono/ws";
import type { WSEvents } from "hono/ws";
import type { Adapter } from "../src/serve.ts";

function upgrade(request: Request, events: WSEvents, idleTimeout: number): Response {
  const protocol = request.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { response, socket } = Deno.upgradeWebSocket(request, {
    idleTimeout,
    ...protocol ? { protocol } : {},
  });
  const ws = new WSContext({
    send: (data) => socket.send(data),
    close: (code, reason) => socket.close(code, reason),
    raw: socket,
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    get protocol() {
      return socket.protocol;
    },
    url: null,
  });
  socket.onopen = (evt) => events.onOpen?.(evt, ws);
  socket.onmessage = (evt) => events.onMessage?.(evt, ws);
  socket.onclose = (evt) => events.onClose?.(evt, ws);
  socket.onerror = (evt) => events.onError?.(evt, ws);
  return response;
}

export const denoAdapter: Adapter = {
  runtime: `deno ${Deno.version.deno}`,
  hooks: (engine) => ({
    // Deno pings an idle socket and closes it when no pong comes back within idleTimeout.
    upgradeWebSocket: (c, events) =>
      Promise.resolve(upgrade(c.req.raw, events, Math.ceil(engine.config.server.idle_timeout / 1000))),
    bufferedAmount: (raw) => (raw as WebSocket).bufferedAmount,
    keepStreamOpen: () => {},
    // Deno.serve hands the app its ServeHandlerInfo as `c.env`.
    remoteAddress: (c) => (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr?.hostname,
  }),
  listen(app, engine, at) {
    const { host, port } = at ?? engine.config.server;
    const server = Deno.serve({ hostname: host, port, onListen: () => {} }, app.fetch);
    const addr = server.addr as Deno.NetAddr;
    return {
      hostname: addr.hostname,
      port: addr.port,
      stopAccepting: () => server.shutdown(),
    };
  },
  onSignal: (signal, handler) => Deno.addSignalListener(signal, handler),
  exit: (code) => Deno.exit(code),
};
