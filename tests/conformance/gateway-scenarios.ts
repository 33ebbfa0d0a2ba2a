/**
 * The black-box gateway suite: scenarios that drive a running gateway (src/main.ts in a child
 * process) with real WebSocket, SSE and HTTP clients. `gateway.test.ts` runs them under the
 * test runner's runtime; `matrix.ts` runs them under every runtime and prints the matrix.
 */
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import type { Runtime } from "../support/runtime.ts";
import { SseClient } from "../support/sse-client.ts";
import { TestSocket } from "../support/ws-client.ts";

/** Short window and cleanup so expiry is observable in a black-box run. */
export const WINDOW_MS = 2000;
export const CLEANUP_MS = 500;

export const GATEWAY_CONFIG = `
server: { host: 127.0.0.1, port: 0, idle_timeout: 30s, shutdown_timeout: 5s, sse_ping_interval: 10m }
session: { type: memory, reconnection_window: ${WINDOW_MS}ms, cleanup_interval: ${CLEANUP_MS}ms }
entrypoints:
  - { name: ws, type: websocket, path: /ws }
  - { name: sse, type: sse, path: /sse }
  - { name: http, type: http, path: /publish }
endpoints:
  - { name: chat, type: memory }
  - { name: rooms, type: memory, publish_topic: "room/{room}", subscribe_topic: "room/{room}" }
  - { name: inbox, type: memory, publish_topic: "inbox/{to}", subscribe_topic: "inbox/{clientId}" }
policy: { max_message_bytes: 100000 }
delivery: { replay_bytes: 8000 }
`;

/** The same config with sessions in Redis, reached through the REST proxy at `url`. */
export function withRedisStore(
  config: string,
  redis: { url: string; token: string; prefix: string },
): string {
  const store = `type: redis, redis: { url: "${redis.url}", token: "${redis.token}", ` +
    `keyPrefix: "${redis.prefix}", encoding: none }`;
  const next = config.replace(/^session: \{ type: memory,/m, `session: { ${store},`);
  if (next === config) throw new Error("config has no memory session line to replace");
  return next;
}

export interface Scenario {
  name: string;
  run(gw: Gateway): Promise<void>;
}

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function welcomed(
  gw: Gateway,
  clientId?: string,
): Promise<{ socket: TestSocket; welcome: Record<string, unknown> }> {
  const socket = await TestSocket.open(`${gw.ws}/ws${clientId ? `?clientId=${clientId}` : ""}`);
  const welcome = await socket.next((f) => f.type === "welcome");
  return { socket, welcome };
}

/** Subscribes and waits until bound (the receipt of the subscribe frame's id). */
async function subscribe(
  socket: TestSocket,
  endpoint: string,
  params: Record<string, string>,
): Promise<void> {
  const id = unique("sub");
  socket.send({ type: "subscribe", endpoint, params, id });
  await socket.next((f) => (f.type === "receipt" || f.type === "error") && f.id === id);
  assert.ok(
    socket.frames.some((f) =>
      (f as { type: string; id?: string }).type === "receipt" && (f as { id?: string }).id === id
    ),
  );
}

async function httpPublish(
  gw: Gateway,
  endpoint: string,
  body: string,
  query = "",
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${gw.http}/publish/${endpoint}${query}`, { method: "POST", body, headers });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

/** Sends a real WebSocket upgrade request over TCP and returns the HTTP status the gateway answered. */
async function upgradeStatus(gw: Gateway, path: string): Promise<number> {
  return (await upgradeAnswer(gw, path)).status;
}

/** Sends a real WebSocket upgrade request over TCP; resolves the answer's status and body. */
export function upgradeAnswer(gw: Gateway, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(gw.http);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(Number(port), hostname, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      const end = answer.indexOf("\r\n\r\n");
      const status = answer.match(/^HTTP\/1\.1 (\d{3})/);
      if (!status || end < 0) return;
      const length = Number(answer.slice(0, end).match(/content-length: (\d+)/i)?.[1] ?? 0);
      const body = answer.slice(end + 4);
      if (status[1] === "101" || new TextEncoder().encode(body).length >= length) {
        socket.destroy();
        resolve({ status: Number(status[1]), body });
      }
    });
    socket.on("error", reject);
  });
}

export const scenarios: Scenario[] = [
  {
    name: "welcome frame",
    async run(gw) {
      const id = unique("welcome");
      const { socket, welcome } = await welcomed(gw, id);
      assert.deepEqual(welcome, {
        type: "welcome",
        clientId: id,
        resumed: false,
        recovered: true,
        ack: false,
        endpoints: ["chat", "rooms", "inbox"],
      });
      await socket.close();
      const anonymous = await welcomed(gw);
      assert.match(anonymous.welcome.clientId as string, /^[0-9a-f-]{36}$/);
      await anonymous.socket.close();
    },
  },
  {
    name: "publish -> receipt and delivery",
    async run(gw) {
      const { socket } = await welcomed(gw, unique("pub"));
      const marker = unique("m");
      socket.send({ type: "publish", endpoint: "chat", data: { marker }, id: "m-1" });
      const receipt = await socket.next((f) => f.type === "receipt" && f.id === "m-1");
      assert.deepEqual(receipt, { type: "receipt", id: "m-1", meta: { topic: "chat" } });
      const message = await socket.next((f) =>
        f.type === "message" && (f.data as { marker?: string })?.marker === marker
      );
      assert.equal(message.endpoint, "chat");
      assert.equal(typeof message.id, "string");
      await socket.close();
    },
  },
  {
    name: "an invalid frame's error names its id and says what was wrong in words",
    async run(gw) {
      const { socket } = await welcomed(gw, unique("badframe"));
      socket.send({ type: "publish", endpoint: "chat", params: { room: "r" }, data: 1, id: "bad-1" });
      const error = await socket.next((f) => f.type === "error");
      assert.deepEqual(error, {
        type: "error",
        code: "BAD_FRAME",
        message: 'invalid frame: publish takes endpoint, data and id; got "params"',
        temporary: false,
        id: "bad-1",
      });
      socket.send({ type: "subscribe", id: 42 });
      const second = await socket.next((f) => f.type === "error" && f !== error);
      assert.equal(second.id, undefined, "an id that is not a string is not echoed");
      assert.equal(
        second.message,
        "invalid frame: subscribe takes endpoint, params and id; endpoint missing",
      );
      await socket.close();
    },
  },
  {
    name: "disconnect, 50 published, reconnect in window -> all 50 in order",
    async run(gw) {
      const id = unique("resume");
      const room = unique("room");
      const first = await welcomed(gw, id);
      await subscribe(first.socket, "rooms", { room });
      await first.socket.close();
      for (let n = 1; n <= 50; n++) {
        const { status } = await httpPublish(gw, "rooms", JSON.stringify({ n }), `?room=${room}`);
        assert.equal(status, 202);
      }
      const second = await welcomed(gw, id);
      assert.equal(second.welcome.resumed, true);
      await second.socket.until(() => second.socket.messages("rooms").length >= 50, 10_000, "50 messages");
      await sleep(100);
      const got = second.socket.messages("rooms");
      assert.deepEqual(got.map((m) => m.data), Array.from({ length: 50 }, (_, i) => ({ n: i + 1 })));
      assert.equal(new Set(got.map((m) => m.id)).size, 50, "distinct delivery ids");
      await second.socket.close();
    },
  },
  {
    name: "reconnect after the window -> fresh session, old queue gone",
    async run(gw) {
      const id = unique("expire");
      const room = unique("room");
      const first = await welcomed(gw, id);
      await subscribe(first.socket, "rooms", { room });
      await first.socket.close();
      await httpPublish(gw, "rooms", '"lost"', `?room=${room}`);
      await sleep(WINDOW_MS + CLEANUP_MS * 3);
      assert.match(gw.output(), new RegExp(`\\[CleanupWorker\\] Unbound client ${id} from endpoint rooms`));
      const second = await welcomed(gw, id);
      assert.equal(second.welcome.resumed, false);
      await subscribe(second.socket, "rooms", { room });
      await httpPublish(gw, "rooms", '"fresh"', `?room=${room}`);
      await second.socket.until(() => second.socket.messages("rooms").length >= 1);
      await sleep(100);
      assert.deepEqual(second.socket.messages("rooms").map((m) => m.data), ["fresh"]);
      await second.socket.close();
    },
  },
  {
    name: "bad frame -> BAD_FRAME, socket still works",
    async run(gw) {
      const { socket } = await welcomed(gw, unique("bad"));
      socket.send("this is not json");
      const error = await socket.next((f) => f.type === "error");
      assert.equal(error.code, "BAD_FRAME");
      socket.send({ type: "publish", endpoint: "chat" });
      await socket.until(() =>
        socket.frames.filter((f) => (f as { type: string }).type === "error").length === 2
      );
      socket.send({ type: "ping" });
      await socket.next((f) => f.type === "pong");
      assert.equal(socket.closed, undefined);
      await socket.close();
    },
  },
  {
    name: "unknown endpoint -> UNKNOWN_ENDPOINT naming the id; 404 on raw and SSE routes",
    async run(gw) {
      const { socket } = await welcomed(gw, unique("unknown"));
      socket.send({ type: "publish", endpoint: "nope", data: 1, id: "u-1" });
      const error = await socket.next((f) => f.type === "error");
      assert.equal(error.code, "UNKNOWN_ENDPOINT");
      assert.equal(error.id, "u-1");
      await socket.close();
      assert.equal(await upgradeStatus(gw, "/ws/nope"), 404);
      const sse = await SseClient.open(`${gw.http}/sse/nope`);
      assert.equal(sse.status, 404);
      assert.equal((await httpPublish(gw, "nope", "1")).status, 404);
    },
  },
  {
    name: "oversize frame -> TOO_LARGE, socket still works",
    async run(gw) {
      const { socket } = await welcomed(gw, unique("big"));
      // Past max_message_bytes, within its 1 KiB envelope: an error frame (past that the socket
      // is closed with 1009: limits.test.ts).
      socket.send({ type: "publish", endpoint: "chat", data: "x".repeat(100_500), id: "big-1" });
      const error = await socket.next((f) => f.type === "error");
      assert.equal(error.code, "TOO_LARGE");
      socket.send({ type: "ping" });
      await socket.next((f) => f.type === "pong");
      const response = await httpPublish(gw, "chat", "x".repeat(110_000));
      assert.equal(response.status, 413);
      assert.equal(response.body.code, "TOO_LARGE");
      await socket.close();
    },
  },
  {
    name: "invalid client IDs -> HTTP 400 before upgrade",
    async run(gw) {
      for (const bad of ["a b", "a/b", "a#b", "a+b", "x".repeat(200)]) {
        const q = `clientId=${encodeURIComponent(bad)}`;
        assert.equal(await upgradeStatus(gw, `/ws?${q}`), 400, `ws ${bad}`);
        assert.equal(await upgradeStatus(gw, `/ws/chat?${q}`), 400, `raw ws ${bad}`);
        const sse = await SseClient.open(`${gw.http}/sse/chat?${q}`);
        assert.equal(sse.status, 400, `sse ${bad}`);
        const post = await httpPublish(gw, "chat", "1", "", { "X-WSO2-Client-ID": bad });
        assert.equal(post.status, 400, `http ${bad}`);
        assert.equal(post.body.code, "BAD_CLIENT_ID");
      }
    },
  },
  {
    name: "takeover -> older socket closed with 4409",
    async run(gw) {
      const id = unique("takeover");
      const room = unique("room");
      const older = await welcomed(gw, id);
      await subscribe(older.socket, "rooms", { room });
      const newer = await welcomed(gw, id);
      assert.equal(newer.welcome.resumed, true);
      const closed = await older.socket.closedBy();
      assert.equal(closed.code, 4409);
      await httpPublish(gw, "rooms", '"to-newer"', `?room=${room}`);
      await newer.socket.until(() => newer.socket.messages("rooms").length === 1);
      assert.deepEqual(newer.socket.messages("rooms").map((m) => m.data), ["to-newer"]);
      await newer.socket.close();
    },
  },
  {
    name: "raw WebSocket: frames are payloads, deliveries are frames",
    async run(gw) {
      const room = unique("room");
      const socket = await TestSocket.open(`${gw.ws}/ws/rooms?clientId=${unique("raw")}&room=${room}`);
      await sleep(100); // bound on connect; no welcome on raw sockets
      socket.send("hello raw");
      await socket.until(() => socket.frames.includes("hello raw"));
      await httpPublish(gw, "rooms", JSON.stringify({ via: "http" }), `?room=${room}`);
      await socket.until(() => socket.frames.some((f) => (f as { via?: string })?.via === "http"));
      await socket.close();
    },
  },
  {
    name: "SSE delivery with id: and data:",
    async run(gw) {
      const id = unique("sse");
      const room = unique("room");
      const sse = await SseClient.open(`${gw.http}/sse/rooms?room=${room}`, { "X-WSO2-Client-ID": id });
      assert.equal(sse.status, 200);
      assert.equal(sse.headers.get("content-type"), "text/event-stream");
      await sse.until(() => sse.events.some((e) => e.event === "welcome"));
      assert.deepEqual(JSON.parse(sse.events[0].data), {
        clientId: id,
        resumed: false,
        recovered: true,
        endpoints: ["rooms"],
      });
      assert.equal(sse.retry, 1000, "browsers come back in a second");
      await sse.until(() => sse.events.some((e) => e.event === "subscribed"), 10_000, "subscribed");
      assert.deepEqual(sse.events.map((e) => e.event), ["welcome", "subscribed"]);
      assert.deepEqual(JSON.parse(sse.events[1].data), { endpoint: "rooms" });
      await httpPublish(gw, "rooms", "line one\nline two", `?room=${room}`);
      await httpPublish(gw, "rooms", JSON.stringify({ n: 2 }), `?room=${room}`);
      await sse.until(() => sse.events.filter((e) => e.event === "message").length >= 2);
      const messages = sse.events.filter((e) => e.event === "message");
      assert.equal(messages[0].data, "line one\nline two");
      assert.deepEqual(JSON.parse(messages[1].data), { n: 2 });
      assert.ok(messages[0].id && messages[1].id && messages[0].id !== messages[1].id);
      await sse.close();
    },
  },
  {
    name: "HTTP publish -> 202 with a receipt",
    async run(gw) {
      const id = unique("http");
      const response = await httpPublish(gw, "chat", JSON.stringify({ hello: "world" }), "", {
        "X-WSO2-Client-ID": id,
        "X-Message-ID": "h-1",
        "Content-Type": "application/json",
      });
      assert.equal(response.status, 202);
      assert.deepEqual(response.body, { type: "receipt", id: "h-1", clientId: id, meta: { topic: "chat" } });
    },
  },
  {
    name: "health, readiness and metrics",
    async run(gw) {
      assert.equal((await fetch(`${gw.http}/healthz`).then((r) => r.json())).status, "ok");
      const ready = await fetch(`${gw.http}/readyz`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
      const metrics = await fetch(`${gw.http}/metrics`).then((r) => r.text());
      assert.match(metrics, /# TYPE mediation_messages_in_total counter/);
      assert.match(metrics, /mediation_bindings\{endpoint="chat"\}/);
    },
  },
];

/** SIGTERM: clients get 1001, the process exits 0. Runs on a gateway of its own. */
export async function shutdownScenario(runtime: Runtime): Promise<void> {
  const gw = await startGateway(runtime, GATEWAY_CONFIG);
  try {
    const { socket } = await welcomed(gw, unique("shutdown"));
    const code = gw.stop("SIGTERM");
    const closed = await socket.closedBy();
    assert.equal(closed.code, 1001);
    assert.equal(await code, 0);
    assert.match(gw.output(), /\[Server\] Stopped/);
  } finally {
    await gw.stop("SIGKILL");
  }
}
