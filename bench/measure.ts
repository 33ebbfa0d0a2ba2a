/** Figures shared by the benchmarks: resident memory and CPU time of a process, percentiles. */
import { readFileSync } from "node:fs";

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU time a process has used so far, all its threads (user + system), in ms (Linux /proc, at a
 * resolution of 10 ms: measure over at least a second's work).
 */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5); here, after pid and comm, 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * What a fan-out run delivered: every delivery's latency (arrival minus the publisher's stamp,
 * one clock: publisher and subscribers share a process), and for each message the first and the
 * last subscriber's arrival.
 */
export class FanoutRecord {
  latencies: number[] = [];
  #first = new Map<number, number>();
  #last = new Map<number, number>();

  /** Message `i`, stamped `t` by its publisher, arrived `now`. */
  add(i: number, t: number, now: number): void {
    this.latencies.push(now - t);
    if (!this.#first.has(i)) this.#first.set(i, now);
    this.#last.set(i, now);
  }

  get delivered(): number {
    return this.latencies.length;
  }

  /** Per message, last arrival minus first, in ms. */
  spreads(): number[] {
    return [...this.#first].map(([i, first]) => this.#last.get(i)! - first);
  }

  summary(seconds: number, cpu: number) {
    const spreads = this.spreads();
    return {
      delivered: this.delivered,
      perSecond: this.delivered / seconds,
      cpuUsPerDelivery: (cpu * 1000) / this.delivered,
      p50: percentile(this.latencies, 50),
      p99: percentile(this.latencies, 99),
      p999: percentile(this.latencies, 99.9),
      spreadP50: percentile(spreads, 50),
      spreadP99: percentile(spreads, 99),
    };
  }
}

export type FanoutSummary = ReturnType<FanoutRecord["summary"]>;

/**
 * Sends `count` messages at `rate` a second, evenly (in slices of 5 ms), calling `send(i)` for
 * each; resolves after the last one.
 */
export async function atRate(count: number, rate: number, send: (i: number) => void): Promise<void> {
  const started = performance.now();
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    while (sent < due) send(sent++);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until `done()` or `ms` passed. */
export async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/** Each figure's median over several runs (NaN where a run had none). */
export function medianSummary(runs: FanoutSummary[]): FanoutSummary {
  const keys = Object.keys(runs[0]) as Array<keyof FanoutSummary>;
  return Object.fromEntries(keys.map((k) => [k, percentile(runs.map((r) => r[k]), 50)])) as FanoutSummary;
}

/**
 * Sends `count` warm-up messages in slices of at most 200, each slice once the one before was
 * received (`received()`: messages each subscriber got so far): the broker's queue per
 * subscriber (Mosquitto: 1000 by default) must not overflow.
 */
export async function warmUp(
  count: number,
  send: (i: number) => void,
  received: () => number,
): Promise<void> {
  for (let sent = 0; sent < count;) {
    const slice = Math.min(200, count - sent);
    for (let i = 0; i < slice; i++) send(sent + i);
    sent += slice;
    await until(() => received() >= sent, 60_000);
  }
}
