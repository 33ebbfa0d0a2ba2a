/**
 * `deno task bench:sessions` / `npm run bench:sessions`: what the Redis session store costs a
 * connect and a resume, against the memory store, in one run, with the gateway under Deno and
 * under Bun. Redis is the real one on 127.0.0.1:6379, on each transport of the store: RESP over
 * TCP (ioredis), and the Upstash REST API through the npm package
 * @humanwhocodes/upstash-redis-server, as in the tests.
 *
 * Each gateway gets CLIENTS WebSocket clients, CONCURRENCY at a time: connect (until the welcome
 * frame), subscribe to a memory endpoint, close; then every one comes back and resumes. Figures:
 * store round trips per connect and per resume (from /metrics), p50/p99 latency of each, and
 * sessions resumed per second. The endpoint is in-process, so the difference is the store's.
 *
 * Figures, not assertions. BENCH_CLIENTS scales it.
 */
import process from "node:process";
import { startGateway } from "../tests/support/gateway-process.ts";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { keyPrefix, RedisProxy, RespRedis } from "../tests/support/redis.ts";
import type { Runtime } from "../tests/support/runtime.ts";
import { TestSocket } from "../tests/support/ws-client.ts";
import { percentile } from "./measure.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);

function config(session: string): string {
  return `
server: { host: 127.0.0.1, port: 0 }
session: { ${session}, reconnection_window: 5m, cleanup_interval: 30s }
log: { level: info }
# The benchmark's clients all come from one address.
policy: { connections_per_second_per_address: 100000 }
endpoints:
  - { name: chat, type: memory }
`;
}

/** Runs `each` for 0..n-1, `CONCURRENCY` at a time; resolves the per-call durations in ms. */
async function timed(
  n: number,
  each: (i: number) => Promise<void>,
): Promise<{ ms: number[]; seconds: number }> {
  const ms: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await each(i);
      ms.push(performance.now() - t);
    }
  }));
  return { ms, seconds: (performance.now() - started) / 1000 };
}

async function roundTrips(gw: Gateway): Promise<number> {
  const text = await (await fetch(`${gw.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("mediation_store_round_trips_total"));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

async function run(gw: Gateway, label: string) {
  const sockets: TestSocket[] = [];
  const id = (i: number) => `${label}-${i}`;
  let trips = await roundTrips(gw);
  const connect = await timed(CLIENTS, async (i) => {
    const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${id(i)}`);
    await socket.next((f) => f.type === "welcome", 60_000);
    sockets[i] = socket;
  });
  const connectTrips = (await roundTrips(gw)) - trips;
  await timed(CLIENTS, async (i) => {
    sockets[i].send({ type: "subscribe", endpoint: "chat", id: "s" });
    await sockets[i].next((f) => f.type === "receipt", 60_000);
    await sockets[i].close();
  });
  // The server handles each close after the client saw it; let the last ones land.
  await new Promise((r) => setTimeout(r, 500));
  trips = await roundTrips(gw);
  const resume = await timed(CLIENTS, async (i) => {
    const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${id(i)}`);
    const welcome = await socket.next((f) => f.type === "welcome", 60_000);
    if (welcome.resumed !== true) throw new Error(`${id(i)} was not resumed`);
    sockets[i] = socket;
  });
  const resumeTrips = (await roundTrips(gw)) - trips;
  await Promise.all(sockets.map((s) => s.close()));
  return {
    connectTrips: connectTrips / CLIENTS,
    resumeTrips: resumeTrips / CLIENTS,
    connectP50: percentile(connect.ms, 50),
    connectP99: percentile(connect.ms, 99),
    resumeP50: percentile(resume.ms, 50),
    resumeP99: percentile(resume.ms, 99),
    resumedPerSecond: CLIENTS / resume.seconds,
  };
}

const fmt = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const proxy = await RedisProxy.start();
const resp = new RespRedis();
const rows: string[] = [];
try {
  for (const runtime of ["deno", "bun"] as Runtime[]) {
    const prefix = keyPrefix("bench");
    const [memoryGw, respGw, restGw] = await Promise.all([
      startGateway(runtime, config("type: memory")),
      startGateway(runtime, config(`type: redis, redis: ${resp.config(prefix)}`)),
      startGateway(runtime, config(`type: redis, redis: ${proxy.config(prefix)}`)),
    ]);
    try {
      const m = await run(memoryGw, `bench-${runtime}-m`);
      const r = await run(respGw, `bench-${runtime}-resp`);
      const h = await run(restGw, `bench-${runtime}-rest`);
      const row = (figure: string, key: keyof typeof m, digits: number, ratio = true) =>
        rows.push(
          `| ${runtime} | ${figure} | ${fmt(m[key], digits)} | ${fmt(r[key], digits)} | ${
            fmt(h[key], digits)
          } | ${ratio ? `${fmt(r[key] / m[key], 2)} / ${fmt(h[key] / m[key], 2)}` : "-"} |`,
        );
      row("store round trips per connect", "connectTrips", 2, false);
      row("store round trips per resume", "resumeTrips", 2, false);
      row("connect p50 (ms)", "connectP50", 2);
      row("connect p99 (ms)", "connectP99", 2);
      row("resume p50 (ms)", "resumeP50", 2);
      row("resume p99 (ms)", "resumeP99", 2);
      row("sessions resumed per second", "resumedPerSecond", 0);
    } finally {
      await Promise.all([memoryGw.stop("SIGTERM"), respGw.stop("SIGTERM"), restGw.stop("SIGTERM")]);
      await resp.drop(prefix);
    }
  }
} finally {
  await proxy.stop();
  await resp.stop();
}
console.log(
  `\n${CLIENTS} clients, ${CONCURRENCY} at a time; memory endpoint; Redis over RESP, and through the Upstash REST API\n\n` +
    `| gateway runtime | figure | memory store | redis (resp) | redis (rest) | resp / memory, rest / memory |\n` +
    `| --- | --- | --- | --- | --- | --- |\n${rows.join("\n")}`,
);
process.exit(0);
