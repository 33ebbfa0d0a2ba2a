/**
 * Launching the gateway as an operator does, under the runtime that runs the tests: its command
 * line (`--help`, an unknown flag), a port that is taken, and its signals.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";
import { running } from "../support/net.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "mediation-launch-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A config file in this file's temporary folder. */
function configFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `src/main.ts args` until it exits; past `ms` it is killed (a gateway that started when it
 * should not have) and `code` is null.
 */
function runGateway(args: string[], ms = 15_000): Promise<Run> {
  const child = spawn(runtimeBinary(currentRuntime), runArgs(currentRuntime, "src/main.ts", args), {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, ms);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: killed ? null : code, stdout, stderr });
    })
  );
}

test(`launch (${currentRuntime}): --help prints the usage and exits 0 without starting`, async () => {
  for (const flag of ["--help", "-h"]) {
    const run = await runGateway([flag]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^Mediation engine: an event gateway/);
    for (const part of ["--config PATH", "-h, --help", "MEDIATION_CONFIG", "README.md"]) {
      assert.ok(run.stdout.includes(part), `the usage names ${part}:\n${run.stdout}`);
    }
    assert.doesNotMatch(run.stdout + run.stderr, /Listening|started/);
  }
});

test(`launch (${currentRuntime}): an unknown flag stops start-up with exit 2 and says so`, async () => {
  const run = await runGateway(["--port", "9000"]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(run.stderr, /^unknown option --port: .*\nRun with --help for the options\.\n$/);
  assert.doesNotMatch(run.stdout + run.stderr, /Listening|started/);
  const positional = await runGateway(["gateway.yaml"]);
  assert.equal(positional.code, 2, positional.stdout + positional.stderr);
  assert.match(
    positional.stderr,
    /unexpected argument "gateway\.yaml": the config file is given as --config PATH/,
  );
});

test(`launch (${currentRuntime}): a port in use stops start-up naming the address, before anything says it started`, async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    const file = configFile(
      "taken.yaml",
      `server: { host: 127.0.0.1, port: ${port} }\nendpoints: [{ name: chat, type: memory }]\n`,
    );
    const run = await runGateway(["--config", file]);
    const output = run.stdout + run.stderr;
    assert.ok(run.code !== 0 && run.code !== null, `exit code ${run.code}:\n${output}`);
    assert.match(run.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    assert.doesNotMatch(output, /started|Listening/);
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

/** The processes whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) children.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** `pid`'s children, their children, and so on. */
function descendantsOf(pid: number): number[] {
  const children = childrenOf(pid);
  return [...children, ...children.flatMap(descendantsOf)];
}

/** Resolves once `check()` holds, polling; rejects with `what` after `ms`. */
async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test(`launch (${currentRuntime}): SIGTERM to the npm process of \`npm start\` reaches the gateway, which shuts down`, async () => {
  // As a process manager does it (docker stop, systemd): the signal goes to the one process it started.
  const script = { deno: "start", bun: "start:bun", node: "start:node" }[currentRuntime];
  const file = configFile(
    "npm.yaml",
    "server: { host: 127.0.0.1, port: 0 }\nendpoints: [{ name: chat, type: memory }]\n",
  );
  const npm = spawn("npm", ["run", "--silent", script, "--", "--config", file], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  npm.stdout.on("data", (chunk) => output += chunk);
  npm.stderr.on("data", (chunk) => output += chunk);
  // `exit`, not `close`: a gateway left behind would hold the pipes open.
  const exited = new Promise<void>((resolve) => npm.on("exit", () => resolve()));
  /** Every process under npm when it listened, killed at the end whatever happened. */
  let tree: number[] = [];
  try {
    await until(() => /\[Server\] Listening on/.test(output), `the gateway listens:\n${output}`, 30_000);
    tree = descendantsOf(npm.pid!);
    assert.ok(tree.length > 0, "npm started the gateway");
    process.kill(npm.pid!, "SIGTERM");
    await exited;
    // Not re-parented and left running, as it was behind npm's `sh -c` (the shell did not pass SIGTERM on).
    await until(() => tree.every((pid) => !running(pid)), `every process npm started is gone:\n${output}`);
    assert.match(output, /\[Server\] SIGTERM: shutting down[\s\S]*\[Server\] Stopped/);
  } finally {
    for (const pid of [npm.pid!, ...tree].filter(running)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
});
