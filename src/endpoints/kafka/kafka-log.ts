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

/** A kafkajs error repeated within this many ms of its last warn line is a debug line. */
export const KAFKA_REPEAT_MS = 30_000;

/** kafkajs loggers whose errors are about reaching brokers. */
const CONNECTION_NAMESPACES = new Set(["Connection", "BrokerPool"]);
const CONNECTION_ERROR =
  /Connection error|Connection timeout|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|Closed connection/i;

const RESTART = /^Restarting the consumer/;

/**
 * A partition's leadership moving (a broker restarted, a controller electing): kafkajs refreshes
 * its metadata and retries by itself, and what still fails is the endpoint's to report
 * (a publish's UPSTREAM_UNAVAILABLE). Not a warn line: right after a broker comes back every
 * partition it leads answers so once.
 */
const LEADERSHIP =
  /not the leader for that topic-partition|no leader for this topic-partition|leadership election|NOT_LEADER|LEADER_NOT_AVAILABLE/i;

/** Whether an error (or a kafkajs log line's text) is about reaching a broker. */
export function isConnectionError(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return CONNECTION_ERROR.test(text) || /KafkaJSConnection/.test(text);
}

export interface KafkaLogOptions {
  /** Called for a kafkajs error about reaching a broker, which is then a debug line: the endpoint's
   * BrokerReachability reports an outage once (and its end once), not a line per broker and retry. */
  onConnectionError?: () => void;
  /** While true (the broker is known to be down), other kafkajs errors are debug lines too. */
  quiet?: () => boolean;
}

/**
 * kafkajs ERROR (a request failed and is retried) becomes a warn line: the endpoint reports what
 * finally failed itself, at error. Everything else is debug, and so are connection errors (see
 * KafkaLogOptions). During an outage every client and every retry logs the same error: the first
 * is a warn line, the same text again within KAFKA_REPEAT_MS (on `now`'s clock) a debug line.
 *
 * @example
 * new Kafka({ brokers, logLevel: KAFKA_LOG_LEVEL, logCreator: kafkaLogCreator(logger, "orders") });
 */
export function kafkaLogCreator(
  logger: Logger,
  endpoint: string,
  now: () => number = Date.now,
  options: KafkaLogOptions = {},
): logCreator {
  const warned = new Map<string, number>();
  return () => ({ namespace, level, log }: LogEntry) => {
    const { message, error, broker, groupId } = log as LogEntry["log"] & {
      error?: string;
      broker?: string;
      groupId?: string;
    };
    const text = `[Kafka] ${endpoint}: ${message}${error ? ` (${error})` : ""}`;
    const fields = { endpoint, broker, group: groupId };
    if (level !== logLevel.ERROR) return logger.debug(text, fields);
    if (CONNECTION_NAMESPACES.has(namespace) || CONNECTION_ERROR.test(text)) {
      options.onConnectionError?.();
      return logger.debug(text, fields);
    }
    // A consumer's restart follows its crash, whose line (just before) says why: the restart
    // itself tells nothing more.
    if (options.quiet?.() || RESTART.test(message) || LEADERSHIP.test(text)) {
      return logger.debug(text, fields);
    }
    const at = now();
    const last = warned.get(text);
    if (last !== undefined && at - last < KAFKA_REPEAT_MS) return logger.debug(text, fields);
    if (warned.size >= 1000) warned.clear();
    warned.set(text, at);
    logger.warn(text, fields);
  };
}
