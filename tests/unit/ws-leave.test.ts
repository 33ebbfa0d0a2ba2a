/**
 * The WebSocket entrypoint's side of a clean leave (issue 19, item 20), on a socket driven by
 * hand: the app's real routes and hub, with a stand-in for the runtime's socket whose
 * `readyState` stays OPEN, as a runtime's may until it has handled the client's Close.
 *
 * - Once the client's Close arrived (onClose), nothing more is written as a delivery: the hub
 *   answers "not written", so the endpoint keeps the message (without acks it was settled, that
 *   is acknowledged to the broker, at once).
 * - After `leave`: deliveries stop at once, requests under way are answered, then `left` and a
 *   1000 close.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { WSEvents } from "hono/ws";
import { WSContext } from "hono/ws";
import { createApp } from "../../src/app.ts";
import { createEngine } from "../../src/engine.ts";
import type { Engine } from "../../src/engine.ts";

interface HandSocket {
  engine: Engine;
  events: WSEvents;
  sent: unknown[];
  closed?: { code?: number; reason?: string };
  /** Hands the socket a client frame. */
  frame(frame: unknown): void;
}

async function handSocket(clientId: string): Promise<HandSocket> {
  const engine = await createEngine({
    configText: "endpoints: [{ name: chat, type: memory }]\nlog: { level: error }",
  });
  await engine.hub.endpoint("chat").start(engine.hub);
  let events: WSEvents | undefined;
  const app = createApp(engine, {
    upgradeWebSocket: (_c, e) => {
      events = e;
      return Promise.resolve(new Response(null));
    },
    bufferedAmount: () => 0,
    keepStreamOpen: () => {},
    remoteAddress: () => "127.0.0.1",
  });
  const response = await app.request(`/ws?clientId=${clientId}`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  assert.equal(response.status, 200, await response.clone().text());
  const socket: HandSocket = {
    engine,
    events: events!,
    sent: [],
    frame: (frame) => events!.onMessage?.(new MessageEvent("message", { data: JSON.stringify(frame) }), ws),
  };
  // A runtime's socket as it may be just after the client's Close came in: still OPEN.
  const raw = { readyState: 1 };
  const ws = new WSContext({
    send: (data) => void socket.sent.push(JSON.parse(data as string)),
    close: (code, reason) => void (socket.closed = { code, reason }),
    raw,
    readyState: 1,
    url: null,
  });
  events!.onOpen?.(new Event("open"), ws);
  await until(() => socket.sent.some((f) => (f as { type?: string }).type === "welcome"));
  socket.frame({ type: "subscribe", endpoint: "chat", id: "s" });
  await until(() => socket.sent.some((f) => (f as { id?: string }).id === "s"));
  return socket;
}

async function until(predicate: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Hands the hub a message for the client, as an endpoint does; tells whether it was written and settled. */
function deliver(engine: Engine, clientId: string): { written: boolean; settled: boolean } {
  let settled = false;
  const written = engine.hub.deliver(clientId, "chat", {
    payload: new TextEncoder().encode('{"n":1}'),
    settle: () => void (settled = true),
  });
  return { written, settled };
}

test("ws: once the client's Close arrived, a delivery is not written and not settled (the broker keeps it)", async () => {
  const socket = await handSocket("close-arrived");
  assert.deepEqual(deliver(socket.engine, "close-arrived"), { written: true, settled: true });
  socket.events.onClose?.(new CloseEvent("close", { code: 1000 }), undefined as never);
  // In the same turn: the hub has not marked the session disconnected yet.
  assert.deepEqual(deliver(socket.engine, "close-arrived"), { written: false, settled: false });
  await socket.engine.hub.endpoint("chat").stop();
  await socket.engine.store.close();
});

test("ws: leave stops deliveries at once, answers the requests under way, then left and a 1000 close", async () => {
  const socket = await handSocket("leaving");
  socket.frame({ type: "publish", endpoint: "chat", data: { n: 1 }, id: "p" });
  socket.frame({ type: "leave" });
  socket.frame({ type: "ping" });
  // The pong says the leave was handled; `left` may not have gone yet.
  await until(() => socket.sent.some((f) => (f as { type?: string }).type === "pong"));
  assert.deepEqual(deliver(socket.engine, "leaving"), { written: false, settled: false });
  await until(() => socket.closed !== undefined);
  const types = socket.sent.map((f) =>
    (f as { type: string; id?: string }).type + ((f as { id?: string }).id ?? "")
  );
  assert.deepEqual(types.slice(-2), ["receiptp", "left"], "the receipt before left, nothing after it");
  assert.deepEqual(socket.closed, { code: 1000, reason: "left" });
  await socket.engine.hub.endpoint("chat").stop();
  await socket.engine.store.close();
});
