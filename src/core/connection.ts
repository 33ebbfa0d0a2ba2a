/**
 * One client connection as an entrypoint holds it. Entrypoints get it from `Hub.connect`, attach
 * their sink with `open`, and forward client actions; the hub and its collaborators do the
 * session work, and the connection (ClientConnection, src/core/client-connection.ts) owns its
 * mutable state.
 */
import type { Receipt } from "./endpoint.ts";
import type { GatewayError } from "./errors.ts";
import type { DeliverySink } from "./sink.ts";

/** pending: session taken, no socket yet; open: delivering; closed: gone or superseded. */
export type ConnectionState = "pending" | "open" | "closed";

/**
 * The resume report a client gets in its welcome: whether everything it missed will follow,
 * and if not, what could not be kept.
 */
export interface Recovery {
  recovered: boolean;
  /** Why not: `expired` (the session was gone; nothing was kept), `dropped` (see `lost`). */
  reason?: "expired" | "dropped";
  /** Messages lost per endpoint (a memory endpoint's queue_limit overflow, the SSE replay bound). */
  lost?: Record<string, number>;
}

export interface Connection {
  readonly clientId: string;
  /** The session epoch this connection holds; a newer connection has a higher one. */
  readonly epoch: number;
  /** Whether the session existed (within its window) when this connection took it. */
  readonly resumed: boolean;
  /** `ws`, `ws-raw`, `sse`: for metrics and logs. */
  readonly transport: string;
  readonly state: ConnectionState;
  /**
   * The endpoints this connection carries (an SSE stream names its own), or undefined for all.
   * What the session holds for the others stays queued with their brokers.
   */
  readonly endpoints?: ReadonlySet<string>;
  /** Bound endpoints and their params, mirrored from the session record. */
  readonly bound: ReadonlyMap<string, Record<string, string>>;
  /**
   * End-to-end acknowledgements (`ack=1`): the broker is acknowledged only for what the client
   * acknowledged, and unacknowledged messages come back on resume.
   */
  readonly acks: boolean;

  /**
   * Attaches the live socket and resumes every bound consumer it carries; returns the ones that
   * failed. `greet` runs first, with the resume report, so a welcome goes out before any delivery.
   */
  open(sink: DeliverySink, greet?: (recovery: Recovery) => void): Promise<GatewayError[]>;
  /**
   * The client acknowledges delivery `id` of `endpoint` and every earlier one (cumulative).
   * Throws BAD_FRAME for an id this connection did not deliver (unknown, or not yet sent).
   */
  ack(endpoint: string, id: string): void;
  /**
   * Publishes `payload` to `endpoint`, binding the client to it first if this is its first event.
   * With an `id`, a retry of the same id within the dedupe window (on any connection of the
   * session, on any node) is not sent again: it gets the first publish's receipt.
   */
  publish(endpoint: string, payload: Uint8Array, id?: string): Promise<Receipt>;
  /** Binds to `endpoint` without publishing. */
  subscribe(endpoint: string, params?: Record<string, string>): Promise<void>;
  /** Unbinds from `endpoint` now, broker-side state included. */
  unsubscribe(endpoint: string): Promise<void>;
  /** The socket went away: the session starts its reconnection window. */
  close(): Promise<void>;
}
