/**
 * The console logger's two formats: a timestamp on every line, structured fields, error stacks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { consoleLogger, memoryLogger, withFields } from "../../src/core/logger.ts";
import type { LogFormat, LogLevel } from "../../src/core/logger.ts";

const T = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function capture(format: LogFormat, level: LogLevel = "debug") {
  const lines: { level: LogLevel; line: string }[] = [];
  const logger = consoleLogger(level, {
    format,
    now: () => T,
    write: (l, line) => lines.push({ level: l, line }),
  });
  return { logger, lines };
}

function failure(): Error {
  return new Error("broker refused", { cause: new Error("ECONNREFUSED") });
}

test("text: ISO 8601 UTC timestamp, level, message, fields as key=value", () => {
  const { logger, lines } = capture("text");
  logger.info("[WS] Connection opened", {
    client: "c1",
    transport: "ws",
    note: "two words",
    gone: undefined,
  });
  assert.deepEqual(lines, [{
    level: "info",
    line: '2026-01-02T03:04:05.678Z INFO [WS] Connection opened client=c1 transport=ws note="two words"',
  }]);
});

test("text: an error's message on the line, its stack indented below it, causes too", () => {
  const { logger, lines } = capture("text");
  logger.error("[Session] Resume of c1 on orders failed", failure(), { client: "c1" });
  const [first, ...rest] = lines[0].line.split("\n");
  assert.equal(
    first,
    "2026-01-02T03:04:05.678Z ERROR [Session] Resume of c1 on orders failed: broker refused client=c1",
  );
  assert.ok(rest.length >= 2, lines[0].line);
  assert.ok(rest.every((l) => l.startsWith("    ")), lines[0].line);
  assert.match(rest[0], /^ {4}at /);
  assert.ok(rest.includes("    caused by: Error: ECONNREFUSED"), lines[0].line);
  assert.ok(rest.some((l) => l.includes("logger.test.ts")), "frames name this file");
});

test("json: one object a line with time, level, component, msg and the fields", () => {
  const { logger, lines } = capture("json");
  withFields(logger, { node: "n1" }).warn("[Kafka] orders: Connection error", { endpoint: "orders" });
  logger.info("no component here");
  assert.equal(lines.length, 2);
  assert.ok(!lines[0].line.includes("\n"));
  assert.deepEqual(JSON.parse(lines[0].line), {
    time: "2026-01-02T03:04:05.678Z",
    level: "warn",
    component: "Kafka",
    msg: "orders: Connection error",
    node: "n1",
    endpoint: "orders",
  });
  assert.deepEqual(JSON.parse(lines[1].line), {
    time: "2026-01-02T03:04:05.678Z",
    level: "info",
    msg: "no component here",
  });
});

test("json: an error gives error (its message) and stack, on the one line", () => {
  const { logger, lines } = capture("json");
  logger.error("[Engine] Stopping orders failed", failure(), { endpoint: "orders" });
  assert.ok(!lines[0].line.includes("\n"));
  const record = JSON.parse(lines[0].line);
  assert.equal(record.error, "broker refused");
  assert.equal(record.endpoint, "orders");
  assert.match(record.stack, /^at /);
  assert.match(record.stack, /caused by: Error: ECONNREFUSED/);
  const plain = capture("json");
  plain.logger.error("[X] failed", "just text");
  assert.equal(JSON.parse(plain.lines[0].line).error, "just text");
  assert.equal(JSON.parse(plain.lines[0].line).stack, undefined);
});

test("the level threshold holds in both formats; a field cannot replace time or level", () => {
  for (const format of ["text", "json"] as const) {
    const { logger, lines } = capture(format, "warn");
    logger.debug("d");
    logger.info("i");
    logger.warn("w", { level: "fake", time: "fake" });
    logger.error("e");
    assert.deepEqual(lines.map((l) => l.level), ["warn", "error"]);
    if (format === "json") {
      const record = JSON.parse(lines[0].line);
      assert.equal(record.level, "warn");
      assert.equal(record.time, "2026-01-02T03:04:05.678Z");
    }
  }
});

test("withFields: bound fields after the line's own, which win on a clash", () => {
  const { logger, lines } = capture("text");
  const bound = withFields(logger, { node: "n1", client: "default" });
  bound.info("[WS] Connection opened", { client: "c1", transport: "ws" });
  bound.debug("[X] plain");
  assert.deepEqual(lines.map((l) => l.line), [
    "2026-01-02T03:04:05.678Z INFO [WS] Connection opened client=c1 transport=ws node=n1",
    "2026-01-02T03:04:05.678Z DEBUG [X] plain node=n1 client=default",
  ]);
});

test("memoryLogger keeps its plain lines and the records with their fields", () => {
  const logger = memoryLogger();
  withFields(logger, { node: "n1" }).info("[WS] Connection closed", { client: "c1", reason: "bye" });
  logger.error("[X] failed", new Error("boom"));
  assert.deepEqual(logger.lines, ["INFO [WS] Connection closed", "ERROR [X] failed: boom"]);
  assert.deepEqual(logger.records[0].fields, { node: "n1", client: "c1", reason: "bye" });
});
