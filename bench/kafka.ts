/**
 * `deno task bench:kafka` / `npm run bench:kafka`: one producer and 20 clients bound to a Kafka
 * endpoint through the gateway (WebSocket out), against the same 20 consumers on bare kafkajs,
 * on the same broker, in one run, with the gateway under Deno and under Bun (the baseline runs
 * under the same runtime, in a process of its own).
 *
 * The broker is the Kafka test broker (tests/support/kafka), run as its own process, or the
 * cluster named by KAFKA_BROKERS. Each of the 20 consumers has a group of its own on one topic,
 * so every message is delivered 20 times. All M messages are produced at once (in sends of 10),
 * so latency includes the queueing of the burst. Figures, not assertions; BENCH_MESSAGES
 * scales it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import process from "node:process";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { startGateway } from "../tests/support/gateway-process.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { freePort } from "../tests/support/net.ts";
import { ROOT, runArgs, runtimeBinary } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { TestSocket } from "../tests/support/ws-client.ts";
import { percentile } from "./measure.ts";

const CLIENTS = 20;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 500);
const ns = `bench-${crypto.randomUUID().slice(0, 8)}`;
const wall = () => performance.timeOrigin + performance.now();

/** The test broker in a process of its own (so it does not share the clients' event loop). */
async function startBroker(): Promise<{ brokers: string[]; child?: ChildProcess }> {
  if (process.env.KAFKA_BROKERS) return { brokers: process.env.KAFKA_BROKERS.split(",") };
  const port = await freePort();
  const child = spawn(
    runtimeBinary("deno"),
    runArgs("deno", "tests/support/kafka/main.ts", ["--port", String(port)]),
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  await lineFrom(child, /listening/);
  return { brokers: [`127.0.0.1:${port}`], child };
}

function lineFrom(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => pattern.test(l));
      if (line) {
        child.stdout!.off("data", onData);
        resolve(line);
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited with ${code} before ${pattern}: ${out}`)));
  });
}

async function produce(kafka: Kafka, topic: string): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const t0 = wall();
  for (let i = 0; i < MESSAGES; i += 10) {
    const messages = Array.from({ length: Math.min(10, MESSAGES - i) }, (_, j) => ({
      value: JSON.stringify({ i: i + j, t: wall(), t0 }),
    }));
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

async function throughGateway(gw: Gateway, kafka: Kafka, topic: string) {
  const sockets = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const socket = await TestSocket.open(
      `${gw.ws}/ws?clientId=bench-${i}-${crypto.randomUUID().slice(0, 6)}`,
    );
    await socket.next((f) => f.type === "welcome");
    socket.send({ type: "subscribe", endpoint: "bench", id: "s" });
    const answer = await socket.next(
      (f) => (f.type === "receipt" || f.type === "error") && f.id === "s",
      60_000,
    );
    if (answer.type === "error") throw new Error(`${answer.code}: ${answer.message}`);
    return socket;
  }));
  await produce(kafka, topic);
  const seen = () => sockets.reduce((n, s) => n + s.messages("bench").length, 0);
  const deadline = Date.now() + 60_000;
  while (seen() < CLIENTS * MESSAGES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const latencies: number[] = [];
  let start = Infinity;
  let last = 0;
  for (const s of sockets) {
    for (const m of s.messages("bench")) {
      const arrived = performance.timeOrigin + (m as unknown as { at: number }).at;
      const { t, t0 } = m.data as { t: number; t0: number };
      latencies.push(arrived - t);
      start = Math.min(start, t0);
      last = Math.max(last, arrived);
    }
  }
  // Unsubscribing unbinds: the benchmark leaves no consumer groups behind.
  await Promise.all(sockets.map(async (s) => {
    s.send({ type: "unsubscribe", endpoint: "bench", id: "u" });
    await s.next((f) => f.id === "u", 30_000).catch(() => {});
    await s.close();
  }));
  return {
    delivered: latencies.length,
    perSecond: latencies.length / ((last - start) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function bare(runtime: Runtime, broker: string, kafka: Kafka, topic: string) {
  const child = spawn(
    runtimeBinary(runtime),
    runArgs(runtime, "bench/bare-kafka.ts", [broker, topic, String(CLIENTS), String(MESSAGES)]),
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  await lineFrom(child, /^ready$/);
  await produce(kafka, topic);
  return JSON.parse(await lineFrom(child, /^\{/));
}

const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const broker = await startBroker();
const kafka = new Kafka({ clientId: "bench", brokers: broker.brokers, logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const rows: string[] = [];
try {
  for (const runtime of ["deno", "bun"] as Runtime[]) {
    const gwTopic = `${ns}.${runtime}.gw`;
    const bareTopic = `${ns}.${runtime}.bare`;
    await admin.createTopics({ topics: [{ topic: gwTopic }, { topic: bareTopic }] });
    const gw = await startGateway(
      runtime,
      `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: 1m, cleanup_interval: 30s }
endpoints:
  - name: bench
    type: kafka
    brokers: [${broker.brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${gwTopic}"
    subscribe_topic: "${gwTopic}"
    fetch_max_wait: 100ms
`,
    );
    try {
      const g = await throughGateway(gw, kafka, gwTopic);
      const b = await bare(runtime, broker.brokers[0], kafka, bareTopic);
      const row = (figure: string, a: number, base: number, digits: number) =>
        rows.push(
          `| ${runtime} | ${figure} | ${fmt(a, digits)} | ${fmt(base, digits)} | ${fmt(a / base, 2)} |`,
        );
      row(`msgs/s (1 producer -> ${CLIENTS} clients, ${MESSAGES} msgs)`, g.perSecond, b.perSecond, 0);
      row("p50 latency (ms)", g.p50, b.p50, 1);
      row("p99 latency (ms)", g.p99, b.p99, 1);
      for (const [who, r] of [["gateway", g], ["bare kafkajs", b]] as const) {
        if (r.delivered < CLIENTS * MESSAGES) {
          rows.push(
            `| ${runtime} | WARNING: ${who} delivered ${r.delivered} of ${CLIENTS * MESSAGES} | | | |`,
          );
        }
      }
    } finally {
      await gw.stop("SIGTERM");
    }
  }
} finally {
  await admin.disconnect();
  broker.child?.kill("SIGTERM");
}
console.log(
  `\n| gateway runtime | figure | gateway | bare kafkajs | ratio |\n| --- | --- | --- | --- | --- |\n${
    rows.join("\n")
  }`,
);
process.exit(0);
