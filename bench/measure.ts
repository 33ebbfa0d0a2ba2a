/** Figures shared by the benchmarks: resident memory of a process, percentiles. */
import { readFileSync } from "node:fs";

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return match ? Number(match[1]) * 1024 : 0;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
