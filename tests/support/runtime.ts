/**
 * Which runtime runs the tests, and how to start any of the three as a child process: the npm
 * packages' binaries in node_modules/.bin first, then the PATH. Node is the npm package `node`
 * (24), never the machine's own: it must strip TypeScript's types.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";

export type Runtime = "deno" | "bun" | "node";

export const RUNTIMES: readonly Runtime[] = ["deno", "bun", "node"];

export const currentRuntime: Runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

export const ROOT = resolve(import.meta.dirname ?? ".", "../..");

export function runtimeBinary(runtime: Runtime): string {
  if (runtime === currentRuntime) return process.execPath;
  const local = resolve(ROOT, "node_modules/.bin", runtime);
  return existsSync(local) ? local : runtime;
}

/** The arguments that run `script` under `runtime`. */
export function runArgs(runtime: Runtime, script: string, args: string[] = []): string[] {
  if (runtime === "deno") return ["run", "--allow-all", script, ...args];
  if (runtime === "bun") return ["run", script, ...args];
  return [script, ...args];
}
