/**
 * Chaos (DESIGN.md sections 5 and 11): clients reach the gateway through a TCP proxy that cuts
 * every connection after a random 0.3-2 s and throws away the bytes it held for the client, the
 * way a network failure does. Each client keeps its client ID, comes back after 0-500 ms, and is
 * bound to an MQTT endpoint on the shared Mosquitto, where an outside publisher sends it a
 * numbered stream (`{"n":1}`, `{"n":2}`, ...) at 200 msg/s with QoS 1.
 *
 * - WebSocket with end-to-end acks (`ack=1`): nothing is lost, and every copy of a message past
 *   the first is flagged `redelivered`.
 * - WebSocket without acks: what was in flight at a cut is lost (at-most-once for the bytes in
 *   flight); the count is printed, not asserted, as it shows the proxy really loses bytes.
 *
 * The gateway runs under the runtime that runs the test. `CHAOS_SECONDS` and `CHAOS_CLIENTS`
 * scale a run (defaults 20 and 10); `CHAOS_VERBOSE=1` lists what each client lost without acks.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, test } from "node:test";
import type { MqttClient } from "mqtt";
import type { ChaosClient, ChaosTally } from "../support/chaos-clients.ts";
import { WsChaosClient } from "../support/chaos-clients.ts";
import { ChaosProxy } from "../support/chaos-proxy.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { MQTT_URL, namespace, outsideClient } from "../support/mqtt.ts";
import { currentRuntime } from "../support/runtime.ts";

const CLIENTS = Number(process.env.CHAOS_CLIENTS ?? 10);
const SECONDS = Number(process.env.CHAOS_SECONDS ?? 20);
const RATE = 200;
/** After the publisher stops: how long clients may take to get everything. */
const DRAIN_MS = 15_000;
/** Clients all connected and none received anything for this long: nothing more is coming. */
const QUIET_MS = 2000;

const ns = namespace("chaos");
const CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 5s }
session: { type: memory, reconnection_window: 60s, cleanup_interval: 5s }
endpoints:
  - name: sensors
    type: mqtt
    url: ${MQTT_URL}
    publish_topic: "${ns}/{clientId}/up"
    subscribe_topic: "${ns}/{clientId}/down"
    qos: 1
    producer_pool_size: 2
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let gw: Gateway;
before(async () => {
  gw = await startGateway(currentRuntime, CONFIG);
});
after(async () => {
  await gw?.stop("SIGKILL");
});

interface ChaosRun {
  /** Messages published to each client. */
  last: number;
  tallies: ChaosTally[];
  cuts: number;
  droppedBytes: number;
  seconds: number;
}

/**
 * Publishes `{"n":1}` ... `{"n":total}` to each topic at `rate` per second and topic (QoS 1),
 * and resolves once the broker confirmed all of them.
 */
async function publishStreams(publisher: MqttClient, topics: string[], rate: number, total: number) {
  const sent = topics.map(() => 0);
  const confirmed: Array<Promise<unknown>> = [];
  const started = performance.now();
  while (sent.some((s) => s < total)) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    topics.forEach((topic, i) => {
      while (sent[i] < due) {
        confirmed.push(publisher.publishAsync(topic, JSON.stringify({ n: ++sent[i] }), { qos: 1 }));
      }
    });
    await sleep(5);
  }
  await Promise.all(confirmed);
}

/** The scenario: `CLIENTS` clients made by `make`, through a chaos proxy, for `SECONDS`. */
async function chaosRun(
  label: string,
  make: (clientId: string, base: string) => ChaosClient,
): Promise<ChaosRun> {
  const port = Number(new URL(gw.http).port);
  const proxy = await ChaosProxy.start(port);
  const run = crypto.randomUUID().slice(0, 8);
  const clients = Array.from(
    { length: CLIENTS },
    (_, i) => make(`chaos-${label}-${run}-${i}`, `http://127.0.0.1:${proxy.port}`),
  );
  const publisher = await outsideClient();
  const total = RATE * SECONDS;
  const started = performance.now();
  try {
    await Promise.all(clients.map((c) => c.start()));
    proxy.startMonkey(300, 2000);
    await publishStreams(publisher, clients.map((c) => `${ns}/${c.clientId}/down`), RATE, total);
    proxy.stopMonkey();
    // Everything arrives, or (without acks) what was lost never does: all connected and quiet.
    const deadline = Date.now() + DRAIN_MS;
    let lastCount = -1;
    let quietSince = Date.now();
    while (!clients.every((c) => c.hasAll(total)) && Date.now() < deadline) {
      const count = clients.reduce((sum, c) => sum + c.received, 0);
      if (count !== lastCount || !clients.every((c) => c.live)) {
        lastCount = count;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > QUIET_MS) {
        break;
      }
      await sleep(50);
    }
    return {
      last: total,
      tallies: clients.map((c) => c.tally(total)),
      cuts: proxy.cuts,
      droppedBytes: proxy.droppedBytes,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    proxy.stopMonkey();
    await Promise.all(clients.map((c) => c.finish()));
    await publisher.endAsync();
    await proxy.stop();
  }
}

/** One line: what a person reads to see what the chaos did. */
function summary(name: string, r: ChaosRun): string {
  const sum = (f: (t: ChaosTally) => number) => r.tallies.reduce((s, t) => s + f(t), 0);
  return `chaos (${currentRuntime}, ${name}): ${r.tallies.length} clients x ${r.last} messages` +
    ` (${RATE}/s for ${SECONDS} s), received ${sum((t) => t.received)}; cuts ${r.cuts},` +
    ` dropped bytes ${r.droppedBytes}; lost ${sum((t) => t.lost.length)};` +
    ` duplicates ${sum((t) => t.duplicates)}, flagged redelivered ${sum((t) => t.duplicatesFlagged)};` +
    ` connections ${sum((t) => t.connections)}, fresh sessions ${sum((t) => t.freshSessions)},` +
    ` resumed unrecovered ${sum((t) => t.unrecovered)},` +
    ` error frames ${sum((t) => t.errors.length)}; ${r.seconds.toFixed(1)} s` +
    errorLines(r);
}

/** The distinct error frames, with how often each came (client IDs left out). */
function errorLines(r: ChaosRun): string {
  const counts = new Map<string, number>();
  for (const e of r.tallies.flatMap((t) => t.errors)) {
    const key = e.replaceAll(/chaos-\w+-\w+-\d+/g, "<client>");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([e, n]) => `\n  ${n} x ${e}`).join("");
}

const losses = (t: ChaosTally) =>
  `${t.clientId}: ${t.lost.length} lost${t.lost.length ? ` (${t.lost.slice(0, 10).join(", ")}...)` : ""}`;

test(
  `chaos (${currentRuntime}): WebSocket without acks through a cutting proxy: losses are counted`,
  { timeout: 120_000 },
  async () => {
    const r = await chaosRun(
      "plain",
      (clientId, base) => new WsChaosClient({ base, clientId, endpoint: "sensors", ack: false }),
    );
    console.log(summary("ws, no acks", r));
    console.log(`  losses per client: ${r.tallies.map((t) => t.lost.length).join(" ")}`);
    if (process.env.CHAOS_VERBOSE) {
      for (const t of r.tallies) console.log(`  ${t.clientId} lost ${t.lost.join(" ")}`);
    }
    assert.ok(r.cuts >= CLIENTS, `the proxy cut connections (${r.cuts})`);
    assert.ok(
      r.tallies.every((t) => t.received > 0),
      "every client received messages through the chaos",
    );
    const errors = r.tallies.flatMap((t) => t.errors);
    assert.deepEqual(errors, [], "no error frames");
  },
);

test(
  `chaos (${currentRuntime}): WebSocket with end-to-end acks through a cutting proxy: 0 lost, duplicates flagged redelivered`,
  { timeout: 120_000 },
  async () => {
    const r = await chaosRun(
      "acked",
      (clientId, base) =>
        new WsChaosClient({ base, clientId, endpoint: "sensors", ack: true, ackEveryMs: 20 }),
    );
    console.log(summary("ws + acks", r));
    assert.ok(r.cuts >= CLIENTS, `the proxy cut connections (${r.cuts})`);
    for (const t of r.tallies) {
      assert.equal(t.lost.length, 0, losses(t));
      assert.equal(
        t.duplicatesFlagged,
        t.duplicates,
        `${t.clientId}: ${
          t.duplicates - t.duplicatesFlagged
        } of ${t.duplicates} duplicates not flagged redelivered`,
      );
    }
    // A failed resume stalls a client until its next reconnect: had it been the last one, its
    // messages would not have come.
    assert.deepEqual(r.tallies.flatMap((t) => t.errors), [], "no error frames");
  },
);
