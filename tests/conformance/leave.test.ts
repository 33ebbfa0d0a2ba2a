/**
 * A clean leave loses nothing (issue 19, item 20), under the runtime that runs the test: the
 * gateway is `src/main.ts` as a child process, bound to an MQTT endpoint on the shared Mosquitto
 * whose publish and subscribe topics are the same, so what a client publishes comes back to it.
 *
 * A client publishes 100 messages and closes right after, while they are still coming back.
 * Without acks the gateway acknowledges a message to the broker once it wrote it, but a
 * WebSocket (a browser's, Bun's) drops what arrives after its own `close()`: what was in flight
 * was lost. With the
 * `leave` frame the gateway stops delivering, answers the requests under way, then `left`; a
 * client that reads up to `left` has everything the gateway counted as delivered, and its next
 * connection (same client ID) gets the rest from the broker.
 *
 * - A plain WebSocket client sending `leave` (no acks): 0 lost across the reconnect.
 * - The client library's `close()` (which sends `leave` and waits for `left`), without acks and
 *   with them: 0 lost.
 * - `disconnect()` leaves the same way; `reconnect()` gets the rest.
 * - A gateway that never answers `left`: `close()` closes after `leaveTimeoutMs` (virtual clock).
 *
 * That a delivery handed over after the client's Close arrived is not written (nor acknowledged
 * to the broker) is tested on a hand-driven socket: tests/unit/ws-leave.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect } from "../../client/mod.js";
import type { Client, Message } from "../../client/mod.js";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace } from "../support/mqtt.ts";
import { currentRuntime } from "../support/runtime.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { TestSocket } from "../support/ws-client.ts";

const ns = namespace("leave");
const COUNT = 100;
const CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 60s, cleanup_interval: 5s }
endpoints:
${
  mqttEndpointYaml({
    ns,
    name: "loop",
    poolSize: 2,
    publishTopic: `${ns}/{clientId}`,
    subscribeTopic: `${ns}/{clientId}`,
  })
}
`;

let gw: Gateway;
before(async () => {
  gw = await startGateway(currentRuntime, CONFIG);
});
after(async () => {
  await gw?.stop("SIGKILL");
});

const run = () => crypto.randomUUID().slice(0, 8);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The `n` of every message frame of `loop` a socket got. */
function numbers(socket: TestSocket): number[] {
  return socket.messages("loop").map((m) => (m.data as { n: number }).n);
}

/** `n` from 1 to COUNT missing from `seen`. */
function missing(seen: Iterable<number>): number[] {
  const got = new Set(seen);
  return Array.from({ length: COUNT }, (_, i) => i + 1).filter((n) => !got.has(n));
}

/** A plain socket for `clientId`, welcomed and bound to `loop`. */
async function bound(clientId: string): Promise<TestSocket> {
  const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${clientId}`);
  await socket.next((f) => f.type === "welcome");
  socket.send({ type: "subscribe", endpoint: "loop", id: "s" });
  await socket.next((f) => f.type === "receipt" && f.id === "s");
  return socket;
}

for (const after of [0, 1, 50]) {
  test(`leave (${currentRuntime}): a plain WebSocket client that sends leave before closing loses nothing, without acks (leave after ${after} came back)`, async () => {
    const clientId = `leave-raw-${after}-${run()}`;
    const first = await bound(clientId);
    for (let n = 1; n <= COUNT; n++) {
      first.send({ type: "publish", endpoint: "loop", data: { n }, id: `p${n}` });
    }
    // Leave while they are coming back: nothing written after the leave is handled, as the client
    // stops reading at `left`.
    if (after > 0) await first.until(() => numbers(first).length >= after, 10_000, `${after} messages back`);
    first.send({ type: "leave" });
    await first.next((f) => f.type === "left");
    assert.equal((await first.closedBy()).code, 1000);
    const before = numbers(first);
    // Every publish was answered before `left`: all 100 are with the broker.
    const receipts = first.frames.filter((f) => (f as { type?: string }).type === "receipt").length;
    assert.equal(receipts, COUNT + 1, "every request was answered before left");
    const left = first.frames.findIndex((f) => (f as { type?: string }).type === "left");
    assert.equal(left, first.frames.length - 1, "nothing was written after left");

    const second = await TestSocket.open(`${gw.ws}/ws?clientId=${clientId}`);
    const welcome = await second.next((f) => f.type === "welcome");
    assert.equal(welcome.resumed, true);
    await second.until(
      () => missing([...before, ...numbers(second)]).length === 0,
      15_000,
      "every message the first connection did not get",
    );
    await second.close();
    assert.deepEqual(missing([...before, ...numbers(second)]), []);
    console.log(
      `leave (${currentRuntime}): raw, no acks, leave after ${after}: ${before.length} before left, ${
        numbers(second).length
      } after the reconnect, 0 lost`,
    );
  });
}

test(`leave (${currentRuntime}): a request sent after leave is not carried out; left and a 1000 close follow`, async () => {
  const clientId = `leave-after-${run()}`;
  const socket = await bound(clientId);
  socket.send({ type: "leave" });
  socket.send({ type: "publish", endpoint: "loop", data: { n: 1 }, id: "late" });
  await socket.next((f) => f.type === "left");
  assert.equal((await socket.closedBy()).code, 1000);
  // Refused if it came before the close, unread after it; never sent to the broker.
  const late = socket.frames.find((f) => (f as { id?: string }).id === "late") as {
    type: string;
    code?: string;
  };
  if (late) assert.deepEqual([late.type, late.code], ["error", "BAD_FRAME"]);
  const again = await bound(clientId);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(numbers(again), []);
  await again.close();
});

for (const ack of [false, true]) {
  test(
    `leave (${currentRuntime}): the client library's close() sends leave and waits for left: 0 lost, ${
      ack ? "with" : "without"
    } acks`,
    async () => {
      const clientId = `leave-lib-${ack ? "ack" : "noack"}-${run()}`;
      const handled: number[] = [];
      const handler = (m: Message) => void handled.push((m.data as { n: number }).n);
      const first: Client = connect({ url: `${gw.ws}/ws`, clientId, ack });
      await first.subscribe("loop", handler);
      const receipts = Array.from({ length: COUNT }, (_, i) => first.publish("loop", { n: i + 1 }));
      await until("a first message back", () => handled.length > 0);
      const closing = first.close();
      assert.ok(closing instanceof Promise, "close() resolves once the connection is closed");
      await closing;
      assert.equal(first.state, "closed");
      // The gateway answered every publish before `left`.
      const outcomes = await Promise.allSettled(receipts);
      assert.deepEqual(outcomes.filter((o) => o.status === "rejected"), []);
      const before = handled.length;

      const second: Client = connect({ url: `${gw.ws}/ws`, clientId, ack });
      await second.subscribe("loop", handler);
      assert.equal(second.welcome?.resumed, true);
      await until("every message the first connection did not get", () => missing(handled).length === 0);
      await second.close();
      assert.deepEqual(missing(handled), []);
      console.log(
        `leave (${currentRuntime}): client library, ${ack ? "acks" : "no acks"}: ${before} before close(), ${
          handled.length - before
        } after the reconnect, 0 lost`,
      );
    },
  );
}

test(`leave (${currentRuntime}): disconnect() leaves too; reconnect() gets the rest: 0 lost, without acks`, async () => {
  const clientId = `leave-disc-${run()}`;
  const handled: number[] = [];
  const client: Client = connect({ url: `${gw.ws}/ws`, clientId, ack: false });
  await client.subscribe("loop", (m) => void handled.push((m.data as { n: number }).n));
  const receipts = Array.from({ length: COUNT }, (_, i) => client.publish("loop", { n: i + 1 }));
  await until("a first message back", () => handled.length > 0);
  await client.disconnect();
  assert.equal(client.state, "disconnected");
  assert.deepEqual((await Promise.allSettled(receipts)).filter((o) => o.status === "rejected"), []);
  client.reconnect();
  await until("connected again", () => client.state === "connected");
  assert.equal(client.welcome?.resumed, true);
  await until("every message the first connection did not get", () => missing(handled).length === 0);
  await client.close();
  assert.deepEqual(missing(handled), []);
});

test(`leave (${currentRuntime}): close() against a gateway that never answers left closes after leaveTimeoutMs`, async () => {
  const clock = new VirtualClock();
  const sent: string[] = [];
  let closedWith: number | undefined;
  /** A socket that opens, welcomes and then answers nothing (a gateway without `leave`). */
  class Silent extends EventTarget {
    readyState = 0;
    onmessage: ((e: MessageEvent) => void) | null = null;
    onclose: ((e: CloseEvent) => void) | null = null;
    constructor(_url: string) {
      super();
      setTimeout(() => {
        this.readyState = 1;
        const welcome = {
          type: "welcome",
          clientId: "silent",
          resumed: false,
          recovered: true,
          ack: false,
          endpoints: [],
        };
        this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(welcome) }));
      }, 0);
    }
    send(data: string) {
      sent.push(data);
    }
    close(code: number) {
      closedWith = code;
      this.readyState = 3;
    }
  }
  const client = connect({
    url: "ws://127.0.0.1:1/ws",
    clientId: "silent",
    ack: false,
    timers: clock,
    leaveTimeoutMs: 2000,
    WebSocket: Silent as unknown as typeof WebSocket,
  });
  await until("connected", () => client.state === "connected");
  let done = false;
  void client.close().then(() => (done = true));
  assert.deepEqual(sent.map((s) => JSON.parse(s).type), ["leave"]);
  await clock.advance(1999);
  assert.equal(done, false, "still waiting for left");
  assert.equal(closedWith, undefined, "the socket stays open until then");
  await clock.advance(1);
  await until("close() resolved", () => done);
  assert.equal(closedWith, 1000);
  assert.equal(client.state, "closed");
});
