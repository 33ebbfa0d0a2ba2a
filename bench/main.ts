/**
 * `deno task bench` / `npm run bench`: the gateway against two baselines on the same Mosquitto,
 * in one run per runtime, with everything under the runtime being measured (gateway, baselines,
 * and the benchmark's clients: this file runs itself under each runtime with `--child`):
 *
 * - bare: mqtt.js clients subscribing directly (bench/bare-mqtt.ts, a process of its own);
 * - forwarder: the physical limit of the gateway's design, a minimal WebSocket <-> mqtt.js
 *   forwarder with the same frames and one persistent consumer per client, none of the
 *   gateway's logic (bench/forwarder.ts, a process of its own, served like the gateway).
 *
 * (a) Binds: BENCH_CLIENTS (2,000) clients connect and subscribe (through a server: WebSocket,
 *     welcome, subscribe, a persistent MQTT consumer, receipt). Binds/s, CPU per bind of the
 *     server process (all threads), resident memory per bound client.
 * (b) Fan-out: 1 publisher -> 100 subscribers. Publisher and subscribers connected and bound
 *     before the clock starts, 20 messages (2,000 deliveries) of warm-up, then BENCH_MESSAGES
 *     (200) sent at once: deliveries/s and CPU per delivery of the server process; latency here
 *     is queueing in the burst.
 * (c) Steady rate: the same at 50 % and 80 % of the gateway's burst maximum, for
 *     BENCH_SECONDS (2) each: latency p50/p99/p99.9 and the spread between the first and the last
 *     subscriber to get a message.
 *
 * (d) One subscriber at a steady 200 messages a second: added latency with no fan-out.
 *
 * Each fan-out figure is the median of BENCH_ROUNDS (3) runs per side, the sides' order rotated
 * every round. Figures, not assertions. Prints a table with gateway/bare and gateway/forwarder
 * ratios.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { startGateway } from "../tests/support/gateway-process.ts";
import { MQTT_URL } from "../tests/support/mqtt.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary, RUNTIMES } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { binds, fanout } from "./clients.ts";
import { medianSummary, rssBytes } from "./measure.ts";
import type { FanoutSummary } from "./measure.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 2000);
const SUBSCRIBERS = 100;
const WARMUP = 20;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** The rate of the one-subscriber run, messages a second. */
const ONE_RATE = 200;
/** BENCH_ROUNDS (3): each fan-out figure is the median of this many runs per side. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_PARTS=binds: the binds alone (memory per client at 9,000 clients, say). */
const FANOUT = (process.env.BENCH_PARTS ?? "binds,fanout").includes("fanout");

interface Figures {
  binds: Record<Side, { bindsPerSecond: number; cpuUsPerBind: number; rssPerClient: number }>;
  burst?: Record<Side, FanoutSummary>;
  steady: Array<{ share: number; rate: number } & Record<Side, FanoutSummary>>;
  /** One subscriber at a steady ONE_RATE messages a second. */
  one?: Record<Side, FanoutSummary>;
}
type Side = "gateway" | "before" | "forwarder" | "bare";

/**
 * BENCH_BEFORE=DIR: another checkout of the project (`git archive COMMIT | tar -x -C DIR`, with
 * DIR/node_modules linked to this one's) measured beside the gateway, as a "before" column.
 */
const BEFORE = process.env.BENCH_BEFORE;
const SIDES: Side[] = BEFORE ? ["gateway", "before", "forwarder", "bare"] : ["gateway", "forwarder", "bare"];

// The gateway holds two sockets per bound client (WebSocket, MQTT consumer), the clients' process
// and the bare one one each: the soft limit on open files must allow that (`ulimit -n`; the hard
// limit bounds what a shell may raise it to). Checked here, so a large BENCH_CLIENTS fails at once.
const openFiles = Number(
  readFileSync("/proc/self/limits", "utf8").match(/Max open files\s+(\d+)/)?.[1] ?? Infinity,
);
if (openFiles < 2 * CLIENTS + 200) {
  throw new Error(
    `BENCH_CLIENTS=${CLIENTS} needs ulimit -n of at least ${2 * CLIENTS + 200}; it is ${openFiles}`,
  );
}

if (process.argv.includes("--child")) {
  console.log(JSON.stringify(await measure()));
  process.exit(0);
}

/** BENCH_RUNTIMES (deno,bun,node): the runtimes to measure, one run each, in this order. */
const runtimes = (process.env.BENCH_RUNTIMES ?? RUNTIMES.join(",")).split(",") as Runtime[];

const rows: string[] = [];
for (const runtime of runtimes) {
  const result = spawnSync(runtimeBinary(runtime), runArgs(runtime, "bench/main.ts", ["--child"]), {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 26,
  });
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  let figures: Figures;
  try {
    figures = JSON.parse(line);
  } catch {
    throw new Error(`the ${runtime} run failed: ${result.stdout}`);
  }
  rows.push(...table(runtime, figures));
}
const beforeHeader = BEFORE ? ["before", "gateway / before"] : [];
const header = [
  "runtime",
  "figure",
  "gateway",
  "forwarder",
  "bare mqtt.js",
  "gateway / forwarder",
  "gateway / bare",
];
header.splice(3, 0, ...beforeHeader.slice(0, 1));
header.push(...beforeHeader.slice(1));
console.log(`\n| ${header.join(" | ")} |\n|${" --- |".repeat(header.length)}\n${rows.join("\n")}`);
process.exit(0);

function table(runtime: Runtime, f: Figures): string[] {
  const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
  const out: string[] = [];
  const row = (
    figure: string,
    of: (s: Side) => number,
    digits: number,
    compare: (a: number, b: number) => string,
  ) => {
    const cells = [runtime, figure, fmt(of("gateway"), digits)];
    if (BEFORE) cells.push(fmt(of("before"), digits));
    cells.push(fmt(of("forwarder"), digits), fmt(of("bare"), digits));
    cells.push(compare(of("gateway"), of("forwarder")), compare(of("gateway"), of("bare")));
    if (BEFORE) cells.push(compare(of("gateway"), of("before")));
    out.push(`| ${cells.join(" | ")} |`);
  };
  const ratio = (figure: string, of: (s: Side) => number, digits: number) =>
    row(figure, of, digits, (a, b) => fmt(a / b, 2));
  const added = (figure: string, of: (s: Side) => number) =>
    row(figure, of, 2, (a, b) => `${fmt(a - b, 2)} added`);
  ratio(`binds/s (${CLIENTS} clients)`, (s) => f.binds[s].bindsPerSecond, 0);
  ratio("CPU per bind, server process (us)", (s) => f.binds[s].cpuUsPerBind, 0);
  ratio("RSS per bound client (KiB)", (s) => f.binds[s].rssPerClient / 1024, 1);
  if (!f.burst) return out;
  const b = f.burst;
  const burst = `1 -> ${SUBSCRIBERS}, ${MESSAGES} msgs at once`;
  ratio(`fan-out deliveries/s (${burst})`, (s) => b[s].perSecond, 0);
  ratio("CPU per delivery, server process (us)", (s) => b[s].cpuUsPerDelivery, 1);
  ratio("queueing in the burst: p50 latency (ms)", (s) => b[s].p50, 1);
  ratio("queueing in the burst: p99 latency (ms)", (s) => b[s].p99, 1);
  if (f.one) {
    const one = f.one;
    const at = `1 subscriber, steady ${ONE_RATE} msgs/s`;
    added(`${at}: p50 latency (ms)`, (s) => one[s].p50);
    added(`${at}: p99 latency (ms)`, (s) => one[s].p99);
    added(`${at}: p99.9 latency (ms)`, (s) => one[s].p999);
  }
  for (const steady of f.steady) {
    const at = `steady ${steady.rate} msgs/s (${steady.share * 100} % of max)`;
    added(`${at}: p50 latency (ms)`, (s) => steady[s].p50);
    added(`${at}: p99 latency (ms)`, (s) => steady[s].p99);
    added(`${at}: p99.9 latency (ms)`, (s) => steady[s].p999);
    added(`${at}: first-to-last subscriber spread, p99 (ms)`, (s) => steady[s].spreadP99);
    ratio(`${at}: CPU per delivery (us)`, (s) => steady[s].cpuUsPerDelivery, 1);
  }
  for (
    const [name, r] of [
      ["burst", b],
      ...f.steady.map((s) => [`steady ${s.share}`, s] as const),
    ] as const
  ) {
    for (const side of SIDES) {
      const want = SUBSCRIBERS * (name === "burst" ? MESSAGES : (r as Figures["steady"][0]).rate * SECONDS);
      if (r[side].delivered < want) {
        out.push(`| ${runtime} | WARNING: ${side} delivered ${r[side].delivered} of ${want} (${name}) |`);
      }
    }
  }
  return out;
}

/** One runtime's figures: runs in the `--child` process, under that runtime. */
async function measure(): Promise<Figures> {
  const runtime = currentRuntime;
  const ns = `bench/${crypto.randomUUID().slice(0, 8)}`;
  const gatewayConfig = (tag: string) => `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: 1m, cleanup_interval: 30s }
log: { level: info }
policy: { max_message_bytes: 65536, connections_per_second_per_address: 100000, publishes_per_second: 100000, max_pending_publishes: 100000 }
endpoints:
  - { name: bench, type: mqtt, url: "${MQTT_URL}", publish_topic: "${ns}/${tag}/{clientId}/up", subscribe_topic: "${ns}/${tag}/{clientId}/down" }
  - { name: fanout, type: mqtt, url: "${MQTT_URL}", publish_topic: "${ns}/fanout/${tag}", subscribe_topic: "${ns}/fanout/${tag}" }
`;
  const gw = await startGateway(runtime, gatewayConfig("gw"));
  const before = BEFORE ? await startGateway(runtime, gatewayConfig("before"), {}, BEFORE) : undefined;
  const fw = await startForwarder(runtime, [`bench=${ns}/fw/{clientId}/down`, `fanout=${ns}/fanout/fw`]);
  const servers: Array<{ side: Side; ws: string; pid: number }> = [
    { side: "gateway", ws: gw.ws, pid: gw.pid() },
    ...before ? [{ side: "before" as Side, ws: before.ws, pid: before.pid() }] : [],
    { side: "forwarder", ws: fw.ws, pid: fw.pid },
  ];
  const bare = (args: string[]) => {
    const result = spawnSync(runtimeBinary(runtime), runArgs(runtime, "bench/bare-mqtt.ts", args), {
      cwd: ROOT,
      encoding: "utf8",
    });
    try {
      return JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "");
    } catch {
      throw new Error(`baseline failed: ${result.stderr || result.stdout}`);
    }
  };
  try {
    const figures: Figures = {
      binds: {} as Figures["binds"],
      steady: [],
    };
    for (const { side, ws, pid } of servers) {
      const rss = rssBytes(pid);
      const r = await binds(ws, pid, "bench", CLIENTS, `bench-${side}`);
      const rssPerClient = (rssBytes(pid) - rss) / CLIENTS;
      await r.release();
      figures.binds[side] = { bindsPerSecond: r.bindsPerSecond, cpuUsPerBind: r.cpuUsPerBind, rssPerClient };
    }
    figures.binds.bare = bare(["binds", String(CLIENTS), MQTT_URL, ns]);
    if (!FANOUT) return figures;
    const fanoutArgs = (topic: string, subscribers: number, warmup = WARMUP) => [
      "fanout",
      String(subscribers),
      MQTT_URL,
      `${ns}/${topic}/bare`,
      String(warmup),
    ];
    /**
     * One fan-out run per side, ROUNDS times, the order of the sides rotated every round (a
     * shared machine's quiet and busy moments fall on each side alike); the median of each
     * figure over the rounds.
     */
    const interleaved = async (
      subscribers: number,
      warmup: number,
      messages: number,
      rate: number,
      topic: string,
    ): Promise<Record<Side, FanoutSummary>> => {
      const got = new Map<Side, FanoutSummary[]>(SIDES.map((side) => [side, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < SIDES.length; k++) {
          const side = SIDES[(k + round) % SIDES.length];
          const server = servers.find((s) => s.side === side);
          const label = `${topic}-${round}-${side}`;
          console.error(`[bench ${runtime}] ${label}`);
          got.get(side)!.push(
            server
              ? (await fanout(
                server.ws,
                server.pid,
                "fanout",
                subscribers,
                warmup,
                [{ messages, rate }],
                label,
              ))[0]
              : bare([...fanoutArgs(topic, subscribers, warmup), String(messages), String(rate)]),
          );
        }
      }
      return Object.fromEntries(SIDES.map((side) => [side, medianSummary(got.get(side)!)])) as Record<
        Side,
        FanoutSummary
      >;
    };
    figures.one = await interleaved(1, WARMUP * 100, ONE_RATE * SECONDS, ONE_RATE, "one");
    figures.burst = await interleaved(SUBSCRIBERS, WARMUP, MESSAGES, 0, "burst");
    // The gateway's maximum, in messages a second (each goes to every subscriber).
    const max = figures.burst.gateway.perSecond / SUBSCRIBERS;
    for (const share of [0.5, 0.8]) {
      const rate = Math.round(max * share);
      figures.steady.push({
        share,
        rate,
        ...await interleaved(SUBSCRIBERS, WARMUP, rate * SECONDS, rate, `st${share}`),
      });
    }
    return figures;
  } finally {
    fw.stop();
    await Promise.all([gw.stop("SIGTERM"), before?.stop("SIGTERM")]);
  }
}

/** bench/forwarder.ts in a process of its own, under `runtime`. */
async function startForwarder(runtime: Runtime, endpoints: string[]) {
  const child = spawn(
    runtimeBinary(runtime),
    runArgs(runtime, "bench/forwarder.ts", [MQTT_URL, ...endpoints]),
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(/listening (\d+)/);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`forwarder exited with ${code}: ${out}`)));
  });
  return { ws: `ws://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill("SIGKILL") };
}
