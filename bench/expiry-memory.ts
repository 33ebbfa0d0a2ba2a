/**
 * `deno run --allow-all --v8-flags=--expose-gc bench/expiry-memory.ts` / `bun run
 * bench/expiry-memory.ts`: what the gateway keeps after its sessions expired (issue 19, item 21).
 * The gateway runs in this process (so its heap can be measured after a full GC), with an MQTT
 * endpoint on the shared Mosquitto; BENCH_SESSIONS WebSocket clients (default 3000, 100 at a
 * time) connect, subscribe (one MQTT consumer each) and close; the sessions expire after a short
 * window and the cleanup worker unbinds them all at once (every MQTT session ended at the broker).
 *
 * Figures at each step: RSS and V8 heap used, after a full GC; the RSS peak while the cleanup
 * ran; the same once more after a second round; and what the per-client maps still hold
 * (`retained()`). BENCH_LOG=info logs as a default config would. A heap back at its start means
 * nothing is retained; RSS above its start is memory the runtime's allocator keeps for reuse.
 * The clients' own sockets live in this process too: they are closed and dropped before each
 * figure. Figures, not assertions.
 */
import process from "node:process";
import { createEngine } from "../src/engine.ts";
import { serve } from "../src/serve.ts";
import type { Adapter } from "../src/serve.ts";
import type { MemorySessionStore } from "../src/session/memory.ts";
import type { MqttEndpoint } from "../src/endpoints/mqtt/mqtt-endpoint.ts";
import { mqttEndpointYaml, namespace } from "../tests/support/mqtt.ts";
import { currentRuntime } from "../tests/support/runtime.ts";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 3000);
const CONCURRENCY = 100;
const MiB = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function adapter(): Promise<Adapter> {
  if ("Deno" in globalThis) return (await import("../adapters/deno.ts")).denoAdapter;
  return (await import("../adapters/bun.ts")).bunAdapter;
}

/** A full GC, where the runtime offers one (Deno needs --v8-flags=--expose-gc). */
async function gc(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const g = globalThis as { gc?: () => void; Bun?: { gc(full: boolean): void } };
    if (g.Bun) g.Bun.gc(true);
    else g.gc?.();
    await sleep(100);
  }
}

interface Figures {
  rss: number;
  heap: number;
  /** V8's heap as reserved from the system, used or not. */
  heapTotal: number;
  /** Memory of JS objects held outside the V8 heap (buffers). */
  external: number;
}

async function figures(): Promise<Figures> {
  await gc();
  const m = process.memoryUsage();
  return {
    rss: m.rss / MiB,
    heap: m.heapUsed / MiB,
    heapTotal: m.heapTotal / MiB,
    external: m.external / MiB,
  };
}

const ns = namespace("expiry-memory");
const engine = await createEngine({
  configText: `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 3s, cleanup_interval: 1s }
log: { level: ${process.env.BENCH_LOG ?? "warn"} }
policy: { connections_per_second_per_address: 100000 }
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
`,
});
const listening = await serve(engine, await adapter());
const url = `ws://127.0.0.1:${listening.port}/ws`;
const store = engine.store as unknown as MemorySessionStore;
const mqtt = engine.hub.endpoint("sensors") as unknown as MqttEndpoint;

/** One client: connect, subscribe (an MQTT consumer with its persistent session), close. */
function session(clientId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?clientId=${clientId}`);
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data as string);
      if (f.type === "welcome") ws.send(JSON.stringify({ type: "subscribe", endpoint: "sensors", id: "s" }));
      else if (f.type === "receipt") ws.send(JSON.stringify({ type: "leave" }));
      else if (f.type === "error") reject(new Error(`${f.code}: ${f.message}`));
    };
    ws.onclose = () => resolve();
    ws.onerror = () => reject(new Error("socket failed"));
  });
}

async function sessions(prefix: string, n: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) await session(`${prefix}-${next++}`);
  }));
}

/** Waits until the store holds no session; resolves the RSS peak meanwhile, in MiB. */
async function expired(): Promise<number> {
  let peak = 0;
  while (store.retained().sessions > 0) {
    peak = Math.max(peak, process.memoryUsage().rss / MiB);
    await sleep(100);
  }
  return peak;
}

const show = (label: string, f: Figures, base?: Figures) =>
  console.log(
    `  ${label.padEnd(34)} RSS ${f.rss.toFixed(0).padStart(4)} MiB, heap used ${
      f.heap.toFixed(1).padStart(5)
    } ` +
      `of ${f.heapTotal.toFixed(0).padStart(3)} MiB, external ${f.external.toFixed(1).padStart(5)} MiB` +
      (base
        ? `  (RSS ${(f.rss - base.rss).toFixed(0)}, heap used ${
          (f.heap - base.heap).toFixed(1)
        } above the start)`
        : ""),
  );

// Warm-up: every code path once, so what follows measures sessions, not compiled code.
await sessions("warm", 200);
await expired();
const start = await figures();
console.log(`expiry memory (${currentRuntime}), ${SESSIONS} MQTT sessions:`);
show("start (after a warm-up)", start);
await sessions("s", SESSIONS);
const closed = await figures();
show(`${SESSIONS} sessions made and left`, closed, start);
const peak = await expired();
console.log(
  `  RSS peak while the cleanup ran: ${peak.toFixed(0)} MiB (${
    (peak - closed.rss).toFixed(0)
  } above the step before)`,
);
const after = await figures();
show("all expired and cleaned up", after, start);
await sleep(10_000);
const later = await figures();
show("10 s later", later, start);
// A second round: memory the allocator kept is reused, a leak would grow again.
await sessions("t", SESSIONS);
await expired();
await sleep(10_000);
show("a second round, 10 s after its expiry", await figures(), start);
console.log(
  `  per-client maps: hub ${JSON.stringify(engine.hub.retained())}, mqtt ${
    JSON.stringify(mqtt.retained())
  }, store ${JSON.stringify(store.retained())}`,
);
process.exit(0);
