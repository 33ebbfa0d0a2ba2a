/**
 * `deno task bench` / `npm run bench`: the gateway against bare mqtt.js on the same Mosquitto, in
 * one run, with the gateway under Deno and under Bun (the baseline runs under the same runtime):
 *
 * (a) 2,000 clients binding: gateway WebSocket clients sending `subscribe` to an MQTT endpoint,
 *     against bare mqtt clients connecting with clean:false and subscribing. Binds per second
 *     and resident memory per client (the gateway's RSS growth; the bare process's RSS growth).
 * (b) Fan-out: one publisher, 100 subscribers, 200 messages: through the gateway (WebSocket in,
 *     MQTT, WebSocket out) against bare mqtt clients. Messages delivered per second, p50/p99.
 *
 * Figures, not assertions. BENCH_CLIENTS and BENCH_MESSAGES scale it down for a quick look.
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { startGateway } from "../tests/support/gateway-process.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { MQTT_URL } from "../tests/support/mqtt.ts";
import { ROOT, runArgs, runtimeBinary } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { TestSocket } from "../tests/support/ws-client.ts";
import { percentile, rssBytes } from "./measure.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 2000);
const SUBSCRIBERS = 100;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200);
const ns = `bench/${crypto.randomUUID().slice(0, 8)}`;

const config = `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: 1m, cleanup_interval: 30s }
log: { level: info }
policy: { max_message_bytes: 65536, connections_per_second_per_address: 100000 }
endpoints:
  - { name: bench, type: mqtt, url: "${MQTT_URL}", publish_topic: "${ns}/{clientId}/up", subscribe_topic: "${ns}/{clientId}/down" }
  - { name: fanout, type: mqtt, url: "${MQTT_URL}", publish_topic: "${ns}/fanout/gw", subscribe_topic: "${ns}/fanout/gw" }
`;

async function inBatches<T>(n: number, each: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += 100) {
    out.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => each(i + j))));
  }
  return out;
}

async function openClient(gw: Gateway, id: string): Promise<TestSocket> {
  const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${id}`);
  await socket.next((f) => f.type === "welcome", 60_000);
  return socket;
}

async function request(socket: TestSocket, frame: Record<string, unknown>): Promise<void> {
  const id = crypto.randomUUID();
  socket.send({ ...frame, id });
  const answer = await socket.next(
    (f) => (f.type === "receipt" || f.type === "error") && f.id === id,
    60_000,
  );
  if (answer.type === "error") throw new Error(`${answer.code}: ${answer.message}`);
}

async function gatewayBinds(gw: Gateway) {
  const before = rssBytes(gw.pid());
  const started = performance.now();
  const sockets = await inBatches(CLIENTS, async (i) => {
    const socket = await openClient(gw, `bench-gw-${i}`);
    await request(socket, { type: "subscribe", endpoint: "bench" });
    return socket;
  });
  const seconds = (performance.now() - started) / 1000;
  const after = rssBytes(gw.pid());
  // Unbind, so the benchmark leaves no broker sessions behind.
  await inBatches(sockets.length, (i) => request(sockets[i], { type: "unsubscribe", endpoint: "bench" }));
  await Promise.all(sockets.map((s) => s.close()));
  return { bindsPerSecond: CLIENTS / seconds, rssPerClient: (after - before) / CLIENTS };
}

async function gatewayFanout(gw: Gateway) {
  const latencies: number[] = [];
  const subscribers = await inBatches(SUBSCRIBERS, async (i) => {
    const socket = await openClient(gw, `bench-fan-${i}`);
    await request(socket, { type: "subscribe", endpoint: "fanout" });
    return socket;
  });
  const publisher = await openClient(gw, "bench-fan-publisher");
  const seen = () => subscribers.reduce((n, s) => n + s.messages("fanout").length, 0);
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    publisher.send({ type: "publish", endpoint: "fanout", data: { i, t: performance.now() } });
  }
  const total = SUBSCRIBERS * MESSAGES;
  while (seen() < total && performance.now() - started < 60_000) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  // Latency is measured at arrival: each TestSocket keeps arrival order, so stamp now.
  for (const s of subscribers) {
    for (const m of s.messages("fanout")) {
      latencies.push((m as unknown as { at: number }).at - (m.data as { t: number }).t);
    }
  }
  const delivered = seen();
  await Promise.all([publisher, ...subscribers].map((s) => s.close()));
  return {
    delivered,
    perSecond: delivered / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

function bare(runtime: Runtime, args: string[]) {
  const result = spawnSync(runtimeBinary(runtime), runArgs(runtime, "bench/bare-mqtt.ts", args), {
    cwd: ROOT,
    encoding: "utf8",
  });
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`baseline failed: ${result.stderr || result.stdout}`);
  }
}

const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const rows: string[] = [];
for (const runtime of ["deno", "bun"] as Runtime[]) {
  const gw = await startGateway(runtime, config);
  try {
    const a = await gatewayBinds(gw);
    const aBase = bare(runtime, ["binds", String(CLIENTS), MQTT_URL, ns]);
    const b = await gatewayFanout(gw);
    const bBase = bare(runtime, [
      "fanout",
      String(SUBSCRIBERS),
      String(MESSAGES),
      MQTT_URL,
      `${ns}/fanout/bare`,
    ]);
    rows.push(
      `| ${runtime} | binds/s (${CLIENTS} clients) | ${fmt(a.bindsPerSecond)} | ${
        fmt(aBase.bindsPerSecond)
      } | ${fmt(a.bindsPerSecond / aBase.bindsPerSecond, 2)} |`,
      `| ${runtime} | RSS per bound client (KiB) | ${fmt(a.rssPerClient / 1024, 1)} | ${
        fmt(aBase.rssPerClient / 1024, 1)
      } | ${fmt(a.rssPerClient / aBase.rssPerClient, 2)} |`,
      `| ${runtime} | fan-out msgs/s (1 -> ${SUBSCRIBERS}, ${MESSAGES} msgs) | ${fmt(b.perSecond)} | ${
        fmt(bBase.perSecond)
      } | ${fmt(b.perSecond / bBase.perSecond, 2)} |`,
      `| ${runtime} | fan-out p50 latency (ms) | ${fmt(b.p50, 1)} | ${fmt(bBase.p50, 1)} | ${
        fmt(b.p50 / bBase.p50, 2)
      } |`,
      `| ${runtime} | fan-out p99 latency (ms) | ${fmt(b.p99, 1)} | ${fmt(bBase.p99, 1)} | ${
        fmt(b.p99 / bBase.p99, 2)
      } |`,
    );
    if (b.delivered < SUBSCRIBERS * MESSAGES) {
      rows.push(
        `| ${runtime} | WARNING: gateway delivered ${b.delivered} of ${SUBSCRIBERS * MESSAGES} | | | |`,
      );
    }
  } finally {
    await gw.stop("SIGTERM");
  }
}
console.log(
  `\n| gateway runtime | figure | gateway | bare mqtt.js | ratio |\n| --- | --- | --- | --- | --- |\n${
    rows.join("\n")
  }`,
);
process.exit(0);
