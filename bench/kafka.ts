/**
 * `deno task bench:kafka` / `npm run bench:kafka`: one producer and 20 clients bound to a Kafka
 * endpoint through the gateway (WebSocket out), against two baselines on the same broker, in one
 * run per runtime, everything under the runtime being measured (this file runs itself under each
 * runtime with `--child`; the clients are in that process, the producer in one of its own,
 * bench/kafka-produce.ts, so the WebSocket clients do not slow it down):
 *
 * - bare: the same 20 consumers on bare kafkajs (bench/bare-kafka.ts, a process of its own);
 * - forwarder: the physical limit, a minimal kafkajs -> WebSocket forwarder with the gateway's
 *   frames and one consumer per client, none of the gateway's logic (bench/kafka-forwarder.ts,
 *   a process of its own, served like the gateway).
 *
 * The broker is Apache Kafka at KAFKA_BROKERS (127.0.0.1:9092 by default; start one with
 * tests/support/kafka-broker/start.sh). Each client reads the whole topic (the baselines' consumers in
 * a group of their own each), so every message is delivered 20 times. Then the bind side
 * (bench/kafka-bind.ts). Consumers bound and 50 messages (1,000 deliveries) of warm-up
 * first; then BENCH_MESSAGES (500) produced at once (in sends of 10), so latency includes the
 * queueing of the burst. Deliveries/s and CPU per delivery of the server process (all threads),
 * and of the process the 20 readers run in (this one's WebSocket clients; bare: its consumers).
 * `BENCH_ROUNDS` (1) runs per runtime, alternating, give each figure's median. Figures, not
 * assertions.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import process from "node:process";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { startGateway } from "../tests/support/gateway-process.ts";
import { KAFKA_BROKERS } from "../tests/support/kafka/cluster.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { connect, inBatches } from "./clients.ts";
import { bindEndpoint, bindFigures } from "./kafka-bind.ts";
import type { BindFigures } from "./kafka-bind.ts";
import { cpuMs, percentile } from "./measure.ts";

const CLIENTS = 20;
const WARMUP = 50;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 500);
/** Runs per runtime; the tables give medians. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
/** The gateway's reconnection window: the cleanup of 1,000 clients is timed from its end. */
const WINDOW_MS = 5000;

type Side = "gateway" | "forwarder" | "bare";
interface Figures {
  delivered: number;
  perSecond: number;
  cpuUsPerDelivery: number;
  /** CPU per delivery of the process its 20 readers run in: this one's WebSocket clients (bare: its own). */
  readerCpuUsPerDelivery: number;
  p50: number;
  p99: number;
}

if (process.argv.includes("--child")) {
  console.log(JSON.stringify(await measure(KAFKA_BROKERS)));
  process.exit(0);
}

type RunFigures = Record<Side, Figures> & { bind: BindFigures };
const runs: Record<Runtime, RunFigures[]> = { deno: [], bun: [], node: [] };
// On a shared machine one run says little: BENCH_ROUNDS runs per runtime, alternating, and the
// tables give each figure's median.
for (let round = 0; round < ROUNDS; round++) {
  for (const runtime of ["deno", "bun"] as Runtime[]) {
    const result = spawnSync(runtimeBinary(runtime), runArgs(runtime, "bench/kafka.ts", ["--child"]), {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, KAFKA_BROKERS: KAFKA_BROKERS.join(",") },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      runs[runtime].push(JSON.parse(result.stdout.trim().split("\n").at(-1) ?? ""));
    } catch {
      throw new Error(`the ${runtime} run failed: ${result.stdout}`);
    }
    console.error(`${runtime} round ${round + 1}: ${result.stdout.trim().split("\n").at(-1)}`);
  }
}
const rows: string[] = [];
const bindRows: string[] = [];
for (const runtime of ["deno", "bun"] as Runtime[]) {
  const figures = medianOf(runs[runtime]);
  rows.push(...table(runtime, figures));
  bindRows.push(bindRow(runtime, figures.bind));
}
console.log(
  `\n| runtime | figure | gateway | forwarder | bare kafkajs | gateway / forwarder | gateway / bare |\n| --- | --- | --- | --- | --- | --- | --- |\n${
    rows.join("\n")
  }`,
);
console.log(
  `\n| runtime | bind p50 / p99 (ms) | resume p50 / p99 (ms) | clients bound | time to bind them (after the first) | gateway's broker connections with 1 / all bound | RSS per bound client | groups on the broker | cleanup of their groups after the window |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n${
    bindRows.join("\n")
  }`,
);
process.exit(0);

/** Each numeric figure's median over the runs (objects figure by figure). */
function medianOf<T>(values: T[]): T {
  const first = values[0] as unknown;
  if (typeof first === "number") return percentile(values as number[], 50) as T;
  if (typeof first !== "object" || first === null) return values[0];
  return Object.fromEntries(
    Object.keys(first).map((k) => [k, medianOf(values.map((v) => (v as Record<string, unknown>)[k]))]),
  ) as T;
}

function bindRow(runtime: Runtime, b: BindFigures): string {
  return `| ${runtime} | ${b.bindP50.toFixed(0)} / ${b.bindP99.toFixed(0)} | ${b.resumeP50.toFixed(0)} / ${
    b.resumeP99.toFixed(0)
  } | ${b.bound} | ${b.bindAllSeconds.toFixed(1)} s | ${b.connectionsOne} / ${b.connectionsBound} | ${
    b.rssPerClientKb.toFixed(1)
  } KB | ${b.groups} | ${b.cleanupSeconds.toFixed(1)} s |`;
}

function table(runtime: Runtime, f: Record<Side, Figures>): string[] {
  const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
  const out: string[] = [];
  const row = (figure: string, of: (s: Side) => number, digits: number) =>
    out.push(
      `| ${runtime} | ${figure} | ${fmt(of("gateway"), digits)} | ${fmt(of("forwarder"), digits)} | ${
        fmt(of("bare"), digits)
      } | ${fmt(of("gateway") / of("forwarder"), 2)} | ${fmt(of("gateway") / of("bare"), 2)} |`,
    );
  row(`deliveries/s (1 producer -> ${CLIENTS} clients, ${MESSAGES} msgs)`, (s) => f[s].perSecond, 0);
  row("CPU per delivery, server process (us)", (s) => f[s].cpuUsPerDelivery, 1);
  row("CPU per delivery, the readers' process (us; bare: the same)", (s) => f[s].readerCpuUsPerDelivery, 1);
  row("queueing in the burst: p50 latency (ms)", (s) => f[s].p50, 1);
  row("queueing in the burst: p99 latency (ms)", (s) => f[s].p99, 1);
  for (const side of ["gateway", "forwarder", "bare"] as Side[]) {
    if (f[side].delivered < CLIENTS * MESSAGES) {
      out.push(`| ${runtime} | WARNING: ${side} delivered ${f[side].delivered} of ${CLIENTS * MESSAGES} |`);
    }
  }
  return out;
}

/**
 * The lines a child prints, read from the start (nothing is lost between two looks):
 * `next(pattern)` resolves with the first line not looked at yet that matches.
 */
function linesOf(child: ChildProcess): (pattern: RegExp) => Promise<string> {
  const lines: string[] = [];
  let partial = "";
  let wake = () => {};
  let exited: number | null | undefined;
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const parts = text.split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    wake();
  });
  child.once("exit", (code) => {
    exited = code;
    wake();
  });
  return async (pattern) => {
    for (;;) {
      const found = lines.findIndex((l) => pattern.test(l));
      if (found >= 0) return lines.splice(0, found + 1)[found];
      if (exited !== undefined) {
        throw new Error(`exited with ${exited} before ${pattern}: ${lines.join("\n")}`);
      }
      await new Promise<void>((resolve) => wake = resolve);
    }
  };
}

/** One runtime's figures: runs in the `--child` process, under that runtime. */
async function measure(brokers: string[]): Promise<Record<Side, Figures> & { bind: BindFigures }> {
  const runtime = currentRuntime;
  const ns = `bench-${crypto.randomUUID().slice(0, 8)}.${runtime}`;
  const kafka = new Kafka({ clientId: "bench", brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = (side: Side) => `${ns}.${side}`;
  await admin.createTopics({
    topics: [...(["gateway", "forwarder", "bare"] as Side[]).map(topic), `${ns}.bind`].map((t) => ({
      topic: t,
    })),
  });
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // In a process of its own (bench/kafka-produce.ts): sharing this one's event loop with the
  // WebSocket clients slowed it down in the gateway's and the forwarder's runs only.
  const produce = async (to: string, count: number) => {
    const child = spawn(
      runtimeBinary(runtime),
      runArgs(runtime, "bench/kafka-produce.ts", [brokers[0], to, String(count)]),
      { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] },
    );
    const code = await new Promise((resolve) => child.once("close", resolve));
    if (code !== 0) throw new Error(`bench/kafka-produce.ts exited with ${code}`);
  };

  const gw = await startGateway(
    runtime,
    `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: ${WINDOW_MS}ms, cleanup_interval: 1s }
policy: { connections_per_second_per_address: 100000 }
endpoints:
  - name: bench
    type: kafka
    brokers: [${brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${topic("gateway")}"
    subscribe_topic: "${topic("gateway")}"
    start_from: earliest
    fetch_max_wait: 100ms${bindEndpoint(brokers, `${ns}.bind`)}
`,
  );
  const fw = spawn(
    runtimeBinary(runtime),
    runArgs(runtime, "bench/kafka-forwarder.ts", [brokers[0], `bench=${topic("forwarder")}`]),
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const fwPort = Number((await linesOf(fw)(/^listening/)).split(" ")[1]);
    const through = async (base: string, pid: number, side: Side): Promise<Figures> => {
      let latencies: number[] = [];
      let start = Infinity;
      let last = 0;
      const sockets = await inBatches(CLIENTS, async (i) => {
        const socket = await connect(base, `bench-${side}-${i}-${crypto.randomUUID().slice(0, 6)}`);
        socket.onMessage = (data, at) => {
          const arrived = performance.timeOrigin + at;
          latencies.push(arrived - data.t);
          start = Math.min(start, (data as unknown as { t0: number }).t0);
          last = Math.max(last, arrived);
        };
        await socket.request({ type: "subscribe", endpoint: "bench" });
        return socket;
      });
      const until = async (count: number) => {
        const deadline = Date.now() + 60_000;
        while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      };
      await produce(topic(side), WARMUP);
      await until(CLIENTS * WARMUP);
      latencies = [];
      start = Infinity;
      const cpu = cpuMs(pid);
      const readerCpu = cpuMs(process.pid);
      await produce(topic(side), MESSAGES);
      await until(CLIENTS * MESSAGES);
      const figures = {
        delivered: latencies.length,
        perSecond: latencies.length / ((last - start) / 1000),
        cpuUsPerDelivery: ((cpuMs(pid) - cpu) * 1000) / latencies.length,
        readerCpuUsPerDelivery: ((cpuMs(process.pid) - readerCpu) * 1000) / latencies.length,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
      };
      // Unsubscribing unbinds: the benchmark leaves no consumer groups behind.
      await Promise.all(
        sockets.map((s) => s.request({ type: "unsubscribe", endpoint: "bench" }).catch(() => {})),
      );
      await Promise.all(sockets.map((s) => s.close()));
      return figures;
    };
    const gateway = await through(gw.ws, gw.pid(), "gateway");
    const forwarder = await through(`ws://127.0.0.1:${fwPort}`, fw.pid!, "forwarder");
    const bareChild = spawn(
      runtimeBinary(runtime),
      runArgs(runtime, "bench/bare-kafka.ts", [
        brokers[0],
        topic("bare"),
        String(CLIENTS),
        String(WARMUP),
        String(MESSAGES),
      ]),
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    const bareLine = linesOf(bareChild);
    await bareLine(/^ready$/);
    await produce(topic("bare"), WARMUP);
    await bareLine(/^warm$/);
    await produce(topic("bare"), MESSAGES);
    const bareFigures = JSON.parse(await bareLine(/^\{/));
    // Its consumers are its readers: one process.
    const bare = { ...bareFigures, readerCpuUsPerDelivery: bareFigures.cpuUsPerDelivery };
    const bind = await bindFigures(gw, kafka, producer, brokers[0], `${ns}.bind`, `b-${runtime}`, WINDOW_MS);
    return { gateway, forwarder, bare, bind };
  } finally {
    await producer.disconnect();
    fw.kill("SIGKILL");
    await gw.stop("SIGTERM");
  }
}
