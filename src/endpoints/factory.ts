/**
 * Builds endpoints from their config entries. The entries are the config schema's output, with
 * every default filled in: that is the only place defaults are written.
 */
import type { Endpoint } from "../core/endpoint.ts";
import type { Logger } from "../core/logger.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { EndpointConfig } from "../config/schema.ts";
import { MemoryEndpoint } from "./memory/memory-endpoint.ts";
import { KafkaEndpoint } from "./kafka/kafka-endpoint.ts";
import { MqttEndpoint } from "./mqtt/mqtt-endpoint.ts";

export interface EndpointContext {
  logger: Logger;
  nodeId: string;
  /** The session reconnection window, in ms: brokers keep client state at least this long. */
  reconnectionWindow: number;
  /** The engine's clock: every timeout of an endpoint runs on it. */
  scheduler: Scheduler;
}

/** The endpoint a config entry describes, not started yet. */
export function createEndpoint(config: EndpointConfig, ctx: EndpointContext): Endpoint {
  switch (config.type) {
    case "memory":
      return new MemoryEndpoint({
        name: config.name,
        publishTopic: config.publish_topic,
        subscribeTopic: config.subscribe_topic,
        queueLimit: config.queue_limit,
        queueBytes: config.queue_bytes,
        totalBytes: config.total_bytes,
        logger: ctx.logger,
      });
    case "mqtt":
      return new MqttEndpoint({
        name: config.name,
        url: config.url,
        publishTopic: config.publish_topic,
        subscribeTopic: config.subscribe_topic,
        qos: config.qos,
        producerPoolSize: config.producer_pool_size,
        protocolVersion: config.protocol_version,
        username: config.username,
        password: config.password,
        connectTimeout: config.connect_timeout,
        publishTimeout: config.publish_timeout,
        sessionExpiry: ctx.reconnectionWindow,
        nodeId: ctx.nodeId,
        logger: ctx.logger,
        scheduler: ctx.scheduler,
      });
    case "kafka":
      return new KafkaEndpoint({
        name: config.name,
        brokers: config.brokers,
        publishTopic: config.publish_topic,
        subscribeTopic: config.subscribe_topic,
        keyParam: config.key_param,
        startFrom: config.start_from,
        ssl: config.ssl,
        sasl: config.sasl,
        nodeId: ctx.nodeId,
        connectTimeout: config.connect_timeout,
        publishTimeout: config.publish_timeout,
        sessionTimeout: config.session_timeout,
        fetchMaxWait: config.fetch_max_wait,
        logger: ctx.logger,
        scheduler: ctx.scheduler,
      });
  }
}
