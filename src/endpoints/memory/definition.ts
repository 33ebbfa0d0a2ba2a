/** The `memory` endpoint type: an in-process topic bus with one durable queue per bound client. */
import * as v from "valibot";
import { positiveInt, topicTemplate } from "../../config/values.ts";
import { defineEndpoint } from "../definition.ts";
import { MemoryEndpoint } from "./memory-endpoint.ts";

export default defineEndpoint({
  type: "memory",
  options: {
    /** Default: the endpoint's name (the endpoint fills it in). */
    publish_topic: v.optional(topicTemplate()),
    subscribe_topic: v.optional(topicTemplate()),
    queue_limit: positiveInt(10_000),
    /** Payload bytes held per client (8 MiB) and for all clients of the endpoint (256 MiB). */
    queue_bytes: positiveInt(8 * 1024 * 1024),
    total_bytes: positiveInt(256 * 1024 * 1024),
  },
  create: (entry, ctx) =>
    new MemoryEndpoint({
      name: entry.name,
      publishTopic: entry.publish_topic,
      subscribeTopic: entry.subscribe_topic,
      queueLimit: entry.queue_limit,
      queueBytes: entry.queue_bytes,
      totalBytes: entry.total_bytes,
      logger: ctx.logger,
    }),
});
