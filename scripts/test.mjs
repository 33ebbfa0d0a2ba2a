#!/usr/bin/env node
/**
 * `npm test`: the one test suite under Deno, Bun and Node (see `phases` for in what order),
 * each runner's own report shown, then one closing line summing the three: `N passed, N failed`.
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

// node --test takes files and globs, not folders: a folder is its test files.
const testFiles = (folder) =>
  readdirSync(join(root, folder), { recursive: true })
    .filter((f) => f.endsWith(".test.ts")).map((f) => join(folder, f)).sort();
/** The files of the paths given (files, or folders: their test files), or of tests/. */
const files = paths.length
  ? paths.flatMap((p) =>
    existsSync(join(root, p)) && statSync(join(root, p)).isDirectory() ? testFiles(p) : [p]
  )
  : testFiles("tests");
/**
 * The chaos files count what a cutting proxy loses, and a consumer that falls behind its 200
 * msg/s per client makes Mosquitto drop what passes its queue for a client (max_queued_messages,
 * 1000 by default: its log says "Outgoing messages are being dropped"), which the run counts as
 * lost: they run alone, one runtime after another, after the rest.
 */
const isChaos = (f) => /(^|\/)chaos[^/]*\.test\.ts$/.test(f);
const chaos = files.filter(isChaos);
const rest = files.filter((f) => !isChaos(f));

const deno = (part, list) => ({
  runtime: "deno",
  part,
  files: list,
  report: join(dir, `${part}.xml`),
  command: (report) => [bin("deno"), ["test", "--allow-all", `--junit-path=${report}`, ...list]],
});
const bun = (part, list) => ({
  runtime: "bun",
  part,
  files: list,
  report: join(dir, `${part}.xml`),
  command: (report) => [bin("bun"), [
    "test",
    // The black-box and broker-restart tests wait on real I/O for longer than bun's 5 s default.
    "--timeout=60000",
    "--reporter=junit",
    `--reporter-outfile=${report}`,
    // Paths, not name filters: bun takes an argument with a slash as a path.
    ...list.map((f) => f.startsWith(".") || f.startsWith("/") ? f : `./${f}`),
  ]],
});
/**
 * Node: each file in its own process, NODE_TEST_CONCURRENCY (2) at a time: the suite mostly waits
 * on real I/O (its files' times add up to about 12 minutes).
 */
const node = (part, list, concurrency) => ({
  runtime: "node",
  part,
  files: list,
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
    ...list,
  ]],
});

/**
 * Two phases. First every runtime's files but the chaos ones, the three runtimes at once (each
 * runner's output shown whole when it ends): the suite waits on brokers, stores and timers far
 * more than it computes, so on a 2-CPU machine this takes about the time of the slowest runtime
 * alone, not the three added up. Then the chaos files, one runtime after another, alone on the
 * machine. TEST_SERIAL=1 runs everything one runner at a time, its output as it comes.
 */
const phases = [
  [
    deno("deno", rest),
    bun("bun", rest),
    node("node", rest, Number(process.env.NODE_TEST_CONCURRENCY ?? 2)),
  ],
  [deno("deno-chaos", chaos), bun("bun-chaos", chaos), node("node-chaos", chaos, 1)],
].map((phase) => phase.filter((r) => r.files.length > 0));

/** Runs a command with its output shown as it comes and copied to `log`; resolves to its exit status. */
function run(cmd, args, log, quiet = false) {
  return new Promise((done) => {
    const file = createWriteStream(log);
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: ["inherit", "pipe", "pipe"],
      env: { ...process.env },
    });
    child.stdout.on("data", (chunk) => (quiet || process.stdout.write(chunk), file.write(chunk)));
    child.stderr.on("data", (chunk) => (quiet || process.stderr.write(chunk), file.write(chunk)));
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
const serial = process.env.TEST_SERIAL === "1";

/** Runs one runner; `quiet`: its output is shown whole at the end, not as it comes. */
async function runOne({ part, report, command }, quiet) {
  const [cmd, args] = command(report);
  const log = join(dir, `${part}.log`);
  const header = `\n== ${part}: ${[cmd, ...args].join(" ")}`;
  if (!quiet) console.log(header);
  const status = await run(cmd, args, log, quiet);
  if (quiet) console.log(`${header}\n${readFileSync(log, "utf8")}`);
  let [p, f, names] = existsSync(report) ? count(readFileSync(report, "utf8")) : [0, 0, []];
  if ((status !== 0 || p + f === 0) && f === 0) {
    console.log(`${part}: the runner exited with ${status} without reporting a failed test`);
    f = 1;
  }
  console.log(`${part}: ${p} passed, ${f} failed`);
  if (f > 0) {
    mkdirSync(kept, { recursive: true });
    renameSync(log, join(kept, `${part}.log`));
    if (existsSync(report)) renameSync(report, join(kept, `${part}.xml`));
    for (const name of names) console.log(`${part}: FAILED ${name}`);
    console.log(`${part}: its whole output and report are kept in ${kept}`);
  }
  passed += p;
  failed += f;
}

for (const phase of phases) {
  const chosen = phase.filter((r) => !only || only.includes(r.runtime));
  if (serial || chosen.length < 2 || chosen[0].part.endsWith("-chaos")) {
    for (const r of chosen) await runOne(r, false);
  } else {
    // At once; each runner's output and its summary line together, in the order they end.
    await Promise.all(chosen.map((r) => runOne(r, true)));
  }
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
