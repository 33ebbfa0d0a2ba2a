/**
 * kafkajs's log through the gateway's Logger: its ERRORs (retried failures) are warn lines, its
 * WARNs (one per bind: a new group rebalancing) and below are debug lines, with the endpoint;
 * errors about reaching a broker are the endpoint's reachability's to report (once), so debug.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { logLevel } from "kafkajs";
import { memoryLogger } from "../../src/core/logger.ts";
import { KAFKA_LOG_LEVEL, KAFKA_REPEAT_MS, kafkaLogCreator } from "../../src/endpoints/kafka/kafka-log.ts";
import type { KafkaLogOptions } from "../../src/endpoints/kafka/kafka-log.ts";

function kafkaLog(now: () => number = Date.now, options: KafkaLogOptions = {}) {
  const logger = memoryLogger();
  const log = kafkaLogCreator(logger, "orders", now, options)(logLevel.INFO);
  const entry = (
    namespace: string,
    level: logLevel,
    label: string,
    message: string,
    extra: Record<string, unknown> = {},
  ) => log({ namespace, level, label, log: { timestamp: "", logger: "kafkajs", message, ...extra } });
  return { logger, entry };
}

test("kafka log: ERROR becomes warn, WARN and below debug, each naming the endpoint", () => {
  const { logger, entry } = kafkaLog();
  entry("Consumer", logLevel.ERROR, "ERROR", "Response OffsetCommit", {
    error: "The coordinator is not available",
    broker: "127.0.0.1:9092",
  });
  entry("ConsumerGroup", logLevel.WARN, "WARN", "The group is rebalancing, re-joining", {
    groupId: "engine-orders-client-c1",
  });
  entry("Consumer", logLevel.INFO, "INFO", "Consumer has joined the group");
  assert.deepEqual(logger.lines, [
    "WARN [Kafka] orders: Response OffsetCommit (The coordinator is not available)",
    "DEBUG [Kafka] orders: The group is rebalancing, re-joining",
    "DEBUG [Kafka] orders: Consumer has joined the group",
  ]);
  assert.deepEqual(logger.records[0].fields, {
    endpoint: "orders",
    broker: "127.0.0.1:9092",
    group: undefined,
  });
  assert.equal(logger.records[1].fields.group, "engine-orders-client-c1");
  assert.equal(KAFKA_LOG_LEVEL, logLevel.WARN, "kafkajs's per-request INFO lines are not even made");
});

test("kafka log: a connection error is debug and makes the endpoint check the cluster; while down, all errors are debug", () => {
  let checks = 0;
  let down = false;
  const { logger, entry } = kafkaLog(Date.now, { onConnectionError: () => checks++, quiet: () => down });
  entry("Connection", logLevel.ERROR, "ERROR", "Connection error", { error: "connect ECONNREFUSED" });
  entry("BrokerPool", logLevel.ERROR, "ERROR", "Failed to connect to seed broker");
  entry("Consumer", logLevel.ERROR, "ERROR", "Request failed", { error: "connect ECONNREFUSED 127.0.0.1:1" });
  entry("Consumer", logLevel.ERROR, "ERROR", "Restarting the consumer in 100ms", { groupId: "g" });
  assert.equal(checks, 3);
  down = true;
  entry("Consumer", logLevel.ERROR, "ERROR", "Response Metadata");
  assert.deepEqual(logger.lines, [
    "DEBUG [Kafka] orders: Connection error (connect ECONNREFUSED)",
    "DEBUG [Kafka] orders: Failed to connect to seed broker",
    "DEBUG [Kafka] orders: Request failed (connect ECONNREFUSED 127.0.0.1:1)",
    "DEBUG [Kafka] orders: Restarting the consumer in 100ms",
    "DEBUG [Kafka] orders: Response Metadata",
  ]);
});

test("kafka log: the same error again within KAFKA_REPEAT_MS is a debug line, after it a warn line again", () => {
  let now = 1000;
  const { logger, entry } = kafkaLog(() => now);
  const error = (message: string) => entry("Consumer", logLevel.ERROR, "ERROR", message);
  error("Response OffsetCommit");
  now += 100;
  error("Response OffsetCommit");
  error("Response Metadata");
  now += KAFKA_REPEAT_MS;
  error("Response OffsetCommit");
  assert.deepEqual(logger.lines, [
    "WARN [Kafka] orders: Response OffsetCommit",
    "DEBUG [Kafka] orders: Response OffsetCommit",
    "WARN [Kafka] orders: Response Metadata",
    "WARN [Kafka] orders: Response OffsetCommit",
  ]);
});

test("kafka log: a partition's leadership moving (a broker back from a restart) is a debug line; kafkajs retries it", () => {
  const { logger, entry } = kafkaLog();
  entry(
    "Producer",
    logLevel.ERROR,
    "ERROR",
    "Failed to send messages: This server is not the leader for that topic-partition",
  );
  entry("Producer", logLevel.ERROR, "ERROR", "Response Produce", {
    error: "There is no leader for this topic-partition as we are in the middle of a leadership election",
  });
  entry("Producer", logLevel.ERROR, "ERROR", "Failed to send messages: The request timed out");
  assert.deepEqual(logger.lines, [
    "DEBUG [Kafka] orders: Failed to send messages: This server is not the leader for that topic-partition",
    "DEBUG [Kafka] orders: Response Produce (There is no leader for this topic-partition as we are in the middle of a leadership election)",
    "WARN [Kafka] orders: Failed to send messages: The request timed out",
  ]);
});
