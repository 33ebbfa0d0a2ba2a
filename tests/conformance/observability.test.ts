/**
 * What an operator sees of a fresh gateway, run as a process in JSON log mode:
 *
 * - GET /metrics has a sample for every series docs/operations.md "Metrics" documents, zeros included, in
 *   valid Prometheus text format (HELP and TYPE once per family, before its samples).
 * - Every log line is one JSON object with an ISO 8601 UTC time; a WebSocket connection writes
 *   one INFO line when it opens and one when it closes, with its client ID, transport, node and
 *   the reason, whoever closed it; an SSE stream too.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";
import { SseClient } from "../support/sse-client.ts";
import { openWelcomed } from "../support/ws-client.ts";

const CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s, node_id: obs-node }
session: { type: memory, reconnection_window: 60s }
log: { level: info, format: json }
endpoints:
  - { name: chat, type: memory }
`;

/** Every family docs/operations.md "Metrics" documents, each of which must have a sample. */
const DOCUMENTED = [
  "mediation_connections",
  "mediation_sessions",
  "mediation_bindings",
  "mediation_endpoint_up",
  "mediation_messages_in_total",
  "mediation_messages_out_total",
  "mediation_errors_total",
  "mediation_cleanup_runs_total",
  "mediation_sessions_expired_total",
  "mediation_build_info",
  "mediation_event_loop_lag_seconds",
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
  "process_open_fds",
  "process_start_time_seconds",
];

let gw: Gateway;

before(async () => {
  gw = await startGateway(currentRuntime, CONFIG);
});

after(async () => {
  await gw?.stop();
});

interface Family {
  type: string;
  samples: { labels: string; value: number }[];
}

/** Parses the exposition format strictly: throws on a line it does not recognize. */
function parseMetrics(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "the page ends with a newline");
  const families = new Map<string, Family>();
  const help = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    let m = line.match(/^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/);
    if (m) {
      assert.ok(!help.has(m[1]), `HELP of ${m[1]} once`);
      help.add(m[1]);
      continue;
    }
    m = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/);
    if (m) {
      assert.ok(!families.has(m[1]), `TYPE of ${m[1]} once`);
      assert.ok(help.has(m[1]), `HELP of ${m[1]} before its TYPE`);
      families.set(m[1], { type: m[2], samples: [] });
      continue;
    }
    m = line.match(
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/,
    );
    assert.ok(m, `a valid sample line: ${JSON.stringify(line)}`);
    const family = families.get(m[1]);
    assert.ok(family, `${m[1]} sampled after its TYPE`);
    const value = Number(m[3]);
    assert.ok(Number.isFinite(value), `${line}: a number`);
    if (family.type === "counter") assert.ok(m[1].endsWith("_total"), `counter ${m[1]} ends in _total`);
    family.samples.push({ labels: m[2] ?? "", value });
  }
  return families;
}

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${gw.http}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

const sample = (families: Map<string, Family>, name: string, labels = "") =>
  families.get(name)?.samples.find((s) => s.labels === labels)?.value;

test("metrics: a fresh gateway has a sample for every documented series, zeros included", async () => {
  const families = await scrape();
  for (const name of DOCUMENTED) {
    assert.ok((families.get(name)?.samples.length ?? 0) > 0, `${name} has a sample`);
  }
  assert.equal(sample(families, "mediation_connections", '{transport="ws"}'), 0);
  assert.equal(sample(families, "mediation_connections", '{transport="sse"}'), 0);
  assert.equal(sample(families, "mediation_messages_in_total", '{endpoint="chat"}'), 0);
  assert.equal(sample(families, "mediation_errors_total", '{code="FORBIDDEN"}'), 0);
  assert.equal(sample(families, "mediation_cleanup_runs_total") !== undefined, true);
  assert.equal(sample(families, "mediation_endpoint_up", '{endpoint="chat"}'), 1);
  const build = families.get("mediation_build_info")!.samples[0];
  assert.match(
    build.labels,
    new RegExp(`^\\{version="0\\.1\\.0",runtime="${currentRuntime}",runtime_version="[^"]+"\\}$`),
  );
  assert.equal(build.value, 1);
  assert.ok(sample(families, "process_resident_memory_bytes")! > 1e6);
  assert.ok(sample(families, "process_open_fds")! > 0);
  const start = sample(families, "process_start_time_seconds")!;
  assert.ok(Math.abs(start - Date.now() / 1000) < 600, `start time ${start} is about now`);
  assert.ok(sample(families, "mediation_event_loop_lag_seconds")! >= 0);
});

/** The gateway's log lines so far, each parsed (every one must be JSON). */
function logRecords(): Record<string, unknown>[] {
  return gw.output().split("\n")
    .filter((l) => l.trim() !== "" && !/^gateway-(pid|exit)=/.test(l))
    .map((l) => {
      const record = JSON.parse(l);
      assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
      return record;
    });
}

async function waitForRecord(match: (r: Record<string, unknown>) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const found = logRecords().find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`no log line ${what}:\n${gw.output()}`);
}

test("log: a WebSocket connection logs one INFO line when it opens and one when it closes", async () => {
  const id = `obs-${crypto.randomUUID().slice(0, 8)}`;
  const { socket } = await openWelcomed(gw.ws, id);
  const mine = (msg: string) => (r: Record<string, unknown>) => r.client === id && r.msg === msg;
  const opened = await waitForRecord(mine("Connection opened"), "opening the connection");
  assert.deepEqual(
    {
      level: opened.level,
      component: opened.component,
      transport: opened.transport,
      address: opened.address,
      node: opened.node,
    },
    { level: "info", component: "WS", transport: "ws", address: "127.0.0.1", node: "obs-node" },
  );
  assert.equal(sample(await scrape(), "mediation_connections", '{transport="ws"}'), 1);

  // Closed by the gateway: a second connection with the same client ID takes the session over.
  const { socket: newer } = await openWelcomed(gw.ws, id);
  assert.equal((await socket.closedBy()).code, 4409);
  const takenOver = await waitForRecord(mine("Connection closed"), "closing the older connection");
  assert.deepEqual(
    { level: takenOver.level, code: takenOver.code, by: takenOver.by, reason: takenOver.reason },
    { level: "info", code: 4409, by: "gateway", reason: "session taken over by a newer connection" },
  );

  // Closed by the client.
  await newer.close();
  await waitForRecord(
    (r) => mine("Connection closed")(r) && r.by === "client",
    "closing the newer connection",
  );
  const lines = logRecords().filter((r) => r.client === id && r.component === "WS");
  assert.deepEqual(
    lines.map((r) => [r.msg, r.reason]),
    [
      // The takeover closes the older connection before the newer one's socket opens.
      ["Connection opened", undefined],
      ["Connection closed", "session taken over by a newer connection"],
      ["Connection opened", undefined],
      ["Connection closed", "bye"],
    ],
  );
  assert.ok(lines.every((r) => r.level === "info" && r.node === "obs-node"));
});

test("log: an SSE stream logs one INFO line when it opens and one when the client goes", async () => {
  const id = `obs-sse-${crypto.randomUUID().slice(0, 8)}`;
  const sse = await SseClient.open(`${gw.http}/sse/chat?clientId=${id}`);
  await sse.until(() => sse.events.some((e) => e.event === "welcome"));
  const mine = (msg: string) => (r: Record<string, unknown>) => r.client === id && r.msg === msg;
  const opened = await waitForRecord(mine("Connection opened"), "opening the stream");
  assert.deepEqual(
    [opened.level, opened.component, opened.transport, opened.address, opened.node],
    ["info", "SSE", "sse", "127.0.0.1", "obs-node"],
  );
  await sse.close();
  const closed = await waitForRecord(mine("Connection closed"), "closing the stream");
  assert.deepEqual([closed.level, closed.by, closed.reason], [
    "info",
    "client",
    "stream closed by the client",
  ]);
  assert.equal(logRecords().filter((r) => r.client === id).length, 2, "one line each");
});
