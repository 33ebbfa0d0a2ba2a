/**
 * `deno task bench:hub` / `npm run bench:hub`: the hub's fan-out in-process, no sockets and no
 * broker: how many deliveries a second the gateway's own logic allows. 100 clients connected to a
 * hub (memory session store, real scheduler); each message, as an endpoint's consumers hand it
 * over, is delivered to every client (`hub.deliver`: session lookup, delivery id, the payload
 * prepared once, the metrics) and written by a sink that builds the real message frame
 * (core/message-frame.ts), as the WebSocket entrypoint does, and drops it.
 *
 * Runs under Deno, then under Bun (each runtime in a process of its own). BENCH_CLIENTS (100)
 * and BENCH_MESSAGES (20,000) scale it. Figures, not assertions.
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { hubOptionsFromConfig } from "../src/config/hub-options.ts";
import { parseConfig } from "../src/config/load.ts";
import { Hub } from "../src/core/hub.ts";
import { memoryLogger } from "../src/core/logger.ts";
import { messageFrame } from "../src/core/message-frame.ts";
import { Metrics } from "../src/core/metrics.ts";
import { encodeData } from "../src/core/payload.ts";
import { RealScheduler } from "../src/core/scheduler.ts";
import type { Delivery, DeliverySink } from "../src/core/sink.ts";
import { MemoryEndpoint } from "../src/endpoints/memory/memory-endpoint.ts";
import { MemorySessionStore } from "../src/session/memory.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const WARMUP = 2_000;

/** Builds the frame the WebSocket entrypoint would send, and keeps only its length. */
class FrameSink implements DeliverySink {
  bytes = 0;
  frames = 0;
  deliver(delivery: Delivery): boolean {
    this.bytes += messageFrame(delivery).length;
    this.frames++;
    return true;
  }
  writable(): boolean {
    return true;
  }
  close(): void {}
}

async function measure() {
  const scheduler = new RealScheduler();
  const logger = memoryLogger();
  const endpoint = new MemoryEndpoint({
    name: "fanout",
    logger,
    queueLimit: 10_000,
    queueBytes: 8 * 1024 * 1024,
    totalBytes: 256 * 1024 * 1024,
  });
  const { config } = parseConfig(
    JSON.stringify({
      endpoints: [{ name: "fanout", type: "memory" }],
      session: { reconnection_window: "60s" },
    }),
    {},
    "the hub bench",
  );
  const hub = new Hub(hubOptionsFromConfig(config, {
    store: new MemorySessionStore(),
    endpoints: [endpoint],
    scheduler,
    logger,
    metrics: new Metrics(),
    nodeId: "bench",
  }));
  const sinks: FrameSink[] = [];
  const ids: string[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const id = `bench-${i}`;
    const conn = await hub.connect(id, "ws", { acks: false });
    const sink = new FrameSink();
    await conn.open(sink);
    sinks.push(sink);
    ids.push(id);
  }
  const meta = { topic: "bench/fanout" };
  const settle = () => {};
  const run = (count: number) => {
    for (let m = 0; m < count; m++) {
      // One payload per message, as a broker hands it to each client's consumer.
      const payload = encodeData({ i: m, t: 1764201600000 + m, body: "sensor reading 42" });
      for (const id of ids) hub.deliver(id, "fanout", { payload, meta, settle });
    }
  };
  run(WARMUP);
  const started = performance.now();
  run(MESSAGES);
  const seconds = (performance.now() - started) / 1000;
  const frames = sinks.reduce((n, s) => n + s.frames, 0);
  if (frames !== (WARMUP + MESSAGES) * CLIENTS) throw new Error(`delivered ${frames} frames`);
  return {
    deliveriesPerSecond: (MESSAGES * CLIENTS) / seconds,
    nsPerDelivery: (seconds * 1e9) / (MESSAGES * CLIENTS),
  };
}

if (process.argv.includes("--child")) {
  console.log(JSON.stringify(await measure()));
  process.exit(0);
}

const rows: string[] = [];
for (const runtime of ["deno", "bun"] as Runtime[]) {
  const result = runtime === currentRuntime ? undefined : spawnSync(
    runtimeBinary(runtime),
    runArgs(runtime, "bench/hub.ts", ["--child"]),
    { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  const figures = result ? JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "") : await measure();
  rows.push(
    `| ${runtime} | ${CLIENTS} clients, ${MESSAGES} messages | ${Math.round(figures.deliveriesPerSecond)} | ${
      Math.round(figures.nsPerDelivery)
    } |`,
  );
}
console.log(
  `\n| runtime | hub fan-out, in-process | deliveries/s | ns per delivery |\n| --- | --- | --- | --- |\n${
    rows.join("\n")
  }`,
);
process.exit(0);
