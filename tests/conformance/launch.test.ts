/**
 * Launching the gateway as an operator does, under the runtime that runs the tests: its command
 * line (`--help`, an unknown flag), a port that is taken, and its signals.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";

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
