/**
 * `deno task bench:nats` / `npm run bench:nats`: one publisher and 20 clients bound to a NATS
 * JetStream endpoint through the gateway (WebSocket out), against the same 20 durable consumers on
 * bare @nats-io (bench/bare-nats.ts), on the same nats-server (127.0.0.1:4222, or NATS_SERVER),
 * in one run, with the gateway under Deno and under Bun (the baseline runs under the same
 * runtime, in a process of its own).
 *
 * Each consumer filters one subject, so every message is delivered 20 times. All M messages are
 * published at once (each waiting for its JetStream ack, 10 in flight), so latency includes the
 * queueing of the burst. The run's stream is deleted at the end. Figures, not assertions;
 * BENCH_MESSAGES scales it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import process from "node:process";
import { startGateway } from "../tests/support/gateway-process.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { NATS_SERVER, OutsideNats } from "../tests/support/nats.ts";
import { ROOT, runArgs, runtimeBinary } from "../tests/support/runtime.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { TestSocket } from "../tests/support/ws-client.ts";
import { percentile } from "./measure.ts";

const CLIENTS = 20;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 500);
const id = crypto.randomUUID().slice(0, 8);
const stream = `bench_${id}`;
const prefix = `bench-${id}`;
const wall = () => performance.timeOrigin + performance.now();

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

async function publish(outside: OutsideNats, subject: string): Promise<void> {
  const t0 = wall();
  for (let i = 0; i < MESSAGES; i += 10) {
    await Promise.all(
      Array.from(
        { length: Math.min(10, MESSAGES - i) },
        (_, j) => outside.publish(subject, JSON.stringify({ i: i + j, t: wall(), t0 })),
      ),
    );
  }
}

async function throughGateway(gw: Gateway, outside: OutsideNats, subject: string) {
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
  await publish(outside, subject);
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
  // Unsubscribing unbinds: the benchmark leaves no consumers behind.
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

async function bare(runtime: Runtime, outside: OutsideNats, subject: string) {
  const child = spawn(
    runtimeBinary(runtime),
    runArgs(runtime, "bench/bare-nats.ts", [NATS_SERVER, stream, subject, String(CLIENTS), String(MESSAGES)]),
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  await lineFrom(child, /^ready$/);
  await publish(outside, subject);
  return JSON.parse(await lineFrom(child, /^\{/));
}

const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const outside = await OutsideNats.connect();
await outside.jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
const rows: string[] = [];
try {
  for (const runtime of ["deno", "bun"] as Runtime[]) {
    const gwSubject = `${prefix}.${runtime}.gw`;
    const bareSubject = `${prefix}.${runtime}.bare`;
    const gw = await startGateway(
      runtime,
      `
server: { host: 127.0.0.1, port: 0 }
session: { type: memory, reconnection_window: 1m, cleanup_interval: 30s }
endpoints:
  - name: bench
    type: nats
    servers: ["${NATS_SERVER}"]
    stream: ${stream}
    create_stream: false
    publish_subject: "${gwSubject}"
    subscribe_subject: "${gwSubject}"
`,
    );
    try {
      const g = await throughGateway(gw, outside, gwSubject);
      const b = await bare(runtime, outside, bareSubject);
      const row = (figure: string, a: number, base: number, digits: number) =>
        rows.push(
          `| ${runtime} | ${figure} | ${fmt(a, digits)} | ${fmt(base, digits)} | ${fmt(a / base, 2)} |`,
        );
      row(`msgs/s (1 publisher -> ${CLIENTS} clients, ${MESSAGES} msgs)`, g.perSecond, b.perSecond, 0);
      row("p50 latency (ms)", g.p50, b.p50, 1);
      row("p99 latency (ms)", g.p99, b.p99, 1);
      for (const [who, r] of [["gateway", g], ["bare @nats-io", b]] as const) {
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
  await outside.dropStream(stream);
  await outside.close();
}
console.log(
  `\n| gateway runtime | figure | gateway | bare @nats-io | ratio |\n| --- | --- | --- | --- | --- |\n${
    rows.join("\n")
  }`,
);
process.exit(0);
