/**
 * What a hub is made of, and what one connection asks of it. Built from the config by
 * `hubOptionsFromConfig` (src/config/hub-options.ts).
 */
import type { Principal } from "./auth.ts";
import type { Endpoint } from "./endpoint.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import type { Policy } from "./policy.ts";
import type { Scheduler } from "./scheduler.ts";
import type { NodeRecord, SessionStore } from "./session.ts";

/** Everything a hub is made of; built from the config by `hubOptionsFromConfig`. */
export interface HubOptions {
  store: SessionStore;
  endpoints: Endpoint[];
  scheduler: Scheduler;
  policy: Policy;
  logger: Logger;
  metrics: Metrics;
  /** How long a disconnected session keeps its broker resources, in ms. */
  reconnectionWindow: number;
  nodeId: string;
  /**
   * How long this node's hold on its connected sessions lasts without renewal, in ms. Renewed
   * every third of it; a crashed node's sessions count as disconnected once it lapses.
   */
  lease: number;
  /** A connection not opened (socket never attached) within this many ms is dropped. */
  openTimeout: number;
  /** How long a cleanup claim holds before another node may retry a crashed cleanup, in ms. */
  claimTtl: number;
  /** How often a back-pressured connection is checked for having drained, in ms. */
  drainInterval: number;
  /** Deepest nesting of a delivered JSON payload spliced into frames as JSON; deeper goes as text. */
  maxJsonDepth: number;
  /** Unacknowledged messages per client and endpoint on a connection with acks. */
  maxInFlight: number;
  /** Publish ids remembered per session, and for how long (ms), so a retry is not sent twice. */
  dedupeIds: number;
  dedupeWindow: number;
  /** Bytes of sent SSE events kept per session for Last-Event-ID replay. */
  replayBytes: number;
  /** Per client: publishes and payload bytes a second (bursts of twice as many). */
  publishesPerSecond: number;
  publishBytesPerSecond: number;
  /** Publishes of one connection waiting for their broker at once. */
  maxPendingPublishes: number;
  /** New connections a second per subject, and per client address. */
  connectionsPerSecond: number;
  connectionsPerSecondPerAddress: number;
  /** Most sessions one authenticated subject may hold. */
  sessionsPerSubject: number;
  /**
   * What this node tells the others sharing its store (SessionStore.announce), at every lease
   * renewal: where it listens, its runtime and version, when it started. Unset: it announces
   * nothing (and takes no signals).
   */
  node?: Pick<NodeRecord, "address" | "runtime" | "version" | "startedAt">;
}

/** Options of one connection. */
export interface ConnectOptions {
  /** The endpoints it carries (an SSE stream's own); every endpoint if unset. */
  endpoints?: Iterable<string>;
  /** End-to-end acknowledgements (`ack=1`). */
  acks?: boolean;
  /**
   * Who connects (auth on): the session must be its subject's (FORBIDDEN otherwise), the ACLs
   * are checked against it, and the connection closes with 4401 when its credential expires.
   */
  principal?: Principal;
}
