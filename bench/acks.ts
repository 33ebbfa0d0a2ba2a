/**
 * `deno task bench:acks` / `npm run bench:acks`: what end-to-end acks cost. The MQTT fan-out of
 * bench/main.ts (one publisher, 100 subscribers, 200 messages, through the gateway) twice in one
 * run per runtime: subscribers without acks, and subscribers on `ack=1` that acknowledge every
 * message as it arrives (the broker is PUBACKed only then). Messages per second and p50/p99,
 * and their ratio. The clients run under the runtime being measured. Figures, not assertions.
 */
import process from "node:process";
import { startGateway } from "../tests/support/gateway-process.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { MQTT_URL } from "../tests/support/mqtt.ts";
import { currentRuntime } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { TestSocket } from "../tests/support/ws-client.ts";
import { percentile } from "./measure.ts";

const SUBSCRIBERS = Number(process.env.BENCH_CLIENTS ?? 100);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200);
const ns = `bench/${crypto.randomUUID().slice(0, 8)}`;

const config = `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: 1m, cleanup_interval: 30s }
endpoints:
  - { name: fanout, type: mqtt, url: "${MQTT_URL}", publish_topic: "${ns}/fanout", subscribe_topic: "${ns}/fanout" }
`;

async function open(gw: Gateway, id: string, acks: boolean): Promise<TestSocket> {
  const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${id}${acks ? "&ack=1" : ""}`);
  await socket.next((f) => f.type === "welcome", 60_000);
  return socket;
}

async function subscribe(socket: TestSocket): Promise<void> {
  const id = crypto.randomUUID();
  socket.send({ type: "subscribe", endpoint: "fanout", id });
  await socket.next((f) => f.type === "receipt" && f.id === id, 60_000);
}

async function fanout(gw: Gateway, acks: boolean, label: string) {
  const subscribers = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, async (_, i) => {
      const socket = await open(gw, `${label}-${i}`, acks);
      if (acks) {
        socket.onFrame = (f) => {
          const m = f as { type?: string; id?: string };
          if (m.type === "message") socket.send({ type: "ack", endpoint: "fanout", id: m.id });
        };
      }
      await subscribe(socket);
      return socket;
    }),
  );
  const publisher = await open(gw, `${label}-publisher`, false);
  const seen = () => subscribers.reduce((n, s) => n + s.messages("fanout").length, 0);
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    publisher.send({ type: "publish", endpoint: "fanout", data: { i, t: performance.now() } });
  }
  const total = SUBSCRIBERS * MESSAGES;
  while (seen() < total && performance.now() - started < 120_000) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  const latencies: number[] = [];
  for (const s of subscribers) {
    for (const m of s.messages("fanout")) {
      latencies.push((m as unknown as { at: number }).at - (m.data as { t: number }).t);
    }
  }
  const delivered = seen();
  // Unbound, so no persistent session of this run keeps taking the broker's time in the next.
  await Promise.all(subscribers.map((s) => {
    const id = crypto.randomUUID();
    s.onFrame = undefined;
    s.send({ type: "unsubscribe", endpoint: "fanout", id });
    return s.next((f) => f.type === "receipt" && f.id === id, 60_000);
  }));
  await Promise.all([publisher, ...subscribers].map((s) => s.close()));
  return {
    delivered,
    perSecond: delivered / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

const runtime: Runtime = (process.env.BENCH_RUNTIME as Runtime | undefined) ?? currentRuntime;
const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const gw = await startGateway(runtime, config);
try {
  await fanout(gw, false, "warmup"); // JIT and connections warm before either run is measured
  // Alternated, twice each, so neither side gets the quieter moment of a shared machine.
  const runs: Array<{ acks: boolean } & Awaited<ReturnType<typeof fanout>>> = [];
  for (const acks of [false, true, false, true]) {
    runs.push({ acks, ...await fanout(gw, acks, `run${runs.length}`) });
  }
  const mean = (acks: boolean) => {
    const of = runs.filter((r) => r.acks === acks);
    const avg = (k: "perSecond" | "p50" | "p99") => of.reduce((n, r) => n + r[k], 0) / of.length;
    return {
      perSecond: avg("perSecond"),
      p50: avg("p50"),
      p99: avg("p99"),
      delivered: Math.min(...of.map((r) => r.delivered)),
    };
  };
  const plain = mean(false);
  const acked = mean(true);
  const rows = [
    `| ${runtime} | msgs/s (1 -> ${SUBSCRIBERS}, ${MESSAGES} msgs, mean of 2) | ${fmt(plain.perSecond)} | ${
      fmt(acked.perSecond)
    } | ${fmt(acked.perSecond / plain.perSecond, 2)} |`,
    `| ${runtime} | p50 latency, burst queueing (ms) | ${fmt(plain.p50, 1)} | ${fmt(acked.p50, 1)} | ${
      fmt(acked.p50 / plain.p50, 2)
    } |`,
    `| ${runtime} | p99 latency, burst queueing (ms) | ${fmt(plain.p99, 1)} | ${fmt(acked.p99, 1)} | ${
      fmt(acked.p99 / plain.p99, 2)
    } |`,
  ];
  for (const [name, r] of [["without acks", plain], ["with acks", acked]] as const) {
    if (r.delivered < SUBSCRIBERS * MESSAGES) {
      rows.push(
        `| ${runtime} | WARNING: ${name} delivered ${r.delivered} of ${SUBSCRIBERS * MESSAGES} | | | |`,
      );
    }
  }
  console.log(
    `\n| gateway runtime | figure | without acks | ack=1, every message | with / without |\n| --- | --- | --- | --- | --- |\n${
      rows.join("\n")
    }`,
  );
} finally {
  await gw.stop("SIGTERM");
}
process.exit(0);
