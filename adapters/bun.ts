/**
 * Bun adapter: Bun.serve, the WebSocket upgrade and handler (with Bun's idle timeout and pings,
 * its message size limit, and its send results) mapped onto hono's WSContext, and signals. It
 * translates and nothing more.
 *
 * The upgrade and handler are this adapter's own, not hono/bun's: hono/bun's WSContext drops
 * what `send` returns, and Bun reports a frame it did not take only there.
 */
import { WSContext } from "hono/ws";
import type { WSEvents } from "hono/ws";
import process from "node:process";
import { maxFrameBytes } from "../src/entrypoints/frame-size.ts";
import type { Engine } from "../src/engine.ts";
import type { Adapter } from "../src/serve.ts";
import type { TlsMaterial } from "../src/tls.ts";

/** The part of Bun's API this adapter uses (Bun's own types are not installed for `deno check`). */
declare const Bun: {
  version: string;
  serve(options: {
    hostname: string;
    port: number;
    fetch: (request: Request, server: BunServer) => Response | Promise<Response>;
    websocket: BunWebSocketHandler;
    tls?: { cert: string; key: string };
    reusePort?: boolean;
  }): { hostname: string; port: number; stop(closeActive?: boolean): Promise<void> };
};

/** The server Bun hands `fetch`, which the app gets as `c.env`. */
interface BunServer {
  upgrade(request: Request, options: { data: SocketData }): boolean;
  timeout(request: Request, seconds: number): void;
  requestIP(request: Request): { address: string } | null;
}

interface SocketData {
  events: WSEvents;
  protocol: string;
  context?: WSContext;
}

interface BunSocket {
  readonly data: SocketData;
  readonly readyState: number;
  /** Bytes written, -1 when queued behind back-pressure, 0 when dropped (or the socket is gone). */
  send(data: string | BufferSource): number;
  close(code?: number, reason?: string): void;
  getBufferedAmount(): number;
}

interface BunWebSocketHandler {
  open(ws: BunSocket): void;
  message(ws: BunSocket, message: string | Uint8Array): void;
  close(ws: BunSocket, code: number, reason: string): void;
  idleTimeout: number;
  sendPings: boolean;
  maxPayloadLength: number;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
}

const OPEN = 1;

/** One WSContext per socket, with a live readyState. */
function context(ws: BunSocket): WSContext {
  return ws.data.context ??= new WSContext({
    send: (data) => {
      // A frame Bun did not take must not pass for written: the gateway ends the socket then.
      if (ws.send(data as string | BufferSource) === 0) throw new Error("Bun dropped the frame");
    },
    close: (code, reason) => ws.close(code, reason),
    raw: ws,
    get readyState() {
      return ws.readyState as 0 | 1 | 2 | 3;
    },
    protocol: ws.data.protocol,
    url: null,
  });
}

/** A message as hono's events take it: text, or an ArrayBuffer holding exactly the bytes. */
function data(message: string | Uint8Array): string | ArrayBufferLike {
  if (typeof message === "string") return message;
  const whole = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength;
  return whole ? message.buffer : message.slice().buffer;
}

/** Runs a handler; what it throws goes to its onError, as hono/bun does. */
function run(ws: BunSocket, handler: () => unknown): void {
  try {
    const result = handler();
    if (result instanceof Promise) result.catch((error) => failed(ws, error));
  } catch (error) {
    failed(ws, error);
  }
}

function failed(ws: BunSocket, error: unknown): void {
  const event = Object.assign(new Event("error"), { error });
  ws.data.events.onError?.(event, context(ws));
}

export const bunAdapter: Adapter = {
  runtime: `bun ${Bun.version}`,
  hooks: () => ({
    upgradeWebSocket: (c, events) => {
      const protocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim() ?? "";
      const upgraded = (c.env as BunServer).upgrade(c.req.raw, { data: { events, protocol } });
      // Bun answers the handshake itself; this response only tells hono it was taken.
      return Promise.resolve(upgraded ? new Response(null) : undefined);
    },
    bufferedAmount: (raw) => (raw as BunSocket).getBufferedAmount(),
    // 0: no idle timeout for this response; a failed write (a gone client) still ends it.
    keepStreamOpen: (c) => (c.env as BunServer).timeout(c.req.raw, 0),
    remoteAddress: (c) => (c.env as BunServer).requestIP(c.req.raw)?.address,
  }),
  listen(app, engine, tls) {
    const { host, idle_timeout } = engine.config.server;
    const start = (port: number, material?: TlsMaterial) =>
      Bun.serve({
        hostname: host,
        port,
        fetch: (request, srv) => app.fetch(request, srv),
        // With TLS the port is bound with SO_REUSEPORT, so a rotation binds the new certificate's
        // listener before the old one stops: Bun's server.reload() ignores `tls` (Bun 1.4).
        ...material ? { tls: { cert: material.cert, key: material.key }, reusePort: true } : {},
        websocket: websocketHandler(engine, idle_timeout),
      });
    let server = start(engine.config.server.port, tls);
    /** Listeners a rotation replaced, until their connections end. */
    const retired: Promise<void>[] = [];
    return {
      hostname: server.hostname,
      port: server.port,
      stopAccepting: async () => void await Promise.all([server.stop(false), ...retired]),
      rotateTls: tls && ((material) => {
        const next = start(server.port, material);
        // stop(false): the old listener closes; its live connections and WebSockets go on.
        retired.push(server.stop(false));
        server = next;
        return Promise.resolve();
      }),
    };
  },
  onSignal: (signal, handler) => void process.on(signal, handler),
  exit: (code) => process.exit(code),
};

/** Bun's websocket handler over the sockets' hono events. */
function websocketHandler(engine: Engine, idle_timeout: number): BunWebSocketHandler {
  return {
    open: (ws) => run(ws, () => ws.data.events.onOpen?.(new Event("open"), context(ws))),
    // Once the socket closes, Bun goes on reading what the client sends until the close
    // completes; none of it is handled, so none of it is dispatched.
    message: (ws, message) => {
      if (ws.readyState !== OPEN) return;
      const event = new MessageEvent("message", { data: data(message) });
      run(ws, () => ws.data.events.onMessage?.(event, context(ws)));
    },
    close: (ws, code, reason) =>
      run(ws, () => ws.data.events.onClose?.(new CloseEvent("close", { code, reason }), context(ws))),
    // Bun closes a socket idle for idleTimeout seconds and pings to keep live ones busy.
    idleTimeout: Math.min(960, Math.ceil(idle_timeout / 1000)),
    sendPings: true,
    // A longer message is refused by Bun as it arrives (close 1009), before it is buffered.
    maxPayloadLength: maxFrameBytes(engine.config),
    // The gateway closes slow clients itself (server.max_buffered_bytes, slow_client_timeout);
    // Bun's own limit, past which it drops frames silently, is kept out of its way.
    backpressureLimit: 2 ** 31 - 1,
    closeOnBackpressureLimit: false,
  };
}
