/**
 * Black-box scenarios for what a hostile client, a second browser tab or a malformed handshake
 * can do to a running gateway (issue 9), against the memory-endpoint gateway of
 * gateway-scenarios.ts. The poison payload's MQTT and Kafka rows are in their own scenario files.
 */
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import type { Gateway } from "../support/gateway-process.ts";
import { SseClient } from "../support/sse-client.ts";
import { openWelcomed } from "../support/ws-client.ts";
import type { Scenario } from "./gateway-scenarios.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `[[[...]]]` nested `depth` deep: 2 bytes a level. */
export const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

async function post(gw: Gateway, path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${gw.http}${path}`, { method: "POST", body, headers });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

async function subscribed(
  gw: Gateway,
  clientId: string,
  endpoint: string,
  params: Record<string, string> = {},
) {
  const { socket, welcome } = await openWelcomed(gw.ws, clientId);
  const id = unique("sub");
  socket.send({ type: "subscribe", endpoint, params, id });
  await socket.next((f) => f.type === "receipt" && f.id === id);
  return { socket, welcome };
}

/** A raw HTTP/1.1 request over TCP (headers as written, case kept); resolves the status line's code. */
function rawRequest(gw: Gateway, head: string): Promise<number> {
  const { hostname, port } = new URL(gw.http);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(Number(port), hostname, () => socket.write(`${head}Host: ${hostname}\r\n\r\n`));
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      const status = answer.match(/^HTTP\/1\.1 (\d{3})/);
      if (status) {
        socket.destroy();
        resolve(Number(status[1]));
      }
    });
    socket.on("error", reject);
  });
}

const handshake = (path: string, headers: string) => `GET ${path} HTTP/1.1\r\n${headers}`;
const VALID =
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

export const hardeningScenarios: Scenario[] = [
  {
    name:
      "poison payload (memory): 6,000 and 30,000 deep JSON reach the subscriber as text; the gateway and everyone else go on",
    async run(gw) {
      const room = unique("room");
      const victim = await subscribed(gw, unique("victim"), "rooms", { room });
      const bystander = await subscribed(gw, unique("bystander"), "chat");
      for (const depth of [6000, 30_000]) {
        const sent = await post(gw, `/publish/rooms?room=${room}`, nested(depth));
        assert.equal(sent.status, 202);
      }
      assert.equal((await post(gw, `/publish/rooms?room=${room}`, '{"after":1}')).status, 202);
      assert.equal((await post(gw, "/publish/chat", '{"chat":1}')).status, 202);
      const got = await victim.socket.settled("rooms", 3);
      assert.deepEqual(got, [nested(6000), nested(30_000), { after: 1 }], "deep JSON as its text, then on");
      assert.deepEqual(await bystander.socket.settled("chat", 1), [{ chat: 1 }]);
      // A deep frame from a client is refused at parse, and the socket goes on.
      for (const depth of [200, 20_000]) {
        victim.socket.send(`{"type":"publish","endpoint":"chat","data":${nested(depth)},"id":"deep"}`);
      }
      await victim.socket.until(() =>
        victim.socket.frames.filter((f) => (f as { type: string }).type === "error").length === 2
      );
      for (const f of victim.socket.frames.filter((f) => (f as { type: string }).type === "error")) {
        assert.match(String((f as { message: string }).message), /nested deeper than 64 levels/);
      }
      victim.socket.send({ type: "ping" });
      await victim.socket.next((f) => f.type === "pong");
      assert.equal((await fetch(`${gw.http}/healthz`)).status, 200);
      await victim.socket.close();
      await bystander.socket.close();
    },
  },
  {
    name:
      "unsubscribe of an unknown endpoint answers UNKNOWN_ENDPOINT with its id, and logs nothing above debug",
    async run(gw) {
      const { socket } = await openWelcomed(gw.ws, unique("unsub"));
      for (let i = 0; i < 20; i++) socket.send({ type: "unsubscribe", endpoint: "nope", id: `u-${i}` });
      await socket.until(() =>
        socket.frames.filter((f) => (f as { type: string }).type === "error").length === 20
      );
      const error = await socket.next((f) => f.type === "error" && f.id === "u-19");
      assert.equal(error.code, "UNKNOWN_ENDPOINT");
      assert.doesNotMatch(gw.output(), /ERROR \[WS\]/);
      await socket.close();
    },
  },
  {
    name: "a malformed WebSocket handshake gets 400 and does not touch the session; Upgrade: WebSocket works",
    async run(gw) {
      const id = unique("owner");
      const owner = await subscribed(gw, id, "chat");
      const path = `/ws?clientId=${id}`;
      assert.equal(
        await rawRequest(gw, handshake(path, "Upgrade: websocket\r\nConnection: Upgrade\r\n")),
        400,
      );
      assert.equal(
        await rawRequest(
          gw,
          handshake(path, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n"),
        ),
        400,
      );
      assert.equal(
        await rawRequest(gw, handshake(path, `Upgrade: websocket\r\nConnection: keep-alive\r\n`)),
        400,
      );
      await sleep(200);
      assert.equal(owner.socket.closed, undefined, "the owner was not kicked");
      assert.equal((await post(gw, "/publish/chat", '"still here"')).status, 202);
      await owner.socket.until(() => owner.socket.messages("chat").length === 1);
      // A legal handshake with a capitalised token takes over as any connect would.
      assert.equal(await rawRequest(gw, handshake(path, `Upgrade: WebSocket\r\n${VALID}`)), 101);
      assert.equal((await owner.socket.closedBy()).code, 4409);
    },
  },
  {
    name:
      "SSE carries only its own endpoints: a session bound to chat and rooms resumes on /sse/rooms without chat's messages",
    async run(gw) {
      const id = unique("mixed");
      const room = unique("room");
      const ws = await subscribed(gw, id, "rooms", { room });
      const sub = unique("sub");
      ws.socket.send({ type: "subscribe", endpoint: "chat", id: sub });
      await ws.socket.next((f) => f.type === "receipt" && f.id === sub);
      await ws.socket.close();
      const sse = await SseClient.open(`${gw.http}/sse/rooms?clientId=${id}&room=${room}`);
      await sse.until(() => sse.events.some((e) => e.event === "welcome"));
      assert.deepEqual(JSON.parse(sse.events[0].data).endpoints, ["rooms"]);
      await post(gw, "/publish/chat", '"for chat"');
      await post(gw, `/publish/rooms?room=${room}`, '"for rooms"');
      await sse.until(() => sse.events.some((e) => e.event === "message"));
      await sleep(300);
      const messages = sse.events.filter((e) => e.event === "message");
      assert.deepEqual(messages.map((e) => e.data), ['"for rooms"']);
      await sse.close();
      await sleep(100);
      const back = await openWelcomed(gw.ws, id);
      assert.deepEqual(await back.socket.settled("chat", 1), ["for chat"], "chat's message waited");
      await back.socket.close();
    },
  },
  {
    name: "SSE takeover: the older stream gets taken-over and its EventSource reconnect is refused with 409",
    async run(gw) {
      const id = unique("tabs");
      const url = `${gw.http}/sse/chat?clientId=${id}`;
      const older = await SseClient.open(url);
      await older.until(() => older.events.some((e) => e.event === "welcome"));
      const newer = await SseClient.open(url);
      await newer.until(() => newer.events.some((e) => e.event === "welcome"));
      await older.until(() => older.ended, 5000, "the older stream to end");
      const notice = older.events.find((e) => e.event === "taken-over");
      assert.ok(notice?.id?.startsWith("taken."), "the notice sets Last-Event-ID");
      // What EventSource does by itself next: reconnect with the last event id.
      const again = await SseClient.open(url, { "Last-Event-ID": notice!.id! });
      assert.equal(again.status, 409);
      assert.equal(JSON.parse(again.body!).code, "TAKEN_OVER");
      await post(gw, "/publish/chat", '"to the newer tab"');
      await newer.until(() => newer.events.some((e) => e.event === "message"));
      assert.equal(newer.ended, false, "the newer stream was not taken back");
      await newer.close();
      if (typeof EventSource === "function") {
        // The runtime's own EventSource: it stops for good after the 409.
        const first = new EventSource(url);
        await new Promise((resolve) => first.addEventListener("welcome", resolve, { once: true }));
        const second = await SseClient.open(url);
        const stopped = await new Promise<number>((resolve) => {
          first.onerror = () => {
            if (first.readyState === EventSource.CLOSED) resolve(first.readyState);
          };
          setTimeout(() => resolve(first.readyState), 8000);
        });
        first.close();
        assert.equal(stopped, EventSource.CLOSED, "EventSource gave up instead of taking the session back");
        assert.equal(second.ended, false);
        await second.close();
      }
    },
  },
];

/**
 * A stream that stays quiet (no message, no ping: this gateway pings every 10 minutes, past any
 * run of the file, however loaded the machine) for 30 s
 * is still open and still delivers. Opened early by the suite, checked at the end.
 */
export interface QuietStream {
  sse: SseClient;
  room: string;
  opened: number;
}

export async function openQuietStream(gw: Gateway): Promise<QuietStream> {
  const room = unique("quiet");
  const sse = await SseClient.open(`${gw.http}/sse/rooms?clientId=${unique("quiet")}&room=${room}`);
  await sse.until(() => sse.events.some((e) => e.event === "welcome"));
  return { sse, room, opened: Date.now() };
}

export async function checkQuietStream(gw: Gateway, quiet: QuietStream): Promise<void> {
  const left = quiet.opened + 30_000 - Date.now();
  if (left > 0) await sleep(left);
  assert.equal(quiet.sse.ended, false, "the quiet stream is still open after 30 s");
  assert.equal(quiet.sse.comments.length, 0, "and it was quiet");
  await post(gw, `/publish/rooms?room=${quiet.room}`, '"after the quiet"');
  await quiet.sse.until(() => quiet.sse.events.some((e) => e.data === '"after the quiet"'));
  await quiet.sse.close();
}
