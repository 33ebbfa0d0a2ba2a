#!/usr/bin/env node
/**
 * `npm test`: the one test suite under Deno and then under Bun, each runtime's own report
 * shown as it runs, then one closing line summing both: `N passed, N failed`.
 * Counts come from each runner's JUnit report; a runner that fails without reporting counts
 * as a failure. Extra arguments are passed to both runners (e.g. a test file path).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const bin = (name) => {
  const local = join(root, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
};
const paths = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), "mediation-test-"));

const runs = [
  {
    runtime: "deno",
    report: join(dir, "deno.xml"),
    command: (
      report,
    ) => [bin("deno"), [
      "test",
      "--allow-all",
      `--junit-path=${report}`,
      ...(paths.length ? paths : ["tests/"]),
    ]],
  },
  {
    runtime: "bun",
    report: join(dir, "bun.xml"),
    command: (
      report,
    ) => [bin("bun"), [
      "test",
      // The black-box and broker-restart tests wait on real I/O for longer than bun's 5 s default.
      "--timeout=60000",
      "--reporter=junit",
      `--reporter-outfile=${report}`,
      ...(paths.length ? paths : ["tests/"]),
    ]],
  },
];

/** Leaf test cases of a JUnit report: [passed, failed]. Deno lists a describe block and its steps both; only leaves count. */
function count(xml) {
  const cases = [...xml.matchAll(/<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map((m) => ({
    name: (m[1].match(/\bname="([^"]*)"/) ?? [])[1] ?? "",
    failed: /<(failure|error)\b/.test(m[2] ?? ""),
    skipped: /<skipped\b/.test(m[2] ?? ""),
  }));
  const leaves = cases.filter((c) => !cases.some((o) => o !== c && o.name.startsWith(`${c.name} &gt; `)));
  const ran = leaves.filter((c) => !c.skipped);
  return [ran.filter((c) => !c.failed).length, ran.filter((c) => c.failed).length];
}

let passed = 0;
let failed = 0;
for (const run of runs) {
  const [cmd, args] = run.command(run.report);
  console.log(`\n== ${run.runtime}: ${[cmd, ...args].join(" ")}`);
  const result = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env } });
  let [p, f] = existsSync(run.report) ? count(readFileSync(run.report, "utf8")) : [0, 0];
  if ((result.status !== 0 || p + f === 0) && f === 0) {
    console.log(
      `${run.runtime}: the runner exited with ${
        result.status ?? result.signal
      } without reporting a failed test`,
    );
    f = 1;
  }
  console.log(`${run.runtime}: ${p} passed, ${f} failed`);
  passed += p;
  failed += f;
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
