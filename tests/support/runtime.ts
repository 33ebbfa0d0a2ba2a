/**
 * Which runtime runs the tests, and how to start either runtime as a child process: the npm
 * packages' binaries in node_modules/.bin first, then the PATH.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";

export type Runtime = "deno" | "bun";

export const currentRuntime: Runtime = "Deno" in globalThis ? "deno" : "bun";

export const ROOT = resolve(import.meta.dirname ?? ".", "../..");

export function runtimeBinary(runtime: Runtime): string {
  if (runtime === currentRuntime) return process.execPath;
  const local = resolve(ROOT, "node_modules/.bin", runtime);
  return existsSync(local) ? local : runtime;
}

/** The arguments that run `script` under `runtime`. */
export function runArgs(runtime: Runtime, script: string, args: string[] = []): string[] {
  return runtime === "deno" ? ["run", "--allow-all", script, ...args] : ["run", script, ...args];
}
