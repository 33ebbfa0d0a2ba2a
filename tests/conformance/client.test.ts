/**
 * The client library (`client/`) against the real gateway, under the runtime that runs the test
 * (Deno, then Bun): the gateway is `src/main.ts` as a child process; failures come from a TCP
 * gate (tests/support/gate.ts: refuse, cut, drop bytes) or the chaos proxy; time-dependent
 * behaviour (back-off, pings) runs on the VirtualClock, handed to the client as its timers.
 *
 * - Resume with no loss through the chaos proxy: with acks and a dedupe key, every handler sees
 *   every message exactly once, in order, however often the connections are cut.
 * - 4409 (taken over) stops the client for good; the newer connection keeps the session.
 * - Back-off: exponential with full jitter, capped, reset after a stable connection; a half-open
 *   connection is found by the ping timeout.
 * - The publish queue: publishes made while away and publishes whose receipts were lost are sent
 *   once after the reconnect with their original ids, and reach the broker exactly once.
 * - A token that expires on the connection (4401) is refreshed through getToken; without a new
 *   token the client stops.
 * - A handler that throws does not ack: its message comes again, redelivered, after a reconnect.
 * - A session that expired while the client was away: the client subscribes again by itself.
 * - The SSE variant resumes after a cut with the last event id, losing and repeating nothing.
 * - A permanent store error (an unreadable stored session, on a Redis store): the HTTP body says
 *   `"temporary":false`, a WebSocket gets the error frame and 4500, and both clients stop and
 *   report it instead of retrying.
 * - With acks, a message without a handler is not acked: a publish-only script with a
 *   subscriber's client ID leaves the subscriber's queue to it.
 * - A subscribe refused with UPSTREAM_UNAVAILABLE (a private Mosquitto, stopped) is made again
 *   after back-off and binds once the broker is back.
 * - A gateway shutting down (1001): the client comes back to the next one and binds again.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { sign } from "hono/jwt";
import type { MqttClient } from "mqtt";
import { connect, connectSse } from "../../client/mod.js";
import type { Client, ClientError, ClientEvents, Message, SseClient, SseEvents } from "../../client/mod.js";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { paceNumbered } from "../support/chaos-clients.ts";
import { ChaosProxy } from "../support/chaos-proxy.ts";
import { Gate } from "../support/gate.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace, outsideClient, PrivateMosquitto } from "../support/mqtt.ts";
import { keyPrefix, RespRedis } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const ns = namespace("client");
const SECRET = "client-library-test-secret-0123456789";
const CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 60s, cleanup_interval: 5s }
endpoints:
  - { name: chat, type: memory }
${mqttEndpointYaml({ ns, poolSize: 2 })}
`;
const AUTH_CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 2s }
auth: { type: jwt, jwt: { secret: "${SECRET}" } }
endpoints:
  - { name: chat, type: memory }
`;

let gw: Gateway;
let authGw: Gateway;
const clients: Array<Client | SseClient> = [];
before(async () => {
  [gw, authGw] = await Promise.all([
    startGateway(currentRuntime, CONFIG),
    startGateway(currentRuntime, AUTH_CONFIG),
  ]);
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([gw?.stop("SIGKILL"), authGw?.stop("SIGKILL")]);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = () => crypto.randomUUID().slice(0, 8);
const gatewayPort = (g: Gateway) => Number(new URL(g.http).port);

/** Resolves when `predicate` holds, polling; fails after `timeoutMs`. */
async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Every event a client emitted, in order, for tests to wait on and look at. */
function record<E extends ClientEvents | SseEvents>(
  client: { on<K extends keyof E>(event: K, listener: (value: E[K]) => void): () => void },
  names: Array<keyof E>,
) {
  const events: Array<{ name: keyof E; value: unknown }> = [];
  for (const name of names) client.on(name, (value) => events.push({ name, value }));
  return {
    events,
    count: (name: keyof E) => events.filter((e) => e.name === name).length,
    /** The next event `name` from index `from` on. */
    async next<K extends keyof E>(name: K, from: number, timeoutMs = 10_000): Promise<E[K]> {
      let found: E[K] | undefined;
      await until(`${String(name)} event`, () => {
        const e = events.slice(from).find((e) => e.name === name);
        found = e?.value as E[K];
        return e !== undefined;
      }, timeoutMs);
      return found as E[K];
    },
  };
}

const ALL_EVENTS: Array<keyof ClientEvents> = [
  "connecting",
  "connected",
  "disconnected",
  "takenOver",
  "error",
];

test(
  `client (${currentRuntime}): resume through the chaos proxy: every message handled exactly once, in order`,
  {
    timeout: 60_000,
  },
  async () => {
    const CLIENTS = 3;
    const RATE = 150;
    const SECONDS = 4;
    const proxy = await ChaosProxy.start(gatewayPort(gw));
    const publisher: MqttClient = await outsideClient();
    const id = run();
    const handled = Array.from({ length: CLIENTS }, () => [] as number[]);
    const redelivered = Array.from({ length: CLIENTS }, () => 0);
    const lib = Array.from({ length: CLIENTS }, (_, i) => {
      const client = connect({
        url: `ws://127.0.0.1:${proxy.port}/ws`,
        clientId: `lib-chaos-${id}-${i}`,
        backoff: { initialMs: 200, maxMs: 500 },
        // The payload's own number: MQTT gives no stable message id.
        dedupeKey: (m: Message) => String((m.data as { n: number }).n),
      });
      clients.push(client);
      return client;
    });
    const errors: string[] = [];
    lib.forEach((c) => c.on("error", (e) => errors.push(`${e.code}: ${e.message}`)));
    try {
      await Promise.all(lib.map((client, i) =>
        client.subscribe("sensors", undefined, async (m) => {
          handled[i].push((m.data as { n: number }).n);
          if (m.redelivered) redelivered[i]++;
          // Some handlers take a while, so cuts find work half done.
          if (handled[i].length % 50 === 0) await sleep(5);
        })
      ));
      proxy.startMonkey(300, 1500);
      const topics = lib.map((c) => `${ns}/${c.clientId}/down`);
      const total = RATE * SECONDS;
      const confirmed: Array<Promise<unknown>> = [];
      await paceNumbered(CLIENTS, RATE, total, (due) => {
        for (const [i, n] of due) {
          confirmed.push(publisher.publishAsync(topics[i], JSON.stringify({ n }), { qos: 1 }));
        }
      });
      await Promise.all(confirmed);
      proxy.stopMonkey();
      await until("every message handled", () => handled.every((h) => h.length >= total), 20_000);
      await sleep(300);
      console.log(
        `  ${currentRuntime}: ${proxy.cuts} cuts; handled ${
          handled.map((h) => h.length).join(" ")
        } of ${total}` +
          ` each; redelivered copies handled (their first copy was never acked): ${redelivered.join(" ")}`,
      );
      assert.ok(proxy.cuts >= CLIENTS, `the proxy cut connections (${proxy.cuts})`);
      for (const h of handled) {
        assert.deepEqual(h, Array.from({ length: total }, (_, k) => k + 1), "each n once, in order");
      }
      assert.deepEqual(errors, []);
    } finally {
      for (const c of lib) c.close();
      await publisher.endAsync();
      await proxy.stop();
    }
  },
);

test(`client (${currentRuntime}): taken over (4409) stops the older client for good`, async () => {
  const clock = new VirtualClock();
  const clientId = `lib-taken-${run()}`;
  const older = connect({ url: `${gw.ws}/ws`, clientId, timers: clock });
  const seen = record<ClientEvents>(older, ALL_EVENTS);
  await seen.next("connected", 0);
  const newer = connect({ url: `${gw.ws}/ws`, clientId });
  clients.push(older, newer);
  const taken = await seen.next("takenOver", 0);
  assert.deepEqual(taken, { code: 4409, reason: taken.reason, willRetry: false });
  assert.equal(older.state, "closed");
  const connecting = seen.count("connecting");
  await clock.advance(120_000);
  await sleep(200);
  assert.equal(seen.count("connecting"), connecting, "the older client did not come back");
  assert.equal(newer.state, "connected");
  assert.equal(newer.welcome?.resumed, true);
  await assert.rejects(older.publish("chat", 1), { name: "ClientError", code: "CLOSED" });
  newer.close();
});

test(`client (${currentRuntime}): closed with 1008 for ignoring RATE_LIMITED, the client says why and comes back`, async () => {
  const strict = await startGateway(
    currentRuntime,
    `${CONFIG.replace("endpoints:", "policy: { publishes_per_second: 5 }\nendpoints:")}`,
  );
  try {
    const clientId = `lib-pushy-${run()}`;
    const client = connect({ url: `${strict.ws}/ws`, clientId, backoff: { initialMs: 50 } });
    clients.push(client);
    const seen = record<ClientEvents>(client, ALL_EVENTS);
    await seen.next("connected", 0);
    // One at a time, each once answered, so the gateway has read all of them when it closes.
    const refused: string[] = [];
    for (let n = 0; n < 40 && seen.count("disconnected") === 0; n++) {
      const outcome = client.publish("chat", n).catch((e: ClientError) => refused.push(e.code));
      await Promise.race([outcome, seen.next("disconnected", 0)]);
    }
    const closed = await seen.next("disconnected", 0);
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, "RATE_LIMITED: kept publishing past its rate");
    assert.equal(closed.willRetry, true);
    const error = await seen.next("error", 0);
    assert.deepEqual([error.code, error.message], ["POLICY", "RATE_LIMITED: kept publishing past its rate"]);
    // Bursts of 10, then past publishes_per_second (5) refusals in a second: closed. (The
    // publish that was answered by the close is sent again after the reconnect, and may be
    // refused again: a sixth.)
    assert.ok(refused.length === 5 || refused.length === 6, refused.join());
    assert.ok(refused.every((code) => code === "RATE_LIMITED"), refused.join());
    const back = await seen.next(
      "connected",
      seen.events.indexOf(seen.events.find((e) => e.name === "disconnected")!),
    );
    assert.equal(back.resumed, true);
    client.close();
  } finally {
    await strict.stop("SIGKILL");
  }
});

test(`client (${currentRuntime}): back-off is exponential with full jitter, capped, reset after a stable connection; pings find a half-open connection`, async () => {
  const clock = new VirtualClock();
  const gate = await Gate.start(gatewayPort(gw));
  gate.open = false;
  const client = connect({
    url: gate.url,
    clientId: `lib-backoff-${run()}`,
    timers: clock,
    random: () => 0.5,
    backoff: { initialMs: 1000, maxMs: 8000, stableMs: 5000 },
    pingIntervalMs: 3000,
    pingTimeoutMs: 2000,
  });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  try {
    // Half of min(8000, 1000 * 2^n): 500, 1000, 2000, 4000, then capped.
    for (const expected of [500, 1000, 2000, 4000, 4000]) {
      const from = seen.events.length;
      const lost = await seen.next("disconnected", from);
      assert.equal(lost.retryInMs, expected);
      assert.equal(lost.willRetry, true);
      const connecting = seen.count("connecting");
      await clock.advance(expected - 1);
      assert.equal(seen.count("connecting"), connecting, `no attempt before ${expected} ms`);
      await clock.advance(1);
      assert.equal(seen.count("connecting"), connecting + 1, `an attempt at ${expected} ms`);
    }
    await until("the sixth attempt at the gate", () => gate.accepted >= 6);
    await sleep(50);
    assert.equal(gate.accepted, 6, "one connection per attempt");
    gate.open = true;
    const from = seen.events.findLastIndex((e) => e.name === "connecting");
    await seen.next("disconnected", from);
    await clock.advance(4000);
    const welcome = await seen.next("connected", from);
    assert.equal(welcome.resumed, false);
    // A ping after 3 s of quiet, answered over real I/O; at 5 s the connection counts as stable.
    await clock.advance(3000);
    await sleep(200);
    await clock.advance(2000);
    assert.equal(client.state, "connected", "the answered ping kept the connection");
    // Half-open: the gate swallows everything; the next ping (at 6 s) goes unanswered.
    gate.dropUp = gate.dropDown = true;
    const quiet = seen.events.length;
    await clock.advance(1000 + 1999);
    assert.equal(
      seen.count("disconnected"),
      seen.events.slice(0, quiet).filter((e) => e.name === "disconnected").length,
    );
    await clock.advance(1);
    const dead = await seen.next("disconnected", quiet);
    assert.equal(dead.reason, "ping timeout");
    assert.equal(dead.retryInMs, 500, "the back-off started over");
    gate.dropUp = gate.dropDown = false;
    gate.cutAll();
    await clock.advance(500);
    const back = await seen.next("connected", quiet);
    assert.equal(back.resumed, true);
  } finally {
    client.close();
    await gate.stop();
  }
});

test(`client (${currentRuntime}): the publish queue is sent once after a reconnect, with the original ids: exactly once into the broker`, async () => {
  const gate = await Gate.start(gatewayPort(gw));
  const clientId = `lib-queue-${run()}`;
  const subscriber = await outsideClient();
  const arrived: string[] = [];
  subscriber.on("message", (_topic, payload) => arrived.push(JSON.parse(payload.toString()).k));
  await subscriber.subscribeAsync(`${ns}/${clientId}/up`, { qos: 1 });
  const client = connect({ url: gate.url, clientId, backoff: { initialMs: 50, maxMs: 100 } });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  try {
    await seen.next("connected", 0);
    // Receipts lost on the way: the gateway has these publishes, the client does not know.
    gate.dropDown = true;
    const inFlight = Array.from(
      { length: 10 },
      (_, k) => client.publish("sensors", { k: `f${k}` }, { id: `f${k}` }),
    );
    await until("the in-flight publishes at the broker", () => arrived.length === 10);
    gate.open = false;
    gate.cutAll();
    gate.dropDown = false;
    await seen.next("disconnected", 0);
    // Made while away: queued.
    const queued = Array.from({ length: 10 }, (_, k) => client.publish("sensors", { k: `q${k}` }));
    assert.equal(client.state === "connected", false);
    gate.open = true;
    const receipts = await Promise.all([...inFlight, ...queued]);
    assert.deepEqual(receipts.slice(0, 10).map((r) => r.id), Array.from({ length: 10 }, (_, k) => `f${k}`));
    await sleep(500);
    assert.equal(arrived.length, 20, `the broker got ${arrived.length}: ${arrived.join(" ")}`);
    assert.deepEqual(
      [...arrived].sort(),
      [...Array.from({ length: 10 }, (_, k) => `f${k}`), ...Array.from({ length: 10 }, (_, k) => `q${k}`)]
        .sort(),
    );
    assert.deepEqual(
      arrived.slice(10),
      Array.from({ length: 10 }, (_, k) => `q${k}`),
      "queued ones in order",
    );
    // Bounded: past maxQueuedPublishes a publish is refused at once.
    const small = connect({ url: "ws://127.0.0.1:9/ws", maxQueuedPublishes: 2 });
    clients.push(small);
    const waiting = [small.publish("chat", 1), small.publish("chat", 2)];
    await assert.rejects(small.publish("chat", 3), { code: "QUEUE_FULL" });
    small.close();
    for (const w of waiting) await assert.rejects(w, { code: "CLOSED" });
  } finally {
    client.close();
    await subscriber.endAsync();
    await gate.stop();
  }
});

test(`client (${currentRuntime}): a token expiring on the connection (4401) is refreshed; without a new one the client stops`, async () => {
  // exp is in whole seconds: rounded up first, so a token lives `seconds` to `seconds` + 1 s. (It
  // was floor + 1: a token that expired 0-1 s after it was made could expire during the upgrade,
  // which is then refused (1006 at the client), not closed with 4401: a flake under load.)
  const tokenFor = (seconds: number) =>
    sign({ sub: "alice", exp: Math.ceil(Date.now() / 1000) + seconds }, SECRET, "HS256");
  let asked = 0;
  const refreshing = connect({
    url: `${authGw.ws}/ws`,
    clientId: `lib-token-${run()}`,
    // The first token expires in a second or two; later ones last.
    getToken: () => tokenFor(++asked === 1 ? 1 : 60),
  });
  const fixed = connect({ url: `${authGw.ws}/ws`, clientId: `lib-token-${run()}`, token: await tokenFor(1) });
  clients.push(refreshing, fixed);
  const seen = record<ClientEvents>(refreshing, ALL_EVENTS);
  const seenFixed = record<ClientEvents>(fixed, ALL_EVENTS);
  const got: unknown[] = [];
  await refreshing.subscribe("chat", undefined, (m) => void got.push(m.data));
  const expired = await seen.next("disconnected", 0, 5000);
  assert.deepEqual({ code: expired.code, willRetry: expired.willRetry }, { code: 4401, willRetry: true });
  const welcome = await seen.next("connected", seen.events.findIndex((e) => e.value === expired));
  assert.equal(welcome.resumed, true);
  assert.equal(asked, 2);
  await refreshing.publish("chat", { after: "refresh" });
  await until("the message after the refresh", () => got.length === 1);
  const stopped = await seenFixed.next("disconnected", 0, 5000);
  assert.deepEqual({ code: stopped.code, willRetry: stopped.willRetry }, { code: 4401, willRetry: false });
  assert.equal(fixed.state, "closed");
  refreshing.close();
});

test(`client (${currentRuntime}): a handler that throws does not ack: the message comes again, redelivered`, async () => {
  const tag = run();
  const client = connect({
    url: `${gw.ws}/ws`,
    clientId: `lib-throw-${tag}`,
    backoff: { initialMs: 50, maxMs: 100 },
    dedupeKey: (m) => String((m.data as { n: number }).n),
  });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  const attempts: Array<{ n: number; redelivered: boolean }> = [];
  const handled: number[] = [];
  await client.subscribe("chat", (m) => {
    const { n, tag: t } = m.data as { n: number; tag: string };
    if (t !== tag) return;
    attempts.push({ n, redelivered: m.redelivered });
    if (n === 2 && attempts.filter((a) => a.n === 2).length === 1) throw new Error("not now");
    handled.push(n);
  });
  for (let n = 1; n <= 3; n++) await client.publish("chat", { n, tag });
  await until("all three handled", () => handled.length === 3);
  const error = await seen.next("error", 0);
  assert.equal(error.code, "HANDLER_FAILED");
  assert.deepEqual(handled, [1, 2, 3], "each handled once, in order");
  assert.deepEqual(attempts.filter((a) => a.n === 2), [{ n: 2, redelivered: false }, {
    n: 2,
    redelivered: true,
  }]);
  assert.equal(seen.count("connected"), 2, "one reconnect");
  client.close();
});

test(`client (${currentRuntime}): subscribing again with other params unbinds first; unsubscribe ends the binding`, async () => {
  const client = connect({ url: `${gw.ws}/ws`, clientId: `lib-params-${run()}` });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  const got: string[] = [];
  const tag = run();
  const handler = (label: string) => (m: Message) => {
    if ((m.data as { tag?: string }).tag === tag) got.push(label);
  };
  await client.subscribe("chat", { room: "a" }, handler("a"));
  await client.subscribe("chat", { room: "a" }, handler("a again"));
  await client.subscribe("chat", { room: "b" }, handler("b"));
  await client.publish("chat", { tag });
  await until("the message", () => got.length === 1);
  assert.deepEqual(got, ["b"]);
  await client.unsubscribe("chat");
  assert.deepEqual(seen.events.filter((e) => e.name === "error"), []);
  client.close();
});

test(`client (${currentRuntime}): a session that expired while away is made again: the client subscribes again by itself`, async () => {
  const token = await sign({ sub: "bob", exp: Math.floor(Date.now() / 1000) + 60 }, SECRET, "HS256");
  const client = connect({ url: `${authGw.ws}/ws`, clientId: `lib-fresh-${run()}`, token });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  const got: unknown[] = [];
  await client.subscribe("chat", (m) => void got.push(m.data));
  client.disconnect();
  await sleep(2300); // past the 2 s window
  const from = seen.events.length;
  client.reconnect();
  const welcome = await seen.next("connected", from);
  assert.deepEqual([welcome.resumed, welcome.recovered, welcome.reason], [false, false, "expired"]);
  await sleep(200);
  const answer = await fetch(`${authGw.http}/publish/chat`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: JSON.stringify({ to: "the new session" }),
  });
  assert.equal(answer.status, 202, await answer.text());
  await until("the message on the new session", () => got.length === 1);
  assert.deepEqual(got, [{ to: "the new session" }]);
  client.close();
});

test(`client (${currentRuntime}): the SSE variant resumes after a cut with the last event id, nothing lost or repeated`, async () => {
  const gate = await Gate.start(gatewayPort(gw));
  const clientId = `lib-sse-${run()}`;
  const got: number[] = [];
  const sse = connectSse(
    { url: `http://127.0.0.1:${gate.port}/sse`, endpoints: ["chat"], clientId, backoff: { initialMs: 50 } },
    (m) => void got.push((m.data as { n: number }).n),
  );
  clients.push(sse);
  const seen = record<SseEvents>(sse, ["connected", "disconnected", "error"]);
  const publish = (n: number) =>
    fetch(`${gw.http}/publish/chat`, { method: "POST", body: JSON.stringify({ n }) }).then((r) =>
      r.body?.cancel()
    );
  try {
    await seen.next("connected", 0);
    for (let n = 1; n <= 3; n++) await publish(n);
    await until("the first three", () => got.length === 3);
    gate.open = false;
    gate.cutAll();
    await seen.next("disconnected", 0);
    for (let n = 4; n <= 6; n++) await publish(n);
    gate.open = true;
    const back = await seen.next("connected", 1);
    assert.equal(back.resumed, true);
    await until("all six", () => got.length >= 6);
    await sleep(200);
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
    assert.ok(sse.lastEventId);
  } finally {
    sse.close();
    await gate.stop();
  }
});

test(`client (${currentRuntime}): a permanent store error (an unreadable stored session) is reported, not retried: HTTP says temporary:false, WebSocket 4500, both clients stop`, async () => {
  const redis = new RespRedis();
  const prefix = keyPrefix("client-unreadable");
  const store = await startGateway(
    currentRuntime,
    `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: redis, reconnection_window: 60s, redis: ${redis.config(prefix)} }
endpoints:
  - { name: chat, type: memory }
`,
  );
  const id = `lib-garbage-${run()}`;
  try {
    // Written by someone else: not a session hash. Only an operator can cure it.
    await redis.command("SET", `${prefix}${id}`, "garbage, not a session");

    const http = await fetch(`${store.http}/sse/chat?clientId=${id}`);
    assert.equal(http.status, 503);
    const body = await http.json();
    assert.deepEqual([body.code, body.temporary], ["STORE_UNAVAILABLE", false]);
    assert.match(body.message, /unreadable/);

    // A plain WebSocket: the error frame, then 4500 with the code in the reason.
    const raw = new WebSocket(`${store.ws}/ws?clientId=${id}`);
    const frames: string[] = [];
    raw.onmessage = (e) => frames.push(String(e.data));
    const closed = await new Promise<CloseEvent>((resolve) => raw.onclose = resolve);
    assert.equal(closed.code, 4500);
    assert.match(closed.reason, /^STORE_UNAVAILABLE: .*unreadable/);
    assert.equal(frames.length, 1);
    assert.deepEqual(
      (({ type, code, temporary }) => ({ type, code, temporary }))(JSON.parse(frames[0])),
      { type: "error", code: "STORE_UNAVAILABLE", temporary: false },
    );

    // A raw socket has no frame for it: the close says it.
    const plain = new WebSocket(`${store.ws}/ws/chat?clientId=${id}`);
    let plainFrames = 0;
    plain.onmessage = () => void plainFrames++;
    const plainClosed = await new Promise<CloseEvent>((resolve) => plain.onclose = resolve);
    assert.deepEqual([plainClosed.code, plainFrames], [4500, 0]);
    assert.match(plainClosed.reason, /^STORE_UNAVAILABLE: /);

    // The client library: stops at once, says why, rejects what waits.
    const clock = new VirtualClock();
    const client = connect({ url: `${store.ws}/ws`, clientId: id, timers: clock });
    clients.push(client);
    const seen = record<ClientEvents>(client, ALL_EVENTS);
    // Settled now: a rejection nobody waits for yet would fail the test run.
    const subscribed = client.subscribe("chat", () => {}).then(
      () => assert.fail("subscribed"),
      (e: ClientError) => e,
    );
    const error = await seen.next("error", 0);
    assert.deepEqual([error.code, error.temporary], ["STORE_UNAVAILABLE", false]);
    const lost = await seen.next("disconnected", 0);
    assert.deepEqual([lost.code, lost.willRetry], [4500, false]);
    assert.equal(client.state, "closed");
    const rejected = await subscribed;
    assert.deepEqual([rejected.code, rejected.temporary], ["STORE_UNAVAILABLE", false]);
    await clock.advance(120_000);
    await sleep(100);
    // (The first attempt began in connect(), before the listeners.)
    assert.equal(seen.count("connecting"), 0, "no second attempt");

    // The SSE variant (EventSource cannot show why a stream was refused: it reads it over fetch).
    const sse = connectSse(
      {
        url: `${store.http}/sse`,
        endpoints: ["chat"],
        clientId: id,
        timers: clock,
        backoff: { initialMs: 10 },
      },
      () => {},
    );
    clients.push(sse);
    const seenSse = record<SseEvents>(sse, ["connecting", "disconnected", "error"]);
    await until("the SSE client stopped", () => {
      void clock.advance(10);
      return sse.state === "closed";
    });
    const sseError = await seenSse.next("error", 0);
    assert.deepEqual([sseError.code, sseError.temporary], ["STORE_UNAVAILABLE", false]);
    const attempts = seenSse.count("connecting");
    assert.ok(attempts <= 2, `${attempts} attempts`);
    await clock.advance(120_000);
    await sleep(100);
    assert.equal(seenSse.count("connecting"), attempts, "no attempt after it stopped");

    // A temporary error says so too: another client connects normally.
    const fine = connect({ url: `${store.ws}/ws`, clientId: `lib-fine-${run()}` });
    clients.push(fine);
    await fine.subscribe("chat", () => {});
    fine.close();
  } finally {
    await store.stop("SIGKILL");
    await redis.drop(prefix);
    await redis.stop();
  }
});

test(`client (${currentRuntime}): with acks, a message without a handler is not acked: a publish-only script with a subscriber's ID does not drain its queue`, async () => {
  const clientId = `lib-unhandled-${run()}`;
  const tag = run();
  const got: Array<{ n: number; redelivered: boolean }> = [];
  const subscriber = connect({ url: `${gw.ws}/ws`, clientId, backoff: { initialMs: 50 } });
  clients.push(subscriber);
  await subscriber.subscribe("chat", (m) => {
    const data = m.data as { n: number; tag: string };
    if (data.tag === tag) got.push({ n: data.n, redelivered: m.redelivered });
  });
  subscriber.disconnect();
  await until("the subscriber away", () => subscriber.state === "disconnected");
  for (let n = 1; n <= 3; n++) {
    const answer = await fetch(`${gw.http}/publish/chat`, {
      method: "POST",
      body: JSON.stringify({ n, tag }),
    });
    assert.equal(answer.status, 202, await answer.text());
  }
  // The script publishes only; the subscriber's messages come to it, unhandled.
  const script = connect({ url: `${gw.ws}/ws`, clientId });
  clients.push(script);
  const unhandled: number[] = [];
  script.on("message", (m) => {
    const data = m.data as { n: number; tag: string };
    if (data.tag === tag) unhandled.push(data.n);
  });
  await script.publish("chat", { n: 0, tag: "not-this-test" });
  await until("the three unhandled at the script", () => unhandled.length === 3);
  await sleep(200);
  script.disconnect();
  await until("the script away", () => script.state === "disconnected");
  script.close();
  subscriber.reconnect();
  await until("the three at the subscriber", () => got.length === 3);
  assert.deepEqual(got.map((g) => g.n), [1, 2, 3]);
  assert.ok(got.every((g) => g.redelivered), "flagged: they reached the script before");

  subscriber.close();

  // A handler set later on the connection gets what waited for it, in order.
  const laterId = `lib-later-${run()}`;
  const first = connect({ url: `${gw.ws}/ws`, clientId: laterId });
  clients.push(first);
  await first.subscribe("chat", () => {});
  first.close();
  for (let n = 1; n <= 2; n++) {
    await fetch(`${gw.http}/publish/chat`, { method: "POST", body: JSON.stringify({ n, tag: laterId }) })
      .then((r) => r.body?.cancel());
  }
  const later = connect({ url: `${gw.ws}/ws`, clientId: laterId });
  clients.push(later);
  let waiting = 0;
  later.on("message", (m) => void ((m.data as { tag: string }).tag === laterId && waiting++));
  await until("both waiting for a handler", () => waiting === 2);
  const laterGot: number[] = [];
  await later.subscribe("chat", (m) => {
    const data = m.data as { n: number; tag: string };
    if (data.tag === laterId) laterGot.push(data.n);
  });
  await until("both handled", () => laterGot.length === 2);
  assert.deepEqual(laterGot, [1, 2]);
  later.close();
});

test(`client (${currentRuntime}): a subscribe refused with UPSTREAM_UNAVAILABLE is made again after back-off, and binds once the broker is back`, async () => {
  const broker = await PrivateMosquitto.start();
  const downNs = namespace("client-down");
  const flaky = await startGateway(
    currentRuntime,
    `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 60s }
endpoints:
${mqttEndpointYaml({ ns: downNs, url: broker.url, poolSize: 1 })}
`,
  );
  const clock = new VirtualClock();
  const clientId = `lib-rebind-${run()}`;
  const client = connect({
    url: `${flaky.ws}/ws`,
    clientId,
    timers: clock,
    random: () => 0.5,
    backoff: { initialMs: 200, maxMs: 400 },
  });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  const got: unknown[] = [];
  try {
    await seen.next("connected", 0);
    await broker.pause();
    let bound = false;
    let failed: unknown;
    const subscribed = client.subscribe("sensors", (m) => void got.push(m.data)).then(
      () => bound = true,
      (e) => failed = e,
    );
    const refused = await seen.next("error", 0);
    assert.deepEqual([refused.code, refused.temporary], ["UPSTREAM_UNAVAILABLE", true]);
    // On the wire: the frame itself says temporary.
    const raw = new WebSocket(`${flaky.ws}/ws?clientId=lib-rawbind-${run()}`);
    const frames: Array<Record<string, unknown>> = [];
    raw.onmessage = (e) => frames.push(JSON.parse(String(e.data)));
    await until("the raw welcome", () => frames.length === 1);
    raw.send(JSON.stringify({ type: "subscribe", endpoint: "sensors", id: "s1" }));
    await until("the raw refusal", () => frames.length === 2);
    assert.deepEqual(
      (({ type, code, temporary, id }) => ({ type, code, temporary, id }))(frames[1]),
      { type: "error", code: "UPSTREAM_UNAVAILABLE", temporary: true, id: "s1" },
    );
    raw.close();
    // Retried after back-off (half of 200 ms), refused again, and still not rejected.
    const firstAt = seen.events.findIndex((e) => e.name === "error");
    await clock.advance(99);
    await sleep(100);
    assert.equal(seen.count("error"), 1, "not before the back-off");
    await clock.advance(1);
    const second = await seen.next("error", firstAt + 1);
    assert.equal(second.code, "UPSTREAM_UNAVAILABLE");
    assert.equal(failed, undefined, "not rejected on a temporary refusal");
    assert.equal(bound, false);
    await broker.resume();
    await until("bound once the broker is back", () => {
      void clock.advance(100);
      return bound || failed !== undefined;
    }, 20_000);
    await subscribed;
    assert.equal(failed, undefined);
    assert.ok(seen.count("error") >= 1);
    assert.equal(seen.count("connected"), 1, "one connection throughout");
    const publisher = await outsideClient(broker.url);
    await publisher.publishAsync(`${downNs}/${clientId}/down`, JSON.stringify({ after: "rebind" }), {
      qos: 1,
    });
    await until("the message after the rebind", () => got.length === 1);
    assert.deepEqual(got, [{ after: "rebind" }]);
    await publisher.endAsync();
  } finally {
    client.close();
    await flaky.stop("SIGKILL");
    await broker.stop();
  }
});

// Last: it stops the gateway the tests above share (and starts another).
test(`client (${currentRuntime}): a gateway shutting down (1001) is reconnected to; the new node's fresh session is bound again`, async () => {
  const gate = await Gate.start(gatewayPort(gw));
  const client = connect({
    url: gate.url,
    clientId: `lib-restart-${run()}`,
    backoff: { initialMs: 100, maxMs: 200 },
  });
  clients.push(client);
  const seen = record<ClientEvents>(client, ALL_EVENTS);
  const got: unknown[] = [];
  try {
    await client.subscribe("chat", (m) => void got.push(m.data));
    const stopped = gw.stop("SIGTERM");
    const lost = await seen.next("disconnected", 0);
    assert.deepEqual({ code: lost.code, willRetry: lost.willRetry }, { code: 1001, willRetry: true });
    assert.equal(await stopped, 0);
    gw = await startGateway(currentRuntime, CONFIG);
    gate.targetPort = gatewayPort(gw);
    const welcome = await seen.next(
      "connected",
      seen.events.indexOf(seen.events.find((e) => e.value === lost)!),
    );
    assert.equal(welcome.resumed, false, "a new node with a memory store has no session");
    await client.publish("chat", { after: "restart" });
    await until("the message on the new node", () => got.length === 1);
    assert.deepEqual(got, [{ after: "restart" }]);
  } finally {
    client.close();
    await gate.stop();
  }
});
