/**
 * Two gateway nodes sharing Redis and Mosquitto, one under each runtime (A under the runtime
 * running the tests, B under the other, so `npm test` covers both directions), and a single node
 * whose private Redis goes away: on each transport of the Redis store (RESP over TCP, and the
 * Upstash REST API through a proxy), and with A on RESP and B on REST sharing one Redis; the
 * two-node tests also on a private Redis Cluster (3 primaries, 3 replicas, the sharded layout).
 * Everything is real: gateway processes, Redis, Mosquitto, WebSocket clients.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { brokerHasSession, mqttEndpointYaml, namespace, outsideClient } from "../support/mqtt.ts";
import { keyPrefix, PrivateRedis, RedisProxy, RespRedis } from "../support/redis.ts";
import { RedisClusterServers } from "../support/redis-cluster.ts";
import type { TestRedis } from "../support/redis.ts";
import { kafkaNamespace, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { currentRuntime } from "../support/runtime.ts";
import type { Runtime } from "../support/runtime.ts";
import { numbered, openWelcomed } from "../support/ws-client.ts";
import type { TestSocket } from "../support/ws-client.ts";
import { eventually } from "./endpoint-contract.ts";
import { upgradeAnswer } from "./gateway-scenarios.ts";

const otherRuntime: Runtime = currentRuntime === "deno" ? "bun" : "deno";
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const LEASE_MS = 1000;
const WINDOW_MS = 4000;

function nodeConfig(
  redis: TestRedis,
  prefix: string,
  ns: string,
  nodeId: string,
  timeout = "1s",
  kafka?: { brokers: string[]; ns: string },
): string {
  return `
server: { host: 127.0.0.1, port: 0, node_id: ${nodeId}, shutdown_timeout: 5s }
session:
  type: redis
  reconnection_window: ${WINDOW_MS}ms
  cleanup_interval: 500ms
  lease: ${LEASE_MS}ms
  redis: ${redis.config(prefix, timeout)}
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
${
    kafka
      ? `  - name: orders
    type: kafka
    brokers: [${kafka.brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${kafka.ns}.{clientId}.up"
    subscribe_topic: "${kafka.ns}.{clientId}.down"
    fetch_max_wait: 100ms
`
      : ""
  }`;
}

const open = (gw: Gateway, clientId: string) => openWelcomed(gw.ws, clientId);

async function bind(socket: TestSocket, endpoint = "sensors"): Promise<void> {
  const id = unique("sub");
  socket.send({ type: "subscribe", endpoint, id });
  await socket.next((f) => f.type === "receipt" && f.id === id);
}

/** The value of one /metrics sample, e.g. `mediation_bindings{endpoint="sensors"}`. */
async function metric(gw: Gateway, sample: string): Promise<number> {
  const text = await (await fetch(`${gw.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : NaN;
}

async function publishDown(ns: string, clientId: string, count: number): Promise<void> {
  const outside = await outsideClient();
  for (let n = 1; n <= count; n++) {
    await outside.publishAsync(`${ns}/${clientId}/down`, JSON.stringify({ n }), { qos: 1 });
  }
  await outside.endAsync();
}

let proxy: RedisProxy;
const resp = new RespRedis();
let kafka: TestKafka;
let redisCluster: RedisClusterServers;
before(async () => {
  proxy = await RedisProxy.start();
  kafka = await startKafka();
  redisCluster = await RedisClusterServers.start();
});
after(async () => {
  await proxy.stop();
  await resp.stop();
  await kafka.stop();
  await redisCluster?.stop();
});

/** How nodes A and B reach Redis. */
type Transports = "resp" | "rest" | "resp + rest" | "cluster";
const TRANSPORTS: Transports[] = ["resp", "rest", "resp + rest"];
const redisOf = (transports: Transports): [TestRedis, TestRedis] =>
  transports === "resp"
    ? [resp, resp]
    : transports === "rest"
    ? [proxy, proxy]
    : transports === "cluster"
    ? [redisCluster, redisCluster]
    : [resp, proxy];

/** Nodes A (this runtime) and B (the other) on one key prefix and topic namespace. */
async function cluster(label: string, transports: Transports) {
  const [redisA, redisB] = redisOf(transports);
  const prefix = keyPrefix(label);
  const ns = namespace(label);
  const kns = kafkaNamespace(label);
  // Node ids of their own: a node's MQTT producer connections are named after it, and two
  // processes with one name (a test's and another run's) would take each other's over.
  const id = crypto.randomUUID().slice(0, 8);
  const [a, b] = await Promise.all([
    startGateway(
      currentRuntime,
      nodeConfig(redisA, prefix, ns, `node-a-${id}`, "1s", { brokers: kafka.brokers, ns: kns }),
    ),
    startGateway(
      otherRuntime,
      nodeConfig(redisB, prefix, ns, `node-b-${id}`, "1s", { brokers: kafka.brokers, ns: kns }),
    ),
  ]);
  const stop = async () => {
    await Promise.all([a.stop("SIGKILL"), b.stop("SIGKILL")]);
    await redisA.drop(prefix);
  };
  return { a, b, ns, kns, prefix, stop };
}

for (const transports of [...TRANSPORTS, "cluster"] as const) {
  test(`cluster (${currentRuntime} + ${otherRuntime}, redis ${transports}): away from A, 100 published, back on B -> all 100 in order; A holds nothing`, async () => {
    const { a, b, ns, stop } = await cluster("resume", transports);
    try {
      const id = unique("dev");
      const first = await open(a, id);
      await bind(first.socket);
      assert.equal(await metric(a, 'mediation_bindings{endpoint="sensors"}'), 1);
      await first.socket.close();
      await publishDown(ns, id, 100);

      const second = await open(b, id);
      assert.equal(second.welcome.resumed, true);
      assert.deepEqual(await second.socket.settled("sensors", 100), numbered(100), "in order, once");
      assert.equal(await metric(a, 'mediation_bindings{endpoint="sensors"}'), 0, "A holds no consumer");
      assert.equal(await metric(b, 'mediation_bindings{endpoint="sensors"}'), 1);
      await second.socket.close();
    } finally {
      await stop();
    }
  });

  test(`cluster (${currentRuntime} + ${otherRuntime}, redis ${transports}): the same client on B takes over from A, which closes with 4409 and lets go`, async () => {
    const { a, b, ns, stop } = await cluster("takeover", transports);
    try {
      const id = unique("dev");
      const onA = await open(a, id);
      await bind(onA.socket);
      const onB = await open(b, id);
      assert.equal(onB.welcome.resumed, true);
      const closed = await onA.socket.closedBy(10_000);
      assert.equal(closed.code, 4409);
      await eventually(
        async () => await metric(a, 'mediation_bindings{endpoint="sensors"}') === 0,
        "A lets go",
      );
      await publishDown(ns, id, 20);
      await onB.socket.until(() => onB.socket.messages("sensors").length >= 20, 10_000, "20 messages on B");
      assert.deepEqual(onB.socket.messages("sensors").map((m) => m.data), numbered(20));
      assert.equal(onA.socket.messages("sensors").length, 0, "nothing went to the old socket");
      await onB.socket.close();
    } finally {
      await stop();
    }
  });

  test(`cluster (${currentRuntime} + ${otherRuntime}, redis ${transports}): kill -9 A -> its client resumes on B losing nothing; one that stays away is unbound once by B`, async () => {
    const { a, b, ns, stop } = await cluster("crash", transports);
    try {
      const [stay, gone] = [unique("stay"), unique("gone")];
      const first = await open(a, stay);
      await bind(first.socket);
      await bind((await open(a, gone)).socket);
      await publishDown(ns, stay, 10);
      await first.socket.until(
        () => first.socket.messages("sensors").length >= 10,
        10_000,
        "10 before the crash",
      );
      // The gateway acknowledges a message to the broker after writing it to the socket: the 10th
      // may reach the client before its PUBACK leaves A, and a kill then has the broker send it
      // again (at least once). Here the crash comes after the acks, so "nothing repeated" holds.
      await sleep(500);

      await a.stop("SIGKILL");
      await publishDown(ns, stay, 20);
      const second = await open(b, stay);
      assert.equal(second.welcome.resumed, true, "resumed within lease + window");
      assert.deepEqual(await second.socket.settled("sensors", 20), numbered(20), "nothing lost or repeated");

      const unbound = `[CleanupWorker] Unbound client ${gone} from endpoint sensors`;
      await eventually(
        () => b.output().includes(unbound),
        "B's cleanup of the client that stayed away",
        20_000,
      );
      await sleep(1000);
      assert.equal(b.output().split(unbound).length - 1, 1, "unbound once");
      assert.equal(
        await brokerHasSession(`engine-sensors-client-${gone}`),
        false,
        "its broker session is gone",
      );
      assert.equal(
        await brokerHasSession(`engine-sensors-client-${stay}`),
        true,
        "the resumed one keeps its own",
      );
      await second.socket.close();
    } finally {
      await stop();
    }
  });
}

async function produceDown(ns: string, clientId: string, from: number, count: number): Promise<void> {
  const producer = await outsideProducer(kafka.kafka);
  const messages = Array.from(
    { length: count },
    (_, i) => ({ key: clientId, value: JSON.stringify({ n: from + i }) }),
  );
  await producer.send({ topic: `${ns}.${clientId}.down`, messages });
  await producer.disconnect();
}

for (const transports of TRANSPORTS) {
  test(`cluster (${currentRuntime} + ${otherRuntime}, redis ${transports}): kafka: away from A, 100 produced, back on B -> 100 in order; taken over again by A, B lets go`, async () => {
    const { a, b, kns: ns, stop } = await cluster("kafka", transports);
    try {
      const id = unique("dev");
      const first = await open(a, id);
      await bind(first.socket, "orders");
      await first.socket.close();
      await produceDown(ns, id, 1, 100);

      const second = await open(b, id);
      assert.equal(second.welcome.resumed, true);
      assert.deepEqual(await second.socket.settled("orders", 100), numbered(100), "in order, once");
      assert.equal(await metric(a, 'mediation_bindings{endpoint="orders"}'), 0, "A holds no consumer");

      // The same client on A while B holds it: A takes the session over and reads on from the
      // committed offsets; B's lease renewal finds the session taken and B lets go; the next
      // messages reach A only.
      const third = await open(a, id);
      assert.equal((await second.socket.closedBy(15_000)).code, 4409);
      await eventually(
        async () => await metric(b, 'mediation_bindings{endpoint="orders"}') === 0,
        "B lets go",
      );
      await produceDown(ns, id, 101, 20);
      assert.deepEqual(await third.socket.settled("orders", 20), numbered(20, 101));
      assert.equal(second.socket.messages("orders").length, 100, "nothing more went to the old socket");
      await third.socket.close();
    } finally {
      await stop();
    }
  });
}

for (const transport of ["resp", "rest"] as const) {
  test(`gateway (${currentRuntime}, redis ${transport}): Redis unreachable -> new connections get 503 before upgrade, live ones flow, then it recovers`, async () => {
    const redis = await PrivateRedis.start();
    const privateRedis = transport === "resp"
      ? await RespRedis.start(redis.url)
      : await RedisProxy.start(redis.url);
    const prefix = keyPrefix("outage");
    const ns = namespace("outage");
    const gw = await startGateway(
      currentRuntime,
      nodeConfig(privateRedis, prefix, ns, `node-o-${crypto.randomUUID().slice(0, 8)}`, "500ms"),
    );
    const store = privateRedis.store(prefix);
    try {
      const id = unique("live");
      const live = await open(gw, id);
      await bind(live.socket);
      await publishDown(ns, id, 1);
      await live.socket.until(() => live.socket.messages("sensors").length === 1, 10_000, "first message");
      const epoch = Number(live.socket.messages("sensors")[0].id.split(".")[0]);
      const before = await store.get(id);
      assert.equal(before?.epoch, epoch);

      await redis.pause();
      const refused = await upgradeAnswer(gw, `/ws?clientId=${unique("new")}`);
      assert.equal(refused.status, 503);
      assert.equal(JSON.parse(refused.body).code, "STORE_UNAVAILABLE");
      assert.match(JSON.parse(refused.body).message, /session store unreachable/);
      assert.equal((await fetch(`${gw.http}/readyz`)).status, 503);
      const during = await fetch(`${gw.http}/metrics`);
      assert.equal(during.status, 200, "metrics answer without the store");
      assert.match(await during.text(), /mediation_connections\{transport="ws"\} 1/);

      // The live connection keeps flowing both ways while the store is gone.
      await publishDown(ns, id, 5);
      await live.socket.until(
        () => live.socket.messages("sensors").length === 6,
        10_000,
        "5 during the outage",
      );
      live.socket.send({ type: "publish", endpoint: "sensors", data: { up: 1 }, id: "during" });
      await live.socket.next((f) => f.type === "receipt" && f.id === "during");
      await sleep(2 * LEASE_MS);

      await redis.resume();
      await eventually(async () => (await fetch(`${gw.http}/readyz`)).status === 200, "ready again", 15_000);
      const back = await open(gw, unique("new"));
      assert.equal(back.welcome.resumed, false);
      await back.socket.close();
      // The test's own store client may still be reconnecting (its back-off) after the gateway's
      // did: a refused read is "not yet".
      await eventually(
        async () => ((await store.get(id).catch(() => undefined))?.leaseUntil ?? 0) > Date.now(),
        "lease renewed",
        10_000,
      );
      const after = await store.get(id);
      assert.equal(after?.state, "connected");
      assert.equal(after?.epoch, epoch, "the live session was not disturbed");
      assert.deepEqual(after?.subscriptions.map((s) => s.endpoint), ["sensors"]);
      assert.equal(await metric(gw, 'mediation_sessions{state="connected"}'), 1);
      assert.equal(
        await metric(gw, 'mediation_sessions{state="disconnected"}'),
        1,
        "the one that came and went",
      );
      assert.equal(live.socket.closed, undefined);
      await publishDown(ns, id, 1);
      await live.socket.until(() => live.socket.messages("sensors").length === 7, 10_000, "after the outage");
      await live.socket.close();
    } finally {
      await gw.stop("SIGKILL");
      await store.close();
      await privateRedis.stop();
      await redis.stop();
    }
  });
}
