/**
 * One client connection as the hub sees it. Entrypoints get it from `Hub.connect`, attach their
 * sink with `open`, and forward client actions; the hub does the session work.
 */
import type { Hub } from "./hub.ts";
import type { Receipt } from "./endpoint.ts";
import type { GatewayError } from "./errors.ts";
import type { DeliverySink } from "./sink.ts";
import type { TimerId } from "./scheduler.ts";

/** pending: session taken, no socket yet; open: delivering; closed: gone or superseded. */
export type ConnectionState = "pending" | "open" | "closed";

export class Connection {
  state: ConnectionState = "pending";
  sink?: DeliverySink;
  /** Bound endpoints and their params, mirrored from the session record. */
  readonly bound: Map<string, Record<string, string>>;
  /** Binds under way, so publishes that arrive meanwhile keep their order behind them. */
  readonly binding = new Map<string, Promise<void>>();
  /** Last delivery sequence per endpoint. */
  readonly sequences = new Map<string, number>();
  /** Endpoints whose delivery was refused for back-pressure, waiting for the socket to drain. */
  readonly blocked = new Set<string>();
  timer?: TimerId;

  constructor(
    readonly hub: Hub,
    readonly clientId: string,
    readonly epoch: number,
    readonly resumed: boolean,
    readonly transport: string,
    bound: Iterable<[string, Record<string, string>]>,
  ) {
    this.bound = new Map(bound);
  }

  /** Attaches the live socket and resumes every bound consumer; returns the ones that failed. */
  open(sink: DeliverySink): Promise<GatewayError[]> {
    return this.hub.open(this, sink);
  }

  /** Publishes `payload` to `endpoint`, binding the client to it first if this is its first event. */
  publish(endpoint: string, payload: Uint8Array): Promise<Receipt> {
    return this.hub.publish(this, endpoint, payload);
  }

  /** Binds to `endpoint` without publishing. */
  subscribe(endpoint: string, params: Record<string, string> = {}): Promise<void> {
    return this.hub.subscribe(this, endpoint, params);
  }

  /** Unbinds from `endpoint` now, broker-side state included. */
  unsubscribe(endpoint: string): Promise<void> {
    return this.hub.unsubscribe(this, endpoint);
  }

  /** The socket went away: the session starts its reconnection window. */
  close(): Promise<void> {
    return this.hub.disconnect(this);
  }
}
