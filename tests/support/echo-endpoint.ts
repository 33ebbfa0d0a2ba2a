/**
 * An endpoint type from outside src/endpoints/, as a plugin author writes one: `echo`, an
 * in-process bus on one topic (the memory endpoint underneath). Loaded by the tests through
 * `endpoint_modules:` and `createEngine({ endpointTypes })`.
 */
import * as v from "valibot";
import { positiveInt, text } from "../../src/config/values.ts";
import { defineEndpoint } from "../../src/endpoints/definition.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";

export default defineEndpoint({
  type: "echo",
  options: {
    topic: v.optional(text("a topic"), "echo"),
    queue_limit: positiveInt(100),
  },
  check: (entry) =>
    entry.topic.includes("#") ? [{ key: "topic", message: `expected no "#", got "${entry.topic}"` }] : [],
  create: (entry, ctx) =>
    new MemoryEndpoint({
      name: entry.name,
      publishTopic: entry.topic,
      subscribeTopic: entry.topic,
      queueLimit: entry.queue_limit,
      queueBytes: 1024 * 1024,
      totalBytes: 8 * 1024 * 1024,
      logger: ctx.logger,
    }),
});
