/**
 * kafkajs's log through the gateway's Logger: its ERRORs (retried failures) are warn lines, its
 * WARNs (one per bind: a new group rebalancing) and below are debug lines, with the endpoint.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { logLevel } from "kafkajs";
import { memoryLogger } from "../../src/core/logger.ts";
import { KAFKA_LOG_LEVEL, KAFKA_REPEAT_MS, kafkaLogCreator } from "../../src/endpoints/kafka/kafka-log.ts";

test("kafka log: ERROR becomes warn, WARN and below debug, each naming the endpoint", () => {
  const logger = memoryLogger();
  const log = kafkaLogCreator(logger, "orders")(logLevel.INFO);
  const entry = (level: logLevel, label: string, message: string, extra: Record<string, unknown> = {}) =>
    log({
      namespace: "Connection",
      level,
      label,
      log: { timestamp: "", logger: "kafkajs", message, ...extra },
    });
  entry(logLevel.ERROR, "ERROR", "Connection error", {
    error: "connect ECONNREFUSED",
    broker: "127.0.0.1:1",
  });
  entry(logLevel.WARN, "WARN", "The group is rebalancing, re-joining", {
    groupId: "engine-orders-client-c1",
  });
  entry(logLevel.INFO, "INFO", "Consumer has joined the group");
  assert.deepEqual(logger.lines, [
    "WARN [Kafka] orders: Connection error (connect ECONNREFUSED)",
    "DEBUG [Kafka] orders: The group is rebalancing, re-joining",
    "DEBUG [Kafka] orders: Consumer has joined the group",
  ]);
  assert.deepEqual(logger.records[0].fields, { endpoint: "orders", broker: "127.0.0.1:1", group: undefined });
  assert.equal(logger.records[1].fields.group, "engine-orders-client-c1");
  assert.equal(KAFKA_LOG_LEVEL, logLevel.WARN, "kafkajs's per-request INFO lines are not even made");
});

test("kafka log: the same error again within KAFKA_REPEAT_MS is a debug line, after it a warn line again", () => {
  const logger = memoryLogger();
  let now = 1000;
  const log = kafkaLogCreator(logger, "orders", () => now)(logLevel.INFO);
  const error = (message: string) =>
    log({
      namespace: "Connection",
      level: logLevel.ERROR,
      label: "ERROR",
      log: { timestamp: "", logger: "kafkajs", message },
    });
  error("Connection error");
  now += 100;
  error("Connection error");
  error("Response Metadata");
  now += KAFKA_REPEAT_MS;
  error("Connection error");
  assert.deepEqual(logger.lines, [
    "WARN [Kafka] orders: Connection error",
    "DEBUG [Kafka] orders: Connection error",
    "WARN [Kafka] orders: Response Metadata",
    "WARN [Kafka] orders: Connection error",
  ]);
});
