/**
 * kafkajs's log, through the gateway's Logger: a `logCreator` for every Kafka client an endpoint
 * makes (producer, admin and consumers share one `Kafka` instance, so one creator covers them).
 */
import { logLevel } from "kafkajs";
import type { logCreator, LogEntry } from "kafkajs";
import type { Logger } from "../../core/logger.ts";

/**
 * The least severe kafkajs level passed on. Below WARN kafkajs logs every request and join; its
 * WARNs come per bind (a new consumer group rebalancing) and are debug lines here.
 */
export const KAFKA_LOG_LEVEL = logLevel.WARN;

/**
 * kafkajs ERROR (a broker connection failed, a request failed and is retried) becomes a warn
 * line: the endpoint reports what finally failed itself, at error. Everything else is debug.
 *
 * @example
 * new Kafka({ brokers, logLevel: KAFKA_LOG_LEVEL, logCreator: kafkaLogCreator(logger, "orders") });
 */
export function kafkaLogCreator(logger: Logger, endpoint: string): logCreator {
  return () => ({ level, log }: LogEntry) => {
    const { message, error, broker, groupId } = log as LogEntry["log"] & {
      error?: string;
      broker?: string;
      groupId?: string;
    };
    const text = `[Kafka] ${endpoint}: ${message}${error ? ` (${error})` : ""}`;
    const fields = { endpoint, broker, group: groupId };
    if (level === logLevel.ERROR) logger.warn(text, fields);
    else logger.debug(text, fields);
  };
}
