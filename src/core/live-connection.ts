/**
 * The hub's own record of one client connection: the `Connection` an entrypoint holds, with the
 * mutable state only the hub changes. It imports nothing of the hub: client actions go back
 * through the `ConnectionOps` the hub hands it.
 */
import type { Principal } from "./auth.ts";
import type { Connection, ConnectionState, Recovery } from "./connection.ts";
import type { Receipt } from "./endpoint.ts";
import type { GatewayError } from "./errors.ts";
import type { TimerId } from "./scheduler.ts";
import type { DeliverySink } from "./sink.ts";

/** What a connection's methods do, implemented by the hub. */
export interface ConnectionOps {
  open(
    conn: LiveConnection,
    sink: DeliverySink,
    greet?: (recovery: Recovery) => void,
  ): Promise<GatewayError[]>;
  ack(conn: LiveConnection, endpoint: string, id: string): void;
  publish(conn: LiveConnection, endpoint: string, payload: Uint8Array, id?: string): Promise<Receipt>;
  subscribe(conn: LiveConnection, endpoint: string, params: Record<string, string>): Promise<void>;
  unsubscribe(conn: LiveConnection, endpoint: string): Promise<void>;
  close(conn: LiveConnection): Promise<void>;
}

/** A message written to a client with acks, waiting for its acknowledgement. */
export interface InFlight {
  sequence: number;
  settle?: () => void;
}

export class LiveConnection implements Connection {
  state: ConnectionState = "pending";
  sink?: DeliverySink;
  readonly bound: Map<string, Record<string, string>>;
  /** Binds under way, so publishes that arrive meanwhile keep their order behind them. */
  readonly binding = new Map<string, { params: Record<string, string>; done: Promise<void> }>();
  /** Last delivery sequence per endpoint. */
  readonly sequences = new Map<string, number>();
  /** Endpoints whose delivery was refused for back-pressure, waiting for the socket to drain. */
  readonly blocked = new Set<string>();
  /** With acks: delivered, not yet acknowledged messages per endpoint, in delivery order. */
  readonly inflight = new Map<string, InFlight[]>();
  /** With acks: endpoints refused for having max_in_flight unacknowledged; resumed by acks. */
  readonly throttled = new Set<string>();
  /** Bound endpoints whose consumer failed to resume at open: a `subscribe` tries again. */
  readonly unresumed = new Set<string>();
  /** The connection on this node this one took over: what it left unacknowledged comes again. */
  previous?: LiveConnection;
  /** Publishes of this connection waiting for their broker. */
  pendingPublishes = 0;
  /** How the session came back (set by the hub at connect). */
  recovery: Recovery = { recovered: true };
  /** Drops a connection whose socket never attaches. */
  openTimer?: TimerId;
  /** Polls a back-pressured socket until it drains. */
  drainTimer?: TimerId;
  /** Closes the connection (4401) when its credential expires. */
  authTimer?: TimerId;

  constructor(
    private readonly ops: ConnectionOps,
    readonly clientId: string,
    readonly epoch: number,
    readonly resumed: boolean,
    readonly transport: string,
    readonly endpoints: ReadonlySet<string> | undefined,
    readonly acks: boolean,
    bound: Iterable<[string, Record<string, string>]>,
    /** Who connected (auth on), for ACLs. */
    readonly principal?: Principal,
  ) {
    this.bound = new Map(bound);
  }

  /** Whether deliveries of `endpoint` go to this connection. */
  carries(endpoint: string): boolean {
    return this.endpoints === undefined || this.endpoints.has(endpoint);
  }

  open(sink: DeliverySink, greet?: (recovery: Recovery) => void): Promise<GatewayError[]> {
    return this.ops.open(this, sink, greet);
  }

  ack(endpoint: string, id: string): void {
    this.ops.ack(this, endpoint, id);
  }

  publish(endpoint: string, payload: Uint8Array, id?: string): Promise<Receipt> {
    return this.ops.publish(this, endpoint, payload, id);
  }

  subscribe(endpoint: string, params: Record<string, string> = {}): Promise<void> {
    return this.ops.subscribe(this, endpoint, params);
  }

  unsubscribe(endpoint: string): Promise<void> {
    return this.ops.unsubscribe(this, endpoint);
  }

  close(): Promise<void> {
    return this.ops.close(this);
  }
}
