/**
 * The gateway as one compiled executable: `bun build --compile src/main.ts` (about a second)
 * makes a binary that starts with the shipped config.yaml, outside the repository, answers
 * /readyz and serves the console (its files are imported as text, not read from disk). Before the built-in endpoint types were imported by name (src/endpoints/builtins.ts),
 * the binary knew no endpoint type and refused the config.
 *
 * `deno compile` needs its runtime binary (denort), which it downloads unless `DENORT_BIN` names
 * one: its case runs only where `DENORT_BIN` is set, so the suite works offline.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";
import { freePort } from "../support/net.ts";
import { ROOT, runtimeBinary } from "../support/runtime.ts";
import type { Runtime } from "../support/runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "mediation-exe-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a command to its end; rejects with its output when it fails or outlasts `ms`. */
function run(command: string, args: string[], ms: number): Promise<void> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  return new Promise((resolve, reject) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output}`));
    })
  );
}

/** Node is not here: a Node single executable (SEA) takes one bundled script, which this project does not build. */
const COMPILE: Record<Exclude<Runtime, "node">, (out: string) => string[]> = {
  bun: (out) => ["build", "--compile", "src/main.ts", "--outfile", out],
  deno: (
    out,
  ) => ["compile", "--allow-net", "--allow-read", "--allow-env", "--allow-sys", "-o", out, "src/main.ts"],
};

/** Compiles, starts the binary on the shipped config (on a free port) and asks /readyz. */
async function compileAndStart(runtime: keyof typeof COMPILE): Promise<void> {
  const exe = join(dir, `gw-${runtime}`);
  await run(runtimeBinary(runtime), COMPILE[runtime](exe), 120_000);
  const port = await freePort();
  const shipped = readFileSync(join(ROOT, "config.yaml"), "utf8");
  assert.match(shipped, /^ {2}port: 8080$/m, "the shipped config's port line");
  const config = join(dir, `config-${runtime}.yaml`);
  writeFileSync(
    config,
    shipped.replace(/^ {2}port: 8080$/m, `  port: ${port}`).replace("0.0.0.0", "127.0.0.1"),
  );
  // Started outside the repository: the binary must carry everything it needs.
  const child = spawn(exe, ["--config", config], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  try {
    const deadline = Date.now() + 30_000;
    while (!output.includes("[Server] Listening on")) {
      assert.equal(child.exitCode, null, `the binary exited:\n${output}`);
      assert.ok(Date.now() < deadline, `no "Listening" line in 30 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(response.status, 200, output);
    assert.deepEqual(await response.json(), {
      ok: true,
      checks: { store: { ok: true }, "endpoint:chat": { ok: true } },
    });
    // The shipped config turns the console on: its page and the library it loads are inside.
    for (
      const path of [
        "/console",
        "/console/page.css",
        "/console/client/mod.js",
        "/console/client/src/ws-client.js",
      ]
    ) {
      const file = await fetch(`http://127.0.0.1:${port}${path}`);
      assert.equal(file.status, 200, path);
      await file.body?.cancel();
    }
  } finally {
    child.kill("SIGTERM");
  }
  await exited;
  // The log line, not the exit code: Deno's child_process reports the signal that was sent
  // instead of the code a gracefully stopping child exits with.
  assert.match(output, /\[Server\] Stopped/, `a graceful stop on SIGTERM:\n${output}`);
}

test("single executable (bun build --compile): starts with the shipped config and is ready", async () => {
  await compileAndStart("bun");
});

test(
  "single executable (deno compile): starts with the shipped config and is ready",
  { skip: process.env.DENORT_BIN ? false : "DENORT_BIN is not set (deno compile would download denort)" },
  async () => {
    await compileAndStart("deno");
  },
);
