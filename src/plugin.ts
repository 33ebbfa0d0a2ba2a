/**
 * What an endpoint type needs from the gateway (`mediation-engine/plugin`): the definition and its
 * context, the ports an endpoint implements, the one error type, topic templates, and the config
 * value schemas its options are built from. See docs/writing-an-endpoint.md.
 *
 * @example
 * import { defineEndpoint, text, topicTemplate } from "mediation-engine/plugin";
 * export default defineEndpoint({ type: "my-broker", options: { url: text("a URL"), ... }, create: ... });
 */
export { defineEndpoint } from "./endpoints/definition.ts";
export type { EndpointContext, EndpointDefinition, EndpointEntry } from "./endpoints/definition.ts";
export { isBindable } from "./core/endpoint.ts";
export type {
  BindableEndpoint,
  DeliveryHandler,
  Endpoint,
  EndpointHealth,
  InboundMessage,
  LifecycleBinder,
  OutboundMessage,
  Receipt,
} from "./core/endpoint.ts";
export { GatewayError } from "./core/errors.ts";
export type { ErrorCode, GatewayErrorOptions } from "./core/errors.ts";
/** Credentials out of a message: a broker URL is passed through `redactUrl` before it is logged or put in an error. */
export { redact, redactUrl } from "./core/redact.ts";
export type { LogFields, Logger } from "./core/logger.ts";
export { memoryLogger, withFields } from "./core/logger.ts";
export type { Scheduler, TimerId } from "./core/scheduler.ts";
export { RealScheduler } from "./core/scheduler.ts";
export { KeyedMutex } from "./core/mutex.ts";
export { BrokerReachability, RETRY_INITIAL_MS, RETRY_MAX_MS, retryDelay } from "./core/reachability.ts";
export type { BrokerReachabilityOptions } from "./core/reachability.ts";
export { expandTopic } from "./endpoints/template.ts";
export * from "./config/values.ts";
/** valibot, for option schemas beyond the helpers above (the gateway's own copy). */
export * as v from "valibot";
