/**
 * The process's own series, as Prometheus client libraries expose them by default (prom-client's
 * `collectDefaultMetrics`, under the same names), and the gateway's build info. Outside src/core:
 * it reads the process and the runtime (node:fs, node:process, the Deno and Bun globals).
 */
import { readdirSync } from "node:fs";
import process from "node:process";
import { setInterval as realInterval } from "node:timers";
import type { Metrics } from "./core/metrics.ts";

/** How often the event-loop lag is sampled, in ms. */
const LAG_INTERVAL_MS = 500;

export interface BuildInfo {
  version: string;
  runtime: string;
  runtimeVersion: string;
}

/** The runtime the gateway runs on and its version. */
export function runtimeInfo(): { runtime: string; runtimeVersion: string } {
  const g = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
  if (g.Deno) return { runtime: "deno", runtimeVersion: g.Deno.version.deno };
  if (g.Bun) return { runtime: "bun", runtimeVersion: g.Bun.version };
  return { runtime: "node", runtimeVersion: process.versions.node ?? "unknown" };
}

/**
 * Registers process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds (where
 * /proc/self/fd can be read), process_start_time_seconds, mediation_event_loop_lag_seconds and
 * mediation_build_info. The lag is sampled between `start()` and `stop()` of what it returns
 * (0 before).
 */
export function registerProcessMetrics(metrics: Metrics, build: BuildInfo): LagSampler {
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes",
    () => [{ value: process.memoryUsage.rss() }],
  );
  metrics.collectedCounter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
    () => {
      const { user, system } = process.cpuUsage();
      return [{ value: (user + system) / 1e6 }];
    },
  );
  // Linux only; elsewhere (or where /proc is not mounted) the series is left out, not faked.
  if (openFds() !== undefined) {
    metrics.gauge("process_open_fds", "Number of open file descriptors", () => {
      const fds = openFds();
      return fds === undefined ? [] : [{ value: fds }];
    });
  }
  metrics.gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch in seconds",
    () => [
      { value: startTime },
    ],
  );
  const lag = lagSampler();
  metrics.gauge(
    "mediation_event_loop_lag_seconds",
    `How late a ${LAG_INTERVAL_MS} ms timer fired, most recent sample, in seconds`,
    () => [{ value: lag.seconds() }],
  );
  metrics.gauge("mediation_build_info", "The gateway's version and the runtime it runs on; always 1", () => [
    {
      labels: { version: build.version, runtime: build.runtime, runtime_version: build.runtimeVersion },
      value: 1,
    },
  ]);
  return lag;
}

function openFds(): number | undefined {
  try {
    // The listing holds the descriptor it reads the directory through.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}

/**
 * Timer drift: how much later than asked a repeating timer runs. On the runtime's own timer,
 * not the Scheduler (a virtual clock has no lag to measure), and unref'd: it never keeps the
 * process alive.
 */
export interface LagSampler {
  seconds(): number;
  start(): void;
  stop(): void;
}

function lagSampler(): LagSampler {
  let last = 0;
  let lagMs = 0;
  let timer: ReturnType<typeof realInterval> | undefined;
  return {
    seconds: () => lagMs / 1000,
    start() {
      if (timer) return;
      last = performance.now();
      timer = realInterval(() => {
        const now = performance.now();
        lagMs = Math.max(0, now - last - LAG_INTERVAL_MS);
        last = now;
      }, LAG_INTERVAL_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
