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
import type { TlsMaterial } from "../src/tls.ts";

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
  listen(app, engine, tls) {
    const { host } = engine.config.server;
    const start = (port: number, material?: TlsMaterial, reusePort = false) =>
      Deno.serve({
        hostname: host,
        port,
        onListen: () => {},
        ...material ? { cert: material.cert, key: material.key, reusePort } : {},
      }, app.fetch);
    // With TLS the port is bound with SO_REUSEPORT, so a rotation can bind the new certificate's
    // listener before the old one closes. Deno allows that for TLS only with --unstable-net
    // (deno.json sets it), and without the flag it exits the process rather than throw; the flag
    // is told by the API it adds (Deno.listenDatagram). Without it the port is bound plainly,
    // and cannot rotate.
    const reusePort = tls !== undefined &&
      typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
    let server = start(engine.config.server.port, tls, reusePort);
    const addr = server.addr as Deno.NetAddr;
    /** Listeners a rotation replaced, until their requests end. */
    const retired: Promise<void>[] = [];
    return {
      hostname: addr.hostname,
      port: addr.port,
      stopAccepting: async () => void await Promise.all([server.shutdown(), ...retired]),
      // Throws (the caller keeps the current certificate) when it cannot bind the new listener.
      rotateTls: tls && ((material) => {
        if (!reusePort) {
          throw new Error(
            "Deno rotates certificates only with --unstable-net (deno.json sets it); restart instead",
          );
        }
        const next = start(addr.port, material, true);
        // Deno.serve cannot stop accepting and keep its upgraded sockets: shutting the old
        // listener closes its WebSockets (1001; clients resume on the new one), while its
        // requests and SSE streams run to their end.
        retired.push(server.shutdown());
        server = next;
        return Promise.resolve();
      }),
    };
  },
  onSignal: (signal, handler) => Deno.addSignalListener(signal, handler),
  exit: (code) => Deno.exit(code),
};
