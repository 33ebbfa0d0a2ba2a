/**
 * A rolling restart of three nodes under load loses nothing for clients with acks (issue 24).
 * Black-box, with real processes: three gateways sharing one Redis (this run's key prefix) and
 * Mosquitto, behind a load balancer (tests/support/balancer.ts: round robin over the nodes whose
 * /readyz is 200), clients of the library (client/) with acks, and an outside MQTT publisher
 * sending numbered messages to every client at a steady rate all along.
 *
 * Each node in turn is drained (the first by SIGUSR2, the others by POST /admin/drain): its
 * /readyz goes 503, so the balancer sends no one new to it; its clients are closed with 1001 in
 * waves and come back through the balancer to the other nodes, resuming their sessions; it exits
 * 0; a new node takes its place before the next is drained. At the end every client handled every
 * number exactly once, in order.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, test } from "node:test";
import type { MqttClient } from "mqtt";
import { connect } from "../../client/mod.js";
import type { Client, Message } from "../../client/mod.js";
import { adminCall, adminUrl } from "../support/admin.ts";
import { Balancer } from "../support/balancer.ts";
import { paceNumbered } from "../support/chaos-clients.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace, outsideClient } from "../support/mqtt.ts";
import { keyPrefix, RespRedis } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const TOKEN = `roll-token-${crypto.randomUUID()}`;
const ns = namespace("rolling");
const prefix = keyPrefix("rolling");
const redis = new RespRedis();
const run = crypto.randomUUID().slice(0, 8);
const CLIENTS = 6;
const RATE = 20;
const SECONDS = 18;

const config = (node: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${node}, shutdown_timeout: 5s }
admin: { enabled: true, port: 0, drain_time: 3s, tokens: ["\${ADMIN_TOKEN}"] }
session:
  type: redis
  reconnection_window: 60s
  lease: 3s
  redis: ${redis.config(prefix)}
endpoints:
${mqttEndpointYaml({ ns, poolSize: 1 })}
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 30_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const gateways: Gateway[] = [];
const clients: Client[] = [];
let balancer: Balancer | undefined;
let publisher: MqttClient | undefined;
after(async () => {
  for (const c of clients) c.close();
  await publisher?.endAsync();
  await balancer?.stop();
  await Promise.all(gateways.map((g) => g.stop("SIGKILL")));
  await redis.drop(prefix);
  await redis.stop();
});

const start = async (node: string) => {
  const gw = await startGateway(currentRuntime, config(node), { ADMIN_TOKEN: TOKEN });
  gateways.push(gw);
  return gw;
};
const port = (gw: Gateway) => Number(new URL(gw.http).port);
const exitCode = (gw: Gateway) => gw.output().match(/gateway-exit=(\d+)/)?.[1];

test("rolling restart: three nodes drained one after another under load, nothing lost", {
  timeout: 180_000,
}, async () => {
  const nodes = await Promise.all([0, 1, 2].map((i) => start(`roll-${run}-${i}`)));
  balancer = await Balancer.start();
  await balancer.setBackends(nodes.map(port));
  await until("every node ready at the balancer", () => balancer!.ready.length === 3);

  const handled = Array.from({ length: CLIENTS }, () => [] as number[]);
  const closes = Array.from({ length: CLIENTS }, () => [] as number[]);
  const errors: string[] = [];
  const lib = Array.from({ length: CLIENTS }, (_, i) => {
    const client = connect({
      url: `ws://127.0.0.1:${balancer!.port}/ws`,
      clientId: `roll-${run}-c${i}`,
      backoff: { initialMs: 100, maxMs: 500 },
      // The payload's own number: MQTT gives no stable message id.
      dedupeKey: (m: Message) => String((m.data as { n: number }).n),
    });
    client.on("disconnected", (d) => {
      closes[i].push(d.code);
    });
    client.on("error", (e) => errors.push(`${e.code}: ${e.message}`));
    clients.push(client);
    return client;
  });
  await Promise.all(lib.map((client, i) =>
    client.subscribe("sensors", undefined, async (m) => {
      handled[i].push((m.data as { n: number }).n);
      if (handled[i].length % 25 === 0) await sleep(5);
    })
  ));
  assert.ok(balancer.sent.size === 3, "the clients are spread over the three nodes");

  publisher = await outsideClient();
  const topics = lib.map((c) => `${ns}/${c.clientId}/down`);
  const total = RATE * SECONDS;
  const confirmed: Array<Promise<unknown>> = [];
  const publishing = paceNumbered(CLIENTS, RATE, total, (due) => {
    for (const [i, n] of due) {
      confirmed.push(publisher!.publishAsync(topics[i], JSON.stringify({ n }), { qos: 1 }));
    }
  });

  const originals = [...nodes];
  const restarted: string[] = [];
  for (let i = 0; i < 3; i++) {
    const old = nodes[i];
    await sleep(1000);
    if (i === 0) process.kill(old.pid(), "SIGUSR2");
    else {
      const answer = await adminCall(await adminUrl(old), TOKEN, "POST", "/admin/drain");
      assert.equal(answer.status, 202);
    }
    await until(`node ${i} out of the balancer`, () => !balancer!.ready.includes(port(old)), 5000);
    assert.equal(await until(`node ${i} exits`, () => exitCode(old)), "0", `node ${i} exits 0`);
    nodes[i] = await start(`roll-${run}-${i}-new`);
    await balancer.setBackends(nodes.map(port));
    await until(`node ${i}'s successor ready`, () => balancer!.ready.includes(port(nodes[i])));
    restarted.push(`node ${i}: ${old.output().match(/draining over \d+ ms/)?.[0]}`);
  }
  await publishing;
  await Promise.all(confirmed);
  await until("every message handled", () => handled.every((h) => h.length >= total), 60_000);
  await sleep(300);

  console.log(
    `  ${currentRuntime}: ${CLIENTS} clients, ${total} messages each; closes per client: ${
      closes.map((c) => c.join("/") || "none").join(" ")
    }; connections per backend: ${[...balancer.sent.values()].join(" ")}`,
  );
  assert.match(originals[0].output(), /\[Server\] SIGUSR2: draining over 3000 ms/);
  assert.match(originals[1].output(), /\[Server\] POST \/admin\/drain: draining over 3000 ms/);
  assert.equal(restarted.length, 3);
  // Each client was moved at least once, closed by a draining node with 1001. Counted from the
  // nodes' close lines: Deno, closing a socket whose client frames (acks here) are still coming
  // in, drops the TCP connection right after its close frame, and the client's kernel may discard
  // that frame with the reset, so the client sees 1006.
  const drained = originals.map((gw) => gw.output()).join("\n");
  for (const [i, client] of lib.entries()) {
    assert.ok(closes[i].length > 0, `${client.clientId} was moved`);
    assert.match(
      drained,
      new RegExp(`Connection closed client=${client.clientId} .*code=1001 reason="server draining"`),
      `${client.clientId} closed with 1001 by a draining node`,
    );
  }
  for (const h of handled) {
    assert.deepEqual(
      h,
      Array.from({ length: total }, (_, k) => k + 1),
      "each n once, in order",
    );
  }
  assert.deepEqual(errors, []);
});
