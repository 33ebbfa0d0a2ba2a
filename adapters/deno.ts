/**
 * Deno adapter: Deno.serve, hono/deno's WebSocket upgrade (with Deno's idle ping handling), and
 * signals. It translates and nothing more.
 */
import { upgradeWebSocket } from "hono/deno";
import type { Adapter } from "../src/serve.ts";

export const denoAdapter: Adapter = {
  runtime: `deno ${Deno.version.deno}`,
  hooks: (engine) => ({
    // Deno pings an idle socket and closes it when no pong comes back within idleTimeout.
    upgradeWebSocket: (c, events) =>
      upgradeWebSocket(c, events, { idleTimeout: Math.ceil(engine.config.server.idle_timeout / 1000) }),
    bufferedAmount: (raw) => (raw as WebSocket).bufferedAmount,
  }),
  listen(app, engine) {
    const { host, port } = engine.config.server;
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
