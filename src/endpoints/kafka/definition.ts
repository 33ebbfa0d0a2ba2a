/** The `kafka` endpoint type: one shared producer, one shared fetch, one member-less group per client. */
import * as v from "valibot";
import {
  boolean,
  duration,
  expected,
  hostPort,
  nonEmptyList,
  strict,
  text,
  topicTemplate,
} from "../../config/values.ts";
import { defineEndpoint } from "../definition.ts";
import { KafkaEndpoint } from "./kafka-endpoint.ts";

export default defineEndpoint({
  type: "kafka",
  options: {
    brokers: nonEmptyList(hostPort, '"host:port"'),
    publish_topic: topicTemplate(),
    subscribe_topic: topicTemplate(),
    key_param: v.optional(text("a binding param name")),
    start_from: v.optional(v.picklist(["latest", "earliest"], expected('"latest" or "earliest"')), "latest"),
    ssl: boolean(false),
    sasl: v.optional(strict({
      mechanism: v.picklist(
        ["plain", "scram-sha-256", "scram-sha-512"],
        expected('"plain", "scram-sha-256" or "scram-sha-512"'),
      ),
      username: text(),
      password: v.string(expected("a string")),
    }, "a mapping with mechanism, username, password")),
    connect_timeout: duration("10s"),
    publish_timeout: duration("10s"),
    /**
     * Gone: bound clients are no consumer group members, so there is no session to time out. Refused
     * with that reason, not as an unknown key, so an old config says what to do.
     */
    session_timeout: v.optional(
      v.custom<never>(
        () => false,
        "no longer used: the gateway's Kafka clients are no consumer group members (their offsets are committed to member-less groups), so there is no group session to time out; remove it",
      ),
    ),
    fetch_max_wait: duration("500ms"),
  },
  create: (entry, ctx) =>
    new KafkaEndpoint({
      name: entry.name,
      brokers: entry.brokers,
      publishTopic: entry.publish_topic,
      subscribeTopic: entry.subscribe_topic,
      keyParam: entry.key_param,
      startFrom: entry.start_from,
      ssl: entry.ssl,
      sasl: entry.sasl,
      nodeId: ctx.nodeId,
      connectTimeout: entry.connect_timeout,
      publishTimeout: entry.publish_timeout,
      fetchMaxWait: entry.fetch_max_wait,
      logger: ctx.logger,
      scheduler: ctx.scheduler,
    }),
});
