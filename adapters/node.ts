/**
 * Node adapter: node:http through @hono/node-server, the WebSocket upgrade on `ws` (its message
 * size limit, its send buffer, pings for idle sockets) mapped onto hono's WSContext, the request
 * timeouts, and signals. It translates and nothing more.
 *
 * The upgrade is `ws` under this adapter's own code, not @hono/node-ws: that helper gives `ws` no
 * options (no maximum message size), does not ping, and runs the app on a copy of the request
 * without the peer's address.
 *
 * With TLS the server is node:https, and a certificate rotation (SIGHUP) replaces its secure
 * context in place: no second listener, live connections untouched.
 *
 * Limits (docs/configuration.md "Limits"): a frame longer than `maxFrameBytes` is refused by `ws`
 * as it arrives (`maxPayload`: close 1009), before it is buffered; a connection that has not sent
 * its whole request within `server.header_timeout` is dropped (`headersTimeout`, `requestTimeout`).
 */
import type { Buffer } from "node:buffer";
import { createServer, STATUS_CODES } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import { WSContext } from "hono/ws";
import type { WSEvents } from "hono/ws";
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";
import { maxFrameBytes } from "../src/entrypoints/frame-size.ts";
import type { Adapter } from "../src/serve.ts";
import type { TlsMaterial } from "../src/tls.ts";

/** What the app gets as `c.env`: @hono/node-server's bindings, or, for an upgrade, the socket to take over. */
interface NodeEnv {
  incoming: IncomingMessage;
  upgrade?: Upgrade;
}

/** An upgrade request in flight. */
interface Upgrade {
  socket: Duplex;
  head: Buffer;
  /** Set once `ws` took the socket: opens it to the app's events, after the app answered. */
  open?: () => void;
}

const OPEN = 1;
const decoder = new TextDecoder();

/** A socket `ws` made, as a WSContext whose events wait for `open()`. */
function wire(ws: WebSocket, socket: Duplex, events: WSEvents, idleTimeout: number): () => void {
  ws.binaryType = "arraybuffer";
  const context = new WSContext({
    send: (data) => {
      // `ws` drops a frame sent once the socket is closing, silently; it must not pass for
      // written (Deno throws then, Bun returns 0): the gateway ends the socket then.
      if (ws.readyState !== OPEN) throw new Error("the socket is closing");
      ws.send(data as string | ArrayBuffer | Uint8Array);
    },
    close: (code, reason) => ws.close(code, reason),
    raw: ws,
    get readyState() {
      return ws.readyState as 0 | 1 | 2 | 3;
    },
    protocol: ws.protocol,
    url: null,
  });
  let opened = false;
  const early: Array<() => void> = [];
  const dispatch = (event: () => void) => opened ? event() : early.push(event);
  // A peer that answers nothing (no frame, no pong) for a whole idle period is dropped: pinged
  // at each half of it, so it goes between idle_timeout / 2 and idle_timeout after it went quiet.
  // (0: none, as on Deno and Bun.)
  let alive = true;
  const pinger = idleTimeout > 0
    ? setInterval(() => {
      if (!alive) return ws.terminate();
      alive = false;
      if (ws.readyState === OPEN) ws.ping();
    }, Math.max(1, Math.floor(idleTimeout / 2)))
    : undefined;
  ws.on("pong", () => alive = true);
  // Binary data is an ArrayBuffer (binaryType), text a Buffer of its UTF-8.
  ws.on("message", (data: ArrayBuffer | Buffer, isBinary: boolean) => {
    alive = true;
    // Once the socket closes, what the client still sends is not handled, so not dispatched.
    if (ws.readyState !== OPEN) return;
    const event = new MessageEvent("message", {
      data: isBinary ? data as ArrayBuffer : decoder.decode(data),
    });
    dispatch(() => events.onMessage?.(event, context));
  });
  ws.on("error", (error) => {
    if ((error as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") refuseRest(socket);
    const event = Object.assign(new Event("error"), { error });
    dispatch(() => events.onError?.(event, context));
  });
  ws.on("close", (code, reason) => {
    clearInterval(pinger);
    const event = new CloseEvent("close", { code, reason: reason.toString() });
    dispatch(() => events.onClose?.(event, context));
  });
  return () => {
    opened = true;
    events.onOpen?.(new Event("open"), context);
    for (const event of early.splice(0)) event();
  };
}

/**
 * A message past maxPayload: `ws` has sent the close (1009) and ends the connection, but goes on
 * reading what the client still sends, to let it finish; every chunk of such a message read is
 * memory (dropped, but allocated). So the socket is no longer read (what was sent waits in the
 * kernel's buffers, and TCP stops the client), and once the close and the end of the connection
 * are out, it is destroyed: a second later, so the client has read the close first (closing with
 * unread bytes resets the connection, and the client's kernel would discard the close with them).
 */
function refuseRest(socket: Duplex): void {
  // After the resume `ws` queued before it emitted this error.
  process.nextTick(() => socket.pause());
  socket.once("finish", () => setTimeout(() => socket.destroy(), 1000));
}

/** The request an upgrade arrived with, as a fetch Request (it has no body). */
function request(incoming: IncomingMessage): Request {
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  return new Request(new URL(incoming.url ?? "/", `http://${incoming.headers.host ?? "localhost"}`), {
    method: incoming.method,
    headers,
  });
}

/** The app's answer to an upgrade it did not take, written on the raw socket; the connection closes. */
async function answer(socket: Duplex, response: Response): Promise<void> {
  // A stream (SSE) is no answer to an upgrade.
  const streaming = response.headers.get("content-type")?.startsWith("text/event-stream");
  if (streaming) await response.body?.cancel();
  const status = streaming ? 400 : response.status;
  const body = streaming ? new Uint8Array() : new Uint8Array(await response.arrayBuffer());
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`];
  if (!streaming) response.headers.forEach((value, name) => lines.push(`${name}: ${value}`));
  lines.push(`content-length: ${body.byteLength}`, "connection: close", "", "");
  if (socket.destroyed) return;
  socket.write(lines.join("\r\n"));
  socket.end(body);
}

export const nodeAdapter: Adapter = {
  runtime: `node ${process.versions.node}`,
  hooks: (engine) => {
    const wss = new WebSocketServer({
      noServer: true,
      // A longer message is refused by `ws` as it arrives (close 1009), before it is buffered.
      maxPayload: maxFrameBytes(engine.config),
      perMessageDeflate: false,
      clientTracking: false,
    });
    /** What refuses each handshake in flight, should `ws` find it bad. */
    const refusals = new WeakMap<IncomingMessage, () => void>();
    // `ws` found the handshake bad: the app answers it (the adapter writes its response).
    wss.on("wsClientError", (_error, _socket, incoming) => refusals.get(incoming)?.());
    return {
      upgradeWebSocket: (c, events) => {
        const { incoming, upgrade } = c.env as NodeEnv;
        // A request without `Upgrade` came through node:http's request path: nothing to take over.
        if (!upgrade || upgrade.socket.destroyed) return Promise.resolve(undefined);
        return new Promise((resolve) => {
          const refuse = () => {
            upgrade.socket.off("close", refuse);
            resolve(undefined);
          };
          refusals.set(incoming, refuse);
          upgrade.socket.once("close", refuse);
          wss.handleUpgrade(incoming, upgrade.socket, upgrade.head, (ws) => {
            upgrade.socket.off("close", refuse);
            upgrade.open = wire(ws, upgrade.socket, events, engine.config.server.idle_timeout);
            // `ws` answered the handshake itself; this response only tells hono it was taken.
            resolve(new Response(null));
          });
        });
      },
      bufferedAmount: (raw) => (raw as WebSocket).bufferedAmount,
      // node:http has no idle timeout on a response (`server.timeout` is 0).
      keepStreamOpen: () => {},
      remoteAddress: (c) => (c.env as NodeEnv).incoming.socket.remoteAddress,
    };
  },
  async listen(app, engine, tls?: TlsMaterial, at?: { host: string; port: number }) {
    const { header_timeout } = engine.config.server;
    const { host, port } = at ?? engine.config.server;
    // A connection that has not sent its whole request within header_timeout is dropped;
    // node:http looks at its connections every connectionsCheckingInterval ms. 0: never.
    const timeouts = header_timeout > 0
      ? {
        headersTimeout: header_timeout,
        requestTimeout: header_timeout,
        connectionsCheckingInterval: Math.min(1000, header_timeout),
      }
      : { headersTimeout: 0, requestTimeout: 0 };
    const listener = getRequestListener((request, env) => app.fetch(request, env), {
      overrideGlobalObjects: false,
    });
    const secure = tls ? createTlsServer({ ...timeouts, cert: tls.cert, key: tls.key }, listener) : undefined;
    const server = secure ?? createServer(timeouts, listener);
    server.on("upgrade", async (incoming: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => socket.destroy());
      const upgrade: Upgrade = { socket, head };
      const env: NodeEnv = { incoming, upgrade };
      let response: Response;
      try {
        response = await app.fetch(request(incoming), env);
      } catch {
        response = new Response(null, { status: 400 });
      }
      if (upgrade.open) upgrade.open();
      else await answer(socket, response).catch(() => socket.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return {
      hostname: addr.address,
      port: addr.port,
      stopAccepting: () => new Promise<void>((resolve) => server.close(() => resolve())),
      // In place: new connections get the new certificate, live ones (WebSockets, SSE) go on.
      rotateTls: secure && ((material) => {
        secure.setSecureContext({ cert: material.cert, key: material.key });
        return Promise.resolve();
      }),
    };
  },
  onSignal: (signal, handler) => void process.on(signal, handler),
  exit: (code) => process.exit(code),
};
