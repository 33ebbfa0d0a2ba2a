/**
 * Builds endpoints from their config entries.
 */
import type { Endpoint } from "../core/endpoint.ts";
import type { Logger } from "../core/logger.ts";
import type { EndpointConfig } from "../config/schema.ts";
import { MemoryEndpoint } from "./memory/memory-endpoint.ts";

export function createEndpoint(config: EndpointConfig, logger: Logger): Endpoint {
  switch (config.type) {
    case "memory":
      return new MemoryEndpoint({
        name: config.name,
        publishTopic: config.publish_topic,
        subscribeTopic: config.subscribe_topic,
        queueLimit: config.queue_limit,
        logger,
      });
  }
}
