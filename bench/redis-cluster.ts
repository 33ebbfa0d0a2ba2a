/**
 * `deno run --allow-all bench/redis-cluster.ts`: a many-node run on a Redis Cluster (issue 22).
 * A private cluster of 3 primaries and 3 replicas (tests/support/redis-cluster.ts, the sharded
 * layout), CLUSTER_NODES gateway nodes (default 3, alternately Deno and Bun) each behind a
 * cutting proxy, CLUSTER_CLIENTS WebSocket clients with end-to-end acks bound to MQTT on the
 * shared Mosquitto, connecting through a round-robin of the nodes that are up. Churn: each
 * connection is cut after CLUSTER_CUT_MIN_MS-CLUSTER_CUT_MAX_MS (default 2-8 s) and comes back
 * within 0.5 s to the next node. An outside publisher sends each client a numbered stream at
 * CLUSTER_RATE a second (QoS 1) for CLUSTER_SECONDS (default 30); at 40 % of it one gateway node
 * is killed (`kill -9`), at 60 % the Redis primary holding the most shards.
 *
 * Prints: messages lost (goal 0), duplicates and how many were flagged `redelivered`,
 * connections and refused opens, resume latency (a sample of reconnects timed from the request to
 * the welcome, after the run), store round trips per connection, Redis memory per session
 * (MEMORY USAGE of a sample's keys, and the indexes' share), and
 * whether sessions and the broker's sessions went back to zero after the window. Figures, not
 * assertions.
 */
import process from "node:process";
import type { MqttClient } from "mqtt";
import { chaosSummary, paceNumbered, runChaos, WsChaosClient } from "../tests/support/chaos-clients.ts";
import { ChaosProxy } from "../tests/support/chaos-proxy.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { startGateway } from "../tests/support/gateway-process.ts";
import { brokerHasSession, mqttEndpointYaml, namespace, outsideClient } from "../tests/support/mqtt.ts";
import { keyPrefix } from "../tests/support/redis.ts";
import { RedisClusterServers, TEST_SHARDS } from "../tests/support/redis-cluster.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { openWelcomed } from "../tests/support/ws-client.ts";
import { KeyLayout } from "../src/session/redis-layout.ts";

const NODES = Number(process.env.CLUSTER_NODES ?? 3);
const CLIENTS = Number(process.env.CLUSTER_CLIENTS ?? 200);
const SECONDS = Number(process.env.CLUSTER_SECONDS ?? 30);
const RATE = Number(process.env.CLUSTER_RATE ?? 2);
const CUT_MIN_MS = Number(process.env.CLUSTER_CUT_MIN_MS ?? 2000);
const CUT_MAX_MS = Number(process.env.CLUSTER_CUT_MAX_MS ?? 8000);
const WINDOW_S = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (values: number[], p: number) =>
  values.length === 0
    ? NaN
    : [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];

/** The sum of one /metrics sample over the nodes that answer. */
async function metricSum(nodes: Gateway[], sample: string): Promise<number> {
  let sum = 0;
  for (const gw of nodes) {
    const text = await fetch(`${gw.http}/metrics`).then((r) => r.text()).catch(() => "");
    const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
    if (line) sum += Number(line.slice(sample.length + 1));
  }
  return sum;
}

const cluster = await RedisClusterServers.start();
const prefix = keyPrefix("bench-cluster");
const layout = new KeyLayout(prefix, TEST_SHARDS);
const ns = namespace("bench-cluster");
const run = crypto.randomUUID().slice(0, 8);
const config = (nodeId: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${nodeId}, shutdown_timeout: 5s }
session:
  type: redis
  reconnection_window: ${WINDOW_S}s
  cleanup_interval: 2s
  lease: 3s
  redis: ${cluster.config(prefix, "3s")}
endpoints:
${mqttEndpointYaml({ ns, poolSize: 4 })}
`;
const runtimes: Runtime[] = ["deno", "bun"];
const nodes = await Promise.all(
  Array.from({ length: NODES }, (_, i) => startGateway(runtimes[i % 2], config(`bench-${i}-${run}`))),
);
const dead = new Set<number>();
const proxies = await Promise.all(nodes.map((gw) => ChaosProxy.start(Number(new URL(gw.http).port))));
let next = 0;
const pick = () => {
  for (;;) {
    const i = next++ % NODES;
    if (!dead.has(i)) return `http://127.0.0.1:${proxies[i].port}`;
  }
};
const clients = Array.from(
  { length: CLIENTS },
  (_, i) =>
    new WsChaosClient({
      base: pick,
      clientId: `bench-${run}-${i}`,
      endpoint: "sensors",
      ack: true,
      ackEveryMs: 100,
    }),
);
// The primary to kill: the one holding the most shards, found before the traffic starts.
const owners = new Map<number, number>();
for (const base of layout.bases) {
  const port = await cluster.primaryOf(`${base}~deadlines`);
  owners.set(port, (owners.get(port) ?? 0) + 1);
}
const primary = [...owners].sort((a, b) => b[1] - a[1])[0][0];

/** used_cpu_sys + used_cpu_user of the Redis on `port`, in s. */
async function redisCpu(port: number): Promise<number> {
  const { Redis } = await import("ioredis");
  const redis = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0 });
  const info = await redis.info("cpu");
  redis.disconnect();
  return Number(info.match(/used_cpu_sys:([\d.]+)/)![1]) + Number(info.match(/used_cpu_user:([\d.]+)/)![1]);
}

// What one primary carries: lifecycle steps (connect, renew, release: one script each) on client
// IDs of its shards only, 64 at a time for CLUSTER_STEPS_SECONDS, against the CPU it spent.
{
  const seconds = Number(process.env.CLUSTER_STEPS_SECONDS ?? 5);
  const stepsPrefix = keyPrefix("bench-steps");
  const store = cluster.store(stepsPrefix);
  const stepsLayout = new KeyLayout(stepsPrefix, TEST_SHARDS);
  const mine = new Set<string>();
  for (const base of stepsLayout.bases) {
    if (await cluster.primaryOf(`${base}~deadlines`) === primary) mine.add(base);
  }
  const ids: string[] = [];
  for (let i = 0; ids.length < 2000; i++) {
    if (mine.has(stepsLayout.baseOf(`steps-${i}`))) ids.push(`steps-${i}`);
  }
  await store.ping();
  const cpuBefore = await redisCpu(primary);
  const t0 = performance.now();
  let steps = 0;
  await Promise.all(Array.from({ length: 64 }, async (_, worker) => {
    for (let k = worker; performance.now() - t0 < seconds * 1000; k += 64) {
      const id = ids[k % ids.length];
      const now = Date.now();
      const taken = await store.connect(id, {
        nodeId: "n",
        now,
        leaseUntil: now + 15_000,
        deadline: now + 315_000,
        freshEpoch: now,
      });
      if (!("session" in taken)) continue;
      await store.renew([{ clientId: id, epoch: taken.session.epoch }], now, now + 15_000, now + 315_000);
      await store.release(id, taken.session.epoch, now, now + 300_000);
      steps += 3;
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const cpu = await redisCpu(primary) - cpuBefore;
  console.log(
    `one primary: ${
      (steps / wall).toFixed(0)
    } lifecycle steps/s (connect, renew, release; 64 at a time, ${ids.length} sessions)` +
      ` using ${(100 * cpu / wall).toFixed(0)} % of a core: ${
        (steps / cpu).toFixed(0)
      } steps per Redis CPU-second`,
  );
  // Lease renewal, as a node does it: every session it holds, 1000 per request, one script per
  // shard the request's sessions fall in. These all live on this primary.
  const held: Array<{ clientId: string; epoch: number }> = [];
  for (const id of ids) {
    const now = Date.now();
    const taken = await store.connect(id, {
      nodeId: "r",
      now,
      leaseUntil: now + 15_000,
      deadline: now + 315_000,
      freshEpoch: now,
    });
    if ("session" in taken) held.push({ clientId: id, epoch: taken.session.epoch });
  }
  const renewCpu = await redisCpu(primary);
  const t1 = performance.now();
  let renewed = 0;
  while (performance.now() - t1 < seconds * 1000) {
    const now = Date.now();
    await Promise.all(
      [0, 1000].map((from) => store.renew(held.slice(from, from + 1000), now, now + 15_000, now + 315_000)),
    );
    renewed += held.length;
  }
  const renewWall = (performance.now() - t1) / 1000;
  const spent = await redisCpu(primary) - renewCpu;
  console.log(
    `one primary: ${(renewed / renewWall).toFixed(0)} lease renewals/s (1000 a request) using ${
      (100 * spent / renewWall).toFixed(0)
    } % of a core: ${(renewed / spent).toFixed(0)} renewals per Redis CPU-second`,
  );
  await store.close();
  await cluster.drop(stepsPrefix);
}
const publisher: MqttClient = await outsideClient();
const events: string[] = [];
const started = performance.now();
const at = () => ((performance.now() - started) / 1000).toFixed(1);
try {
  const r = await runChaos({
    clients,
    proxies,
    rate: RATE,
    trafficSeconds: SECONDS,
    cutMinMs: CUT_MIN_MS,
    cutMaxMs: CUT_MAX_MS,
    bindTimeoutMs: 120_000,
    drainMs: 30_000,
    publish: async (total) => {
      const chaos = (async () => {
        await sleep(SECONDS * 400);
        const victim = NODES - 1;
        dead.add(victim);
        await nodes[victim].stop("SIGKILL");
        events.push(`gateway node ${victim} (${nodes[victim].runtime}) killed at ${at()} s`);
        await sleep(SECONDS * 200);
        const killedAt = performance.now();
        await cluster.kill(primary);
        events.push(
          `Redis primary ${primary} (${owners.get(primary)} of ${TEST_SHARDS} shards) killed at ${at()} s`,
        );
        await cluster.promoted(primary);
        events.push(
          `its replica serves its slots ${((performance.now() - killedAt) / 1000).toFixed(2)} s later`,
        );
      })();
      const confirmed: Array<Promise<unknown>> = [];
      await paceNumbered(clients.length, RATE, total, (due) => {
        for (const [i, n] of due) {
          confirmed.push(
            publisher.publishAsync(`${ns}/${clients[i].clientId}/down`, JSON.stringify({ n }), { qos: 1 }),
          );
        }
      });
      await Promise.all(confirmed);
      await chaos;
    },
  });
  const live = nodes.filter((_, i) => !dead.has(i));
  const sum = (f: (t: (typeof r.tallies)[number]) => number) => r.tallies.reduce((s, t) => s + f(t), 0);
  const roundTrips = await metricSum(live, "mediation_store_round_trips_total");
  const connections = sum((t) => t.connections);
  console.log(chaosSummary("mixed", `${NODES} nodes on a Redis Cluster, a node and a primary killed`, r));
  for (const e of events) console.log(`  ${e}`);
  console.log(
    `  store round trips: ${roundTrips} on the surviving nodes over ${connections} connections of all nodes` +
      ` (${(roundTrips / connections).toFixed(1)} per connection: connect, bind, renewals, release)`,
  );
  // Resume latency: reconnect a sample of the (now unbound, within the window) sessions.
  const latencies: number[] = [];
  for (let i = 0; i < Math.min(100, CLIENTS); i++) {
    const t0 = performance.now();
    const { socket, welcome } = await openWelcomed(live[i % live.length].ws, clients[i].clientId);
    latencies.push(performance.now() - t0);
    if (welcome.resumed !== true) events.push(`${clients[i].clientId} did not resume`);
    await socket.close();
  }
  console.log(
    `  resume latency (request to welcome, ${latencies.length} reconnects): p50 ${
      percentile(latencies, 0.5).toFixed(1)
    } ms,` +
      ` p99 ${percentile(latencies, 0.99).toFixed(1)} ms`,
  );
  // Every node counts the whole store: one node's figure.
  const counted = await metricSum([live[0]], 'mediation_sessions{state="disconnected"}') +
    await metricSum([live[0]], 'mediation_sessions{state="connected"}');
  // What one session takes: its keys (hash, publish ledger, replay log) by MEMORY USAGE on a
  // sample, plus its share of its shard's two indexes.
  let sampled = 0;
  const sample = clients.slice(0, 20);
  for (const c of sample) {
    const key = layout.key(c.clientId);
    for (const k of [key, `${key}~pub`, `${key}~pubt`, `${key}~sse`, `${key}~sseb`]) {
      sampled += Number(await cluster.command("MEMORY", "USAGE", k) ?? 0);
    }
  }
  let indexes = 0;
  for (const base of layout.bases) {
    for (const k of [layout.deadlines(base), layout.leases(base)]) {
      indexes += Number(await cluster.command("MEMORY", "USAGE", k) ?? 0);
    }
  }
  console.log(
    `  memory per session (MEMORY USAGE): ${(sampled / sample.length).toFixed(0)} bytes of its own keys` +
      ` + ${(indexes / counted).toFixed(0)} bytes of index entries (${counted} sessions)`,
  );
  // Everything expires: the window, then a cleanup run or two.
  await sleep((WINDOW_S + 6) * 1000);
  const left = await metricSum([live[0]], 'mediation_sessions{state="disconnected"}') +
    await metricSum([live[0]], 'mediation_sessions{state="connected"}');
  let brokerLeft = 0;
  for (const c of clients.slice(0, 20)) {
    if (await brokerHasSession(`engine-sensors-client-${c.clientId}`).catch(() => false)) brokerLeft++;
  }
  console.log(
    `  after the window: ${left} sessions in the store, ${brokerLeft} of 20 sampled broker sessions left`,
  );
} finally {
  await publisher.endAsync();
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all(nodes.map((gw) => gw.stop("SIGKILL")));
  await cluster.stop();
}
process.exit(0);
