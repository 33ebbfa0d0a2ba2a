/**
 * Starts `src/main.ts` as a child process under a runtime with a given config, for black-box
 * tests. The gateway listens on a free port (config port 0) and reports it on its
 * "[Server] Listening on" line (text or JSON log format); with `server.tls`, its URLs are https and
 * wss.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { ROOT, runArgs, runtimeBinary } from "./runtime.ts";
import type { Runtime } from "./runtime.ts";

export interface Gateway {
  runtime: Runtime;
  http: string;
  ws: string;
  /** A token every client request carries (`?token=`), for a gateway with auth on (`--token`). */
  token?: string;
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** The gateway's process ID. */
  pid(): number;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Gateways still running, killed when the test process exits: a run whose `after` hooks do not
 * run (Deno skips them when `--filter` leaves tests out, and a test process can be interrupted)
 * must not leave gateways behind.
 */
const running = new Set<() => number>();
const killRunning = () => {
  for (const pid of running) {
    try {
      process.kill(pid(), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
};
// Bun (and Node) emit the process's `exit`; `deno test` does not, but dispatches `unload`.
process.on("exit", killRunning);
globalThis.addEventListener?.("unload", killRunning);

/**
 * Starts the gateway on `config`: YAML text (written to a temporary file), or `{ file }`, a config
 * file used where it is (its relative `endpoint_modules` resolve from its folder).
 */
export async function startGateway(
  runtime: Runtime,
  config: string | { file: string },
  env: Record<string, string> = {},
  /** Another checkout of the project to run instead of this one (bench/: a build to compare with). */
  root = ROOT,
): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), "mediation-gw-"));
  const configFile = typeof config === "string" ? join(dir, "config.yaml") : resolve(config.file);
  if (typeof config === "string") writeFileSync(configFile, config);
  // Through sh, which reports the gateway's own exit code: Deno's child_process reports the
  // signal that was sent instead of the code a gracefully stopping child exits with.
  const child = spawn(
    "sh",
    [
      "-c",
      '"$0" "$@" & pid=$!; echo "gateway-pid=$pid"; wait $pid; echo "gateway-exit=$?"',
      runtimeBinary(runtime),
      ...runArgs(runtime, "src/main.ts", ["--config", configFile]),
    ],
    { cwd: root, env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  // Chunks kept as they come, joined only when asked: appending every chunk to one string and
  // matching a regex over all of it is quadratic, and distorted the benchmarks.
  const chunks: string[] = [];
  let joined: string | undefined;
  const output = () => (joined ??= chunks.join(""));
  let gatewayPid: number | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", () => {
      const code = output().match(/gateway-exit=(\d+)/);
      resolve(code ? Number(code[1]) : null);
    })
  );
  exited.then(() => {
    running.delete(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const pid = () => {
    if (gatewayPid === undefined) {
      const found = output().match(/gateway-pid=(\d+)/)?.[1];
      if (found) gatewayPid = Number(found);
    }
    return gatewayPid ?? NaN;
  };
  running.add(pid);
  let scheme = "http";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running: a gateway that never said it listens is stopped here.
      try {
        process.kill(pid(), "SIGKILL");
      } catch {
        // Already gone, or never started.
      }
      reject(new Error(`gateway did not start:\n${output()}`));
    }, 20_000);
    let listening = false;
    /** The unfinished last line, so a line split between chunks is still found. */
    let partial = "";
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      chunks.push(text);
      joined = undefined;
      if (listening) return;
      const lines = partial + text;
      // The text line, or the JSON one (log.format: json), where the component is a field.
      const match = lines.match(
        /(?:\[Server\] |"component":"Server","msg":")Listening on (https?):\/\/[^:]+:(\d+)/,
      );
      partial = lines.slice(lines.lastIndexOf("\n") + 1);
      if (match) {
        listening = true;
        clearTimeout(timer);
        scheme = match[1];
        resolve(Number(match[2]));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${output()}`));
    });
  });
  return {
    runtime,
    http: `${scheme}://127.0.0.1:${port}`,
    ws: `${scheme === "https" ? "wss" : "ws"}://127.0.0.1:${port}`,
    child,
    output,
    pid,
    stop: (signal = "SIGTERM") => {
      if (child.exitCode === null) {
        try {
          process.kill(pid(), signal);
        } catch {
          // Already gone.
        }
      }
      return exited;
    },
  };
}

/** `url` with the gateway's client token, if it has one, as the `token` query parameter. */
export function authorized(gw: Pick<Gateway, "token">, url: string): string {
  if (!gw.token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(gw.token)}`;
}
