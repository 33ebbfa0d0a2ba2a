/**
 * The one way to build a hub's options from a checked config: every setting the hub reads comes
 * from the config (with the schema's defaults), the rest from the parts the caller made (store,
 * endpoints, clock, log, metrics). The engine, the test harness and the benches all build their
 * hubs here, so none copies a default by hand.
 */
import type { Endpoint } from "../core/endpoint.ts";
import type { HubOptions } from "../core/hub-options.ts";
import type { Logger } from "../core/logger.ts";
import type { Metrics } from "../core/metrics.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { SessionStore } from "../core/session.ts";
import { DefaultPolicy } from "../policy/default-policy.ts";
import type { Config } from "./schema.ts";

/** What a hub is given besides its config. */
export interface HubParts {
  store: SessionStore;
  endpoints: Endpoint[];
  scheduler: Scheduler;
  logger: Logger;
  metrics: Metrics;
  nodeId: string;
  /** What the node announces of itself (HubOptions.node). */
  node?: HubOptions["node"];
}

/**
 * Timings of the hub that are not configurable: how long a cleanup claim holds before another
 * node may retry a crashed cleanup, how long a connection may wait for its socket, and how often
 * a back-pressured socket is checked for having drained (all in ms).
 */
export const HUB_TIMINGS = { claimTtl: 60_000, openTimeout: 10_000, drainInterval: 20 } as const;

/**
 * The hub's options for `config`, on `parts`.
 *
 * @example
 * const hub = new Hub(hubOptionsFromConfig(config, { store, endpoints, scheduler, logger, metrics, nodeId }));
 */
export function hubOptionsFromConfig(config: Config, parts: HubParts): HubOptions {
  const { session, policy, delivery } = config;
  return {
    ...parts,
    ...HUB_TIMINGS,
    policy: new DefaultPolicy({
      maxMessageBytes: policy.max_message_bytes,
      maxJsonDepth: policy.max_json_depth,
      acls: Object.fromEntries(config.endpoints.map((e) => [e.name, e.acl])),
    }),
    reconnectionWindow: session.reconnection_window,
    lease: session.lease,
    maxJsonDepth: policy.max_json_depth,
    maxInFlight: delivery.max_in_flight,
    dedupeIds: delivery.dedupe_ids,
    dedupeWindow: delivery.dedupe_window,
    replayBytes: delivery.replay_bytes,
    publishesPerSecond: policy.publishes_per_second,
    publishBytesPerSecond: policy.publish_bytes_per_second,
    maxPendingPublishes: policy.max_pending_publishes,
    connectionsPerSecond: policy.connections_per_second,
    connectionsPerSecondPerAddress: policy.connections_per_second_per_address,
    sessionsPerSubject: policy.sessions_per_subject,
  };
}
