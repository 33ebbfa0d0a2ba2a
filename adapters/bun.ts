/**
 * Bun adapter: Bun.serve, hono/bun's WebSocket upgrade and handler (with Bun's idle timeout and
 * pings), and signals. It translates and nothing more.
 */
import { upgradeWebSocket, websocket } from "hono/bun";
import process from "node:process";
import type { Adapter } from "../src/serve.ts";

/** The part of Bun's API this adapter uses (Bun's own types are not installed for `deno check`). */
declare const Bun: {
  version: string;
  serve(options: {
    hostname: string;
    port: number;
    fetch: (request: Request, server: unknown) => Response | Promise<Response>;
    websocket: unknown;
  }): { hostname: string; port: number; stop(closeActive?: boolean): Promise<void> };
};

/** The server hono/bun hands the app as `c.env` (the second argument of `fetch`). */
interface BunServer {
  timeout(request: Request, seconds: number): void;
}

export const bunAdapter: Adapter = {
  runtime: `bun ${Bun.version}`,
  hooks: () => ({
    upgradeWebSocket: (c, events) => upgradeWebSocket(c, events),
    bufferedAmount: (raw) => (raw as { getBufferedAmount(): number }).getBufferedAmount(),
    // 0: no idle timeout for this response; a failed write (a gone client) still ends it.
    keepStreamOpen: (c) => (c.env as BunServer).timeout(c.req.raw, 0),
  }),
  listen(app, engine) {
    const { host, port, idle_timeout } = engine.config.server;
    const server = Bun.serve({
      hostname: host,
      port,
      fetch: (request, srv) => app.fetch(request, srv),
      // Bun closes a socket idle for idleTimeout seconds and pings to keep live ones busy.
      websocket: {
        ...websocket,
        idleTimeout: Math.min(960, Math.ceil(idle_timeout / 1000)),
        sendPings: true,
      },
    });
    return {
      hostname: server.hostname,
      port: server.port,
      stopAccepting: () => server.stop(false),
    };
  },
  onSignal: (signal, handler) => void process.on(signal, handler),
  exit: (code) => process.exit(code),
};
