/**
 * Black-box scenarios for end-to-end acknowledgements (`/ws?ack=1`), the same for every endpoint
 * type: each endpoint's gateway config and a way to put messages in front of a client from the
 * outside (an HTTP publish, an outside MQTT client, an outside Kafka producer).
 */
import assert from "node:assert/strict";
import { authorized } from "../support/gateway-process.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { SseClient } from "../support/sse-client.ts";
import { TestSocket } from "../support/ws-client.ts";
import type { Scenario } from "./gateway-scenarios.ts";

/** Sends `payloads` (JSON texts) to client `id`'s subscription on the endpoint, from outside. */
export type Inject = (gw: Gateway, id: string, payloads: string[]) => Promise<void>;

/** The memory gateway's `inbox` endpoint, fed by HTTP publishes addressed `?to=<client>`. */
export const memoryInject: Inject = async (gw, id, payloads) => {
  for (const body of payloads) {
    const response = await fetch(`${gw.http}/publish/inbox?to=${id}`, { method: "POST", body });
    await response.body?.cancel();
  }
};

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function acking(gw: Gateway, id: string) {
  const socket = await TestSocket.open(authorized(gw, `${gw.ws}/ws?clientId=${id}&ack=1`));
  const welcome = await socket.next((f) => f.type === "welcome");
  return { socket, welcome };
}

type Message = { id: string; data: { n: number }; redelivered?: boolean };

export function ackScenarios(endpoint: string, inject: Inject, label = endpoint): Scenario[] {
  const messages = (socket: TestSocket) => socket.messages(endpoint) as unknown as Message[];
  return [{
    name: `${label}: ack=1 -> what the client did not acknowledge comes again on resume, flagged redelivered`,
    async run(gw) {
      const id = unique("acker");
      const first = await acking(gw, id);
      assert.equal(first.welcome.ack, true);
      assert.equal(first.welcome.recovered, true);
      first.socket.send({ type: "subscribe", endpoint, id: "s" });
      await first.socket.next((f) => f.type === "receipt" && f.id === "s");
      await inject(gw, id, [1, 2, 3, 4, 5].map((n) => JSON.stringify({ n })));
      await first.socket.until(() => messages(first.socket).length >= 5, 10_000, "5 messages");
      const got = messages(first.socket);
      assert.deepEqual(got.map((m) => m.data.n), [1, 2, 3, 4, 5]);
      assert.ok(got.every((m) => m.redelivered === undefined), "new messages are not flagged");
      first.socket.send({ type: "ack", endpoint, id: got[1].id }); // 1 and 2, cumulatively
      first.socket.send({ type: "ack", endpoint, id: "1.999999" });
      const bad = await first.socket.next((f) => f.type === "error" && f.id === "1.999999");
      assert.equal(bad.code, "BAD_FRAME");
      await sleep(300); // the ack reaches the broker before the socket goes
      await first.socket.close();

      const second = await acking(gw, id);
      assert.equal(second.welcome.resumed, true);
      await second.socket.until(() => messages(second.socket).length >= 3, 15_000, "the unacknowledged");
      await sleep(500);
      const again = messages(second.socket);
      assert.deepEqual(again.map((m) => m.data.n), [3, 4, 5], "what was acknowledged never comes again");
      assert.ok(again.every((m) => m.redelivered === true), "each may have been seen: flagged");
      second.socket.send({ type: "ack", endpoint, id: again[2].id });
      await sleep(300);
      await second.socket.close();
      const third = await acking(gw, id);
      await inject(gw, id, [JSON.stringify({ n: 6 })]);
      await third.socket.until(() => messages(third.socket).length >= 1, 10_000, "the next message");
      await sleep(300);
      assert.deepEqual(messages(third.socket).map((m) => [m.data.n, m.redelivered]), [[6, undefined]]);
      await third.socket.close();
    },
  }];
}

/** The publish dedupe window, black-box: on the memory gateway's `chat`, watched by a second client. */
export const dedupeScenario: Scenario = {
  name: "publish retried with the same id after a reconnect -> the first receipt, one message at the broker",
  async run(gw) {
    const watcher = await TestSocket.open(`${gw.ws}/ws?clientId=${unique("watcher")}`);
    await watcher.next((f) => f.type === "welcome");
    watcher.send({ type: "subscribe", endpoint: "chat", id: "s" });
    await watcher.next((f) => f.type === "receipt" && f.id === "s");
    const id = unique("retrier");
    const marker = unique("m");
    const first = await TestSocket.open(`${gw.ws}/ws?clientId=${id}`);
    first.send({ type: "publish", endpoint: "chat", data: { marker }, id: "p-1" });
    const receipt = await first.next((f) => f.type === "receipt" && f.id === "p-1");
    await first.close();
    const second = await TestSocket.open(`${gw.ws}/ws?clientId=${id}`);
    second.send({ type: "publish", endpoint: "chat", data: { marker }, id: "p-1" });
    const again = await second.next((f) => f.type === "receipt" && f.id === "p-1");
    assert.deepEqual(again, receipt);
    await sleep(300);
    const seen = watcher.messages("chat").filter((m) => (m.data as { marker?: string })?.marker === marker);
    assert.equal(seen.length, 1, "sent to the broker once");
    await second.close();
    await watcher.close();
  },
};

/**
 * SSE with Last-Event-ID (header, as EventSource sends it, or the lastEventId query parameter),
 * on the memory gateway's `inbox`, fed by HTTP publishes.
 */
export function sseReplayScenarios(inject: Inject): Scenario[] {
  const stream = async (gw: Gateway, id: string, lastEventId?: string, header = true) => {
    const query = lastEventId && !header ? `&lastEventId=${encodeURIComponent(lastEventId)}` : "";
    const sse = await SseClient.open(
      `${gw.http}/sse/inbox?clientId=${id}${query}`,
      lastEventId && header ? { "Last-Event-ID": lastEventId } : {},
    );
    await sse.until(() => sse.events.some((e) => e.event === "welcome"));
    return sse;
  };
  const data = (sse: SseClient) => sse.events.filter((e) => e.event === "message");
  return [
    {
      name:
        "SSE: a stream back with Last-Event-ID gets everything written after it again (same ids), then what came while away",
      async run(gw) {
        for (const header of [true, false]) {
          const id = unique("sse-replay");
          const first = await stream(gw, id);
          await sleep(100);
          await inject(gw, id, ["1", "2", "3"].map((n) => JSON.stringify({ n: Number(n) })));
          await first.until(() => data(first).length === 3);
          const seen = data(first);
          await sleep(200); // kept in the replay log
          await first.close();
          await inject(gw, id, ["4", "5"].map((n) => JSON.stringify({ n: Number(n) })));
          const second = await stream(gw, id, seen[0].id, header);
          const welcome = JSON.parse(second.events.find((e) => e.event === "welcome")!.data);
          assert.equal(welcome.resumed, true);
          assert.equal(welcome.recovered, true);
          await second.until(() => data(second).length >= 4, 10_000, "2 replayed and 2 new");
          await sleep(300);
          const got = data(second);
          assert.deepEqual(
            got.map((e) => JSON.parse(e.data).n),
            [2, 3, 4, 5],
            `in order, once (header ${header})`,
          );
          assert.deepEqual(
            got.slice(0, 2).map((e) => e.id),
            [seen[1].id, seen[2].id],
            "replayed with their ids",
          );
          await second.close();
          // Everything up to the last id is confirmed: nothing comes again.
          const third = await stream(gw, id, got[3].id, header);
          await sleep(400);
          assert.deepEqual(data(third), []);
          await third.close();
        }
      },
    },
    {
      name:
        "SSE: past delivery.replay_bytes the oldest kept events go, and the welcome says how many (recovered false)",
      async run(gw) {
        const id = unique("sse-overflow");
        const first = await stream(gw, id);
        await sleep(100);
        const big = (n: number) => JSON.stringify({ n, pad: "x".repeat(900) });
        await inject(gw, id, Array.from({ length: 10 }, (_, i) => big(i + 1)));
        await first.until(() => data(first).length === 10);
        const firstId = data(first)[0].id!;
        await sleep(200);
        await first.close();
        const second = await stream(gw, id, firstId);
        const welcome = JSON.parse(second.events.find((e) => e.event === "welcome")!.data);
        assert.equal(welcome.recovered, false);
        assert.equal(welcome.reason, "dropped");
        assert.ok(welcome.lost["sse-replay"] > 0, JSON.stringify(welcome));
        await second.close();
      },
    },
  ];
}
