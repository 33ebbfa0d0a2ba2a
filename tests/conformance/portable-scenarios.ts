/**
 * Black-box scenarios that need nothing but a gateway's address and a way to put messages in
 * front of a client from outside (an Inject): no log lines, no particular window or limits. They
 * run against a gateway this suite starts and against one started separately
 * (`deno task conformance --target ws://host:port --profile FILE`), for any endpoint type.
 */
import assert from "node:assert/strict";
import { authorized } from "../support/gateway-process.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { SseClient } from "../support/sse-client.ts";
import { numbered, openWelcomed } from "../support/ws-client.ts";
import type { TestSocket } from "../support/ws-client.ts";
import { ackScenarios } from "./ack-scenarios.ts";
import type { Inject } from "./ack-scenarios.ts";
import type { Scenario } from "./gateway-scenarios.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (polling) until `check` holds, or fails naming `what` after `timeoutMs`. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
const json = (from: number, count: number) => numbered(count, from).map((m) => JSON.stringify(m));

async function subscribed(gw: Gateway, endpoint: string, id: string): Promise<TestSocket> {
  const { socket } = await openWelcomed(gw.ws, id, gw.token);
  socket.send({ type: "subscribe", endpoint, id: "s" });
  const receipt = await socket.next((f) => f.type === "receipt" || f.type === "error");
  assert.equal(receipt.type, "receipt", `subscribed to ${endpoint}: ${JSON.stringify(receipt)}`);
  return socket;
}

async function sseStream(
  gw: Gateway,
  endpoint: string,
  id: string,
  lastEventId?: string,
): Promise<{ sse: SseClient; welcome: Record<string, unknown> }> {
  const sse = await SseClient.open(
    authorized(gw, `${gw.http}/sse/${endpoint}?clientId=${id}`),
    lastEventId ? { "Last-Event-ID": lastEventId } : {},
  );
  assert.equal(sse.status, 200, `SSE stream of ${endpoint}: ${sse.body}`);
  await sse.until(() => sse.events.some((e) => e.event === "welcome"));
  return { sse, welcome: JSON.parse(sse.events.find((e) => e.event === "welcome")!.data) };
}

/** The stream's messages, without the probes `primed` sent. */
const sseData = (sse: SseClient) =>
  sse.events.filter((e) => e.event === "message").map((e) => JSON.parse(e.data)).filter((d) => d.n !== 0);

/**
 * Waits until a new stream's binding delivers: an SSE stream binds after its welcome, and says
 * nothing when the bind is done (a Kafka bind, a group join, takes a while), so `{ n: 0 }` probes
 * are published until one arrives. The rows leave probes out.
 */
async function primed(gw: Gateway, inject: Inject, sse: SseClient, id: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  const probed = () => sse.events.some((e) => e.event === "message" && JSON.parse(e.data).n === 0);
  while (!probed()) {
    if (Date.now() > deadline) throw new Error("the SSE stream's binding never delivered a probe");
    await inject(gw, id, [JSON.stringify({ n: 0 })]);
    await sse.until(probed, 300).catch(() => {});
  }
}

async function sseSettled(sse: SseClient, count: number): Promise<unknown[]> {
  await sse.until(() => sseData(sse).length >= count, 15_000, `${count} events`);
  await sleep(300); // a duplicate would have arrived by now
  return sseData(sse);
}

/** Every portable row of an endpoint: resumeScenarios and the end-to-end ack rows. */
export function portableScenarios(endpoint: string, inject: Inject, label = endpoint): Scenario[] {
  return [...resumeScenarios(endpoint, inject, label), ...ackScenarios(endpoint, inject, label)];
}

/** Live delivery, and resume over WebSocket, over SSE and across the two. */
export function resumeScenarios(endpoint: string, inject: Inject, label = endpoint): Scenario[] {
  return [
    {
      name: `${label}: subscribed, 20 from outside -> 20 in order`,
      async run(gw) {
        const id = unique("live");
        const socket = await subscribed(gw, endpoint, id);
        await inject(gw, id, json(1, 20));
        assert.deepEqual(await socket.settled(endpoint, 20), numbered(20), "in order, once");
        socket.send({ type: "unsubscribe", endpoint, id: "u" });
        await socket.next((f) => f.id === "u");
        await socket.close();
      },
    },
    {
      name: `${label}: away, 50 from outside, back in the window -> 50 in order once`,
      async run(gw) {
        const id = unique("away");
        const first = await subscribed(gw, endpoint, id);
        await first.close();
        await inject(gw, id, json(1, 50));
        const second = await openWelcomed(gw.ws, id, gw.token);
        assert.equal(second.welcome.resumed, true, "the session resumed");
        assert.deepEqual(await second.socket.settled(endpoint, 50), numbered(50), "in order, once");
        second.socket.send({ type: "unsubscribe", endpoint, id: "u" });
        await second.socket.next((f) => f.id === "u");
        await second.socket.close();
      },
    },
    {
      name:
        `${label}: SSE resume: the stream back with its Last-Event-ID -> what came while away, in order once`,
      async run(gw) {
        const id = unique("sse-resume");
        const first = await sseStream(gw, endpoint, id);
        await primed(gw, inject, first.sse, id);
        await inject(gw, id, json(1, 3));
        assert.deepEqual(await sseSettled(first.sse, 3), numbered(3));
        await sleep(200); // a probe still on its way arrives before the stream goes
        const last = first.sse.events.filter((e) => e.event === "message").at(-1)!.id;
        await first.sse.close();
        await inject(gw, id, json(4, 5));
        // As an EventSource comes back: with the id of the last event it saw.
        const second = await sseStream(gw, endpoint, id, last);
        assert.equal(second.welcome.resumed, true, "the session resumed");
        assert.deepEqual(await sseSettled(second.sse, 5), numbered(5, 4), "in order, once");
        await second.sse.close();
      },
    },
    {
      name: `${label}: resume across transports: WebSocket -> SSE -> WebSocket, in order once`,
      async run(gw) {
        const id = unique("cross");
        const ws = await subscribed(gw, endpoint, id);
        await inject(gw, id, json(1, 3));
        assert.deepEqual(await ws.settled(endpoint, 3), numbered(3));
        await ws.close();
        await inject(gw, id, json(4, 3));
        const sse = await sseStream(gw, endpoint, id);
        assert.equal(sse.welcome.resumed, true, "resumed over SSE");
        assert.deepEqual(await sseSettled(sse.sse, 3), numbered(3, 4), "over SSE");
        await sse.sse.close();
        // Until the gateway notices the stream is gone it still writes to it (Deno notices at its
        // next write after the close, Bun at once), and a WebSocket resume does not read the SSE
        // replay log (docs/wire-protocol.md): wait for that, where the gateway's log can be read.
        if (typeof gw.output === "function") {
          await until(
            () => new RegExp(`\\[SSE\\] Connection closed .*client=${id}\\b`).test(gw.output()),
            "the gateway to see the SSE stream closed",
          );
        }
        await inject(gw, id, json(7, 3));
        const back = await openWelcomed(gw.ws, id, gw.token);
        assert.equal(back.welcome.resumed, true, "resumed over WebSocket");
        assert.deepEqual(await back.socket.settled(endpoint, 3), numbered(3, 7), "back over WebSocket");
        back.socket.send({ type: "unsubscribe", endpoint, id: "u" });
        await back.socket.next((f) => f.id === "u");
        await back.socket.close();
      },
    },
  ];
}
