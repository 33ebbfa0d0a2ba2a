#!/usr/bin/env node
/**
 * `npm test`: the one test suite under Deno, then Bun, then Node, each runtime's own report
 * shown as it runs, then one closing line summing the three: `N passed, N failed`.
 * Counts come from each runner's JUnit report; a runner that fails without reporting counts
 * as a failure. Extra arguments are passed to every runner (e.g. a test file path);
 * TEST_RUNTIMES (e.g. `node` or `deno,bun`) runs only those.
 * Each runner's whole output is also written to a log; when a runtime fails, its log and report are
 * kept under `.tmp/test-logs/<time>/` (named at the end) and the failed tests are listed, so a
 * failure in CI can be read afterwards.
 */
import { spawn } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
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
  ...nodeRuns(),
];

/**
 * Node: each file in its own process. The chaos files (which count what a cutting proxy loses)
 * one at a time, the rest NODE_TEST_CONCURRENCY (4) at a time: the suite mostly waits on real
 * I/O (43 % of one CPU two at a time; its files' times add up to about 12 minutes), but with
 * three other files beside them a chaos run's consumers fall behind its 200 msg/s per client and
 * Mosquitto drops what passes its queue for a client (max_queued_messages, 1000 by default: its
 * log says "Outgoing messages are being dropped"), which the run counts as lost. Paths given
 * (files, globs, folders): those, four at a time.
 */
function nodeRuns() {
  // node --test takes files and globs, not folders: a folder is its test files.
  const testFiles = (folder) =>
    readdirSync(join(root, folder), { recursive: true })
      .filter((f) => f.endsWith(".test.ts")).map((f) => join(folder, f)).sort();
  const all = testFiles("tests");
  const chaos = all.filter((f) => /\/chaos[^/]*\.test\.ts$/.test(f));
  const parts = paths.length
    ? [{
      part: "node",
      files: paths.flatMap((p) =>
        existsSync(join(root, p)) && statSync(join(root, p)).isDirectory() ? testFiles(p) : [p]
      ),
      concurrency: process.env.NODE_TEST_CONCURRENCY ?? 4,
    }]
    : [
      {
        part: "node",
        files: all.filter((f) => !chaos.includes(f)),
        concurrency: process.env.NODE_TEST_CONCURRENCY ?? 4,
      },
      { part: "node-chaos", files: chaos, concurrency: 1 },
    ];
  return parts.map(({ part, files, concurrency }) => ({
    runtime: "node",
    part,
    report: join(dir, `${part}.xml`),
    command: (report) => [bin("node"), [
      // The console's files are imported as text: Node needs a module hook for that.
      "--import=./adapters/node-imports.ts",
      "--test",
      `--test-concurrency=${concurrency}`,
      "--test-timeout=300000",
      // A file whose tests are done ends, whatever a library left open.
      "--test-force-exit",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=junit",
      `--test-reporter-destination=${report}`,
      ...files,
    ]],
  }));
}

/** Runs a command with its output shown as it comes and copied to `log`; resolves to its exit status. */
function run(cmd, args, log) {
  return new Promise((done) => {
    const file = createWriteStream(log);
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: ["inherit", "pipe", "pipe"],
      env: { ...process.env },
    });
    child.stdout.on("data", (chunk) => (process.stdout.write(chunk), file.write(chunk)));
    child.stderr.on("data", (chunk) => (process.stderr.write(chunk), file.write(chunk)));
    child.on("error", (error) => (file.write(`${error}\n`), file.end(() => done(null))));
    child.on("close", (status, signal) => file.end(() => done(status ?? signal)));
  });
}

/** Leaf test cases of a JUnit report: [passed, failed, names of the failed]. Deno lists a describe block and its steps both; only leaves count. */
function count(xml) {
  // Attributes quoted whole: Node's report leaves `>` unescaped inside them.
  const cases = [...xml.matchAll(/<testcase\b((?:[^>"]|"[^"]*")*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map((
    m,
  ) => ({
    name: (m[1].match(/\bname="([^"]*)"/) ?? [])[1] ?? "",
    failed: /<(failure|error)\b/.test(m[2] ?? ""),
    skipped: /<skipped\b/.test(m[2] ?? ""),
  }));
  const leaves = cases.filter((c) => !cases.some((o) => o !== c && o.name.startsWith(`${c.name} &gt; `)));
  const ran = leaves.filter((c) => !c.skipped);
  const failedNames = ran.filter((c) => c.failed).map((c) =>
    c.name.replaceAll("&gt;", ">").replaceAll("&quot;", '"')
  );
  return [ran.filter((c) => !c.failed).length, failedNames.length, failedNames];
}

let passed = 0;
let failed = 0;
const kept = join(root, ".tmp", "test-logs", new Date().toISOString().replaceAll(":", "-"));
const only = process.env.TEST_RUNTIMES?.split(",");
for (
  const { runtime: name, part, report, command } of runs.filter((r) => !only || only.includes(r.runtime))
) {
  const runtime = part ?? name;
  const [cmd, args] = command(report);
  const log = join(dir, `${runtime}.log`);
  console.log(`\n== ${runtime}: ${[cmd, ...args].join(" ")}`);
  const status = await run(cmd, args, log);
  let [p, f, names] = existsSync(report) ? count(readFileSync(report, "utf8")) : [0, 0, []];
  if ((status !== 0 || p + f === 0) && f === 0) {
    console.log(`${runtime}: the runner exited with ${status} without reporting a failed test`);
    f = 1;
  }
  console.log(`${runtime}: ${p} passed, ${f} failed`);
  if (f > 0) {
    mkdirSync(kept, { recursive: true });
    renameSync(log, join(kept, `${runtime}.log`));
    if (existsSync(report)) renameSync(report, join(kept, `${runtime}.xml`));
    for (const name of names) console.log(`${runtime}: FAILED ${name}`);
    console.log(`${runtime}: its whole output and report are kept in ${kept}`);
  }
  passed += p;
  failed += f;
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
