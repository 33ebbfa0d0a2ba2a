/** The `mqtt` endpoint type: a shared publish pool, one persistent-session consumer per client. */
import * as v from "valibot";
import { duration, expected, numberOf, positiveInt, text, topicTemplate } from "../../config/values.ts";
import { defineEndpoint } from "../definition.ts";
import { MqttEndpoint } from "./mqtt-endpoint.ts";

export default defineEndpoint({
  type: "mqtt",
  options: {
    url: v.pipe(
      text("an mqtt:// URL"),
      v.regex(/^(mqtts?|wss?|tcp|ssl):\/\/\S+$/, expected("an mqtt:// URL")),
    ),
    publish_topic: topicTemplate(),
    subscribe_topic: topicTemplate(),
    qos: v.optional(numberOf([0, 1], "0 or 1"), 1),
    producer_pool_size: positiveInt(5),
    protocol_version: v.optional(numberOf([4, 5], "4 (MQTT 3.1.1) or 5"), 5),
    username: v.optional(v.string(expected("a string"))),
    password: v.optional(v.string(expected("a string"))),
    connect_timeout: duration("10s"),
    publish_timeout: duration("10s"),
  },
  create: (entry, ctx) =>
    new MqttEndpoint({
      name: entry.name,
      url: entry.url,
      publishTopic: entry.publish_topic,
      subscribeTopic: entry.subscribe_topic,
      qos: entry.qos,
      producerPoolSize: entry.producer_pool_size,
      protocolVersion: entry.protocol_version,
      username: entry.username,
      password: entry.password,
      connectTimeout: entry.connect_timeout,
      publishTimeout: entry.publish_timeout,
      sessionExpiry: ctx.reconnectionWindow,
      nodeId: ctx.nodeId,
      logger: ctx.logger,
      scheduler: ctx.scheduler,
    }),
});
