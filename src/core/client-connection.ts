/**
 * One client connection on this node, owning its own state (centrifuge's `client.go`): its
 * lifecycle state, its sink, its timers (open, drain, credential expiry), its delivery
 * sequences, the messages in flight with acks, and back-pressure. Nobody else writes these:
 * the hub and its collaborators call its methods, and it reports client actions and what it
 * cannot do alone (resume a consumer, end the session) back through `ConnectionEvents`.
 *
 * Near 400 lines, kept as one class on purpose: the delivery path (sequence, in-flight bound,
 * write, back-pressure) and the lifecycle (timers, takeover, retire) read and change the same
 * private fields, and splitting them would hand those fields to a second writer.
 */
import type { Principal } from "./auth.ts";
import type { Connection, ConnectionState, Recovery } from "./connection.ts";
import type { InboundMessage, Receipt } from "./endpoint.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import { CloseCode, GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { toBase64 } from "./payload.ts";
import type { PreparedPayload } from "./payload.ts";
import type { Scheduler, TimerId } from "./scheduler.ts";
import type { Delivery, DeliverySink } from "./sink.ts";

/** What a connection hands back to the hub. */
export interface ConnectionEvents {
  /** Attach the socket and resume the consumers (Connection.open), under the client's lock. */
  open(
    conn: ClientConnection,
    sink: DeliverySink,
    greet?: (recovery: Recovery) => void,
  ): Promise<GatewayError[]>;
  publish(conn: ClientConnection, endpoint: string, payload: Uint8Array, id?: string): Promise<Receipt>;
  subscribe(conn: ClientConnection, endpoint: string, params: Record<string, string>): Promise<void>;
  unsubscribe(conn: ClientConnection, endpoint: string): Promise<void>;
  /** The connection ended (its socket went, it never opened, its credential expired). */
  close(conn: ClientConnection): Promise<void>;
  /** `endpoint`, refused for back-pressure or its in-flight bound, may deliver again. */
  writable(conn: ClientConnection, endpoint: string): void;
  /** A delivery was written (for mediation_messages_out_total). */
  delivered(endpoint: string): void;
}

/** What every connection of a hub shares. */
export interface ConnectionSettings {
  scheduler: Scheduler;
  logger: Logger;
  endpoints: EndpointSet;
  /** Unacknowledged messages per endpoint on a connection with acks. */
  maxInFlight: number;
  /** How often a back-pressured connection is checked for having drained, in ms. */
  drainInterval: number;
  /** A connection not opened (socket never attached) within this many ms is dropped. */
  openTimeout: number;
}

/** Who connects, with what: fixed for the connection's life. */
export interface ConnectionInit {
  clientId: string;
  epoch: number;
  resumed: boolean;
  transport: string;
  endpoints: ReadonlySet<string> | undefined;
  acks: boolean;
  /** The session's bindings when it was taken. */
  bound: Iterable<[string, Record<string, string>]>;
  principal?: Principal;
}

/** A message written to a client with acks, waiting for its acknowledgement. */
interface InFlight {
  sequence: number;
  settle?: () => void;
}

export class ClientConnection implements Connection {
  readonly clientId: string;
  readonly epoch: number;
  readonly resumed: boolean;
  readonly transport: string;
  readonly endpoints: ReadonlySet<string> | undefined;
  readonly acks: boolean;
  /** Who connected (auth on), for ACLs. */
  readonly principal?: Principal;
  #state: ConnectionState = "pending";
  #sink?: DeliverySink;
  #bound: Map<string, Record<string, string>>;
  /** Last delivery sequence per endpoint. */
  #sequences = new Map<string, number>();
  /** Endpoints whose delivery was refused for back-pressure, waiting for the socket to drain. */
  #blocked = new Set<string>();
  /** With acks: delivered, not yet acknowledged messages per endpoint, in delivery order. */
  #inflight = new Map<string, InFlight[]>();
  /** With acks: endpoints refused for having max_in_flight unacknowledged; resumed by acks. */
  #throttled = new Set<string>();
  /** The connection on this node this one took over: what it left unacknowledged comes again. */
  #previous?: ClientConnection;
  #recovery: Recovery = { recovered: true };
  /** Drops a connection whose socket never attaches. */
  #openTimer?: TimerId;
  /** Polls a back-pressured socket until it drains. */
  #drainTimer?: TimerId;
  /** Closes the connection (4401) when its credential expires. */
  #authTimer?: TimerId;

  private readonly settings: ConnectionSettings;
  private readonly events: ConnectionEvents;
  constructor(
    settings: ConnectionSettings,
    events: ConnectionEvents,
    init: ConnectionInit,
  ) {
    this.settings = settings;
    this.events = events;
    this.clientId = init.clientId;
    this.epoch = init.epoch;
    this.resumed = init.resumed;
    this.transport = init.transport;
    this.endpoints = init.endpoints;
    this.acks = init.acks;
    this.principal = init.principal;
    this.#bound = new Map(init.bound);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get bound(): ReadonlyMap<string, Record<string, string>> {
    return this.#bound;
  }

  /** How the session came back: recovered unless it had expired (see `sessionExpired`). */
  get recovery(): Recovery {
    return this.#recovery;
  }

  /** With acks: delivered, not yet acknowledged messages per endpoint (for the admin API). */
  inFlight(): Record<string, number> {
    return Object.fromEntries([...this.#inflight].map(([name, list]) => [name, list.length]));
  }

  /** Whether deliveries of `endpoint` go to this connection. */
  carries(endpoint: string): boolean {
    return this.endpoints === undefined || this.endpoints.has(endpoint);
  }

  open(sink: DeliverySink, greet?: (recovery: Recovery) => void): Promise<GatewayError[]> {
    return this.events.open(this, sink, greet);
  }

  publish(endpoint: string, payload: Uint8Array, id?: string): Promise<Receipt> {
    return this.events.publish(this, endpoint, payload, id);
  }

  subscribe(endpoint: string, params: Record<string, string> = {}): Promise<void> {
    return this.events.subscribe(this, endpoint, params);
  }

  unsubscribe(endpoint: string): Promise<void> {
    return this.events.unsubscribe(this, endpoint);
  }

  close(): Promise<void> {
    return this.events.close(this);
  }

  // The lifecycle, as the hub drives it.

  /**
   * Starts the timers of a connection just taken: dropped if not opened in time, closed with
   * 4401 at `expiresAt` (its credential's expiry).
   */
  watch(expiresAt?: number): void {
    const { scheduler, openTimeout } = this.settings;
    this.#openTimer = scheduler.setTimeout(() => {
      if (this.#state === "pending") void this.events.close(this);
    }, openTimeout);
    if (expiresAt !== undefined) {
      this.#authTimer = scheduler.setTimeout(() => {
        this.#sink?.close(CloseCode.UNAUTHENTICATED, "credential expired");
        void this.events.close(this);
      }, Math.max(0, expiresAt - scheduler.now()));
    }
  }

  /** This connection took over `older` on this node: what that one left unacknowledged comes again. */
  takeOver(older: ClientConnection): void {
    this.#previous = older;
  }

  /** The session had expired when this connection took it: nothing was kept. */
  sessionExpired(): void {
    this.#recovery = { recovered: false, reason: "expired" };
  }

  /**
   * The resume report for the welcome: what the session lost while away, as far as anyone can
   * tell (the bound endpoints' own counts of messages they dropped, or their brokers deleted;
   * each call resets them).
   */
  async recoveryReport(): Promise<Recovery> {
    if (!this.#recovery.recovered) return this.#recovery;
    const lost: Record<string, number> = {};
    const counts = await Promise.all(
      [...this.#bound].map(async ([name, params]) => {
        try {
          return [
            name,
            await this.settings.endpoints.bindable(name)?.takeLosses?.(this.clientId, params) ?? 0,
          ] as const;
        } catch {
          return [name, 0] as const; // nothing known (the endpoint says why in its own log)
        }
      }),
    );
    for (const [name, n] of counts) if (n > 0) lost[name] = n;
    return Object.keys(lost).length > 0 ? { recovered: false, reason: "dropped", lost } : { recovered: true };
  }

  /** Opening: the open timeout no longer applies. */
  opening(): void {
    this.#clearTimers();
  }

  /**
   * The endpoints whose messages the connection this one took over (on this node) left
   * unacknowledged, once its sink acknowledged what it could (an SSE stream keeping its last
   * events), waiting at most `settleWait` ms: their consumers restart, so the broker sends
   * those again.
   */
  async leftUnacknowledged(settleWait: number): Promise<Set<string>> {
    const previous = this.#previous;
    this.#previous = undefined;
    if (!previous) return new Set();
    const settled = previous.#sink?.settled?.();
    // A sink that failed to settle kept nothing more: what it left in flight is counted below and
    // comes again from the broker, so its error changes nothing here (the sink logs its own).
    if (settled) await Promise.race([settled.catch(() => {}), this.settings.scheduler.sleep(settleWait)]);
    return new Set([...previous.#inflight].filter(([, list]) => list.length > 0).map(([name]) => name));
  }

  /** The socket is attached: deliveries flow from now on. */
  attach(sink: DeliverySink): void {
    this.#sink = sink;
    this.#state = "open";
  }

  /** Closes the socket, if one is attached, with a close code from `CloseCode`. */
  closeSink(code: number, reason: string): void {
    this.#sink?.close(code, reason);
  }

  /** Closes the connection's books on this node: no more deliveries, no timers. */
  retire(): void {
    this.#state = "closed";
    this.#clearTimers();
    if (this.#authTimer !== undefined) this.settings.scheduler.clear(this.#authTimer);
  }

  /** The client is bound to `endpoint` with `params` (the store and the broker say so). */
  recordBound(endpoint: string, params: Record<string, string>): void {
    this.#bound.set(endpoint, params);
  }

  /** The client's binding to `endpoint` is gone, and with it any wait for the socket to drain. */
  recordUnbound(endpoint: string): void {
    this.#bound.delete(endpoint);
    this.#blocked.delete(endpoint);
  }

  // Delivery.

  /**
   * Writes an endpoint's message, if this connection is open and carries the endpoint. Never
   * throws: a sink that fails is answered "not written" (the broker keeps it). Without acks the
   * message is settled at once; with them, when the client acknowledges it, and at most
   * `maxInFlight` wait per endpoint (past it the endpoint is refused until acks come).
   */
  deliver(
    endpoint: string,
    message: InboundMessage,
    prepare: (payload: Uint8Array) => PreparedPayload,
  ): boolean {
    const sink = this.#sink;
    if (this.#state !== "open" || !sink || !this.carries(endpoint)) return false;
    let inflight: InFlight[] | undefined;
    if (this.acks) {
      inflight = this.#inflight.get(endpoint);
      if (!inflight) this.#inflight.set(endpoint, inflight = []);
      if (inflight.length >= this.settings.maxInFlight) {
        this.#throttled.add(endpoint);
        return false;
      }
    }
    const sequence = (this.#sequences.get(endpoint) ?? 0) + 1;
    const delivery: Delivery = {
      endpoint,
      id: `${this.epoch}.${sequence}`,
      payload: message.payload,
      prepared: prepare(message.payload),
      meta: message.meta,
      redelivered: message.redelivered,
    };
    if (!this.#write(sink, delivery)) {
      if (this.#state === "open") {
        this.#blocked.add(endpoint);
        this.#watchDrain();
      }
      return false;
    }
    this.#sequences.set(endpoint, sequence);
    this.events.delivered(endpoint);
    if (inflight) inflight.push({ sequence, settle: message.settle });
    else message.settle?.();
    return true;
  }

  /**
   * A cumulative acknowledgement: settles every in-flight message of `name` up to `id`, in
   * order, and lets a throttled endpoint deliver again. Ids are this connection's own
   * (`<epoch>.<sequence>`): an earlier connection's, or one not yet sent, is a BAD_FRAME.
   */
  ack(name: string, id: string): void {
    // A closed connection may still settle what it took: an SSE stream keeps its last events
    // after its client went, and then they must not come again.
    this.settings.endpoints.get(name);
    if (!this.acks) throw new GatewayError("BAD_FRAME", "acks need a connection opened with ack=1");
    const dot = id.indexOf(".");
    const sequence = Number(id.slice(dot + 1));
    if (
      dot < 0 || id.slice(0, dot) !== String(this.epoch) || !Number.isInteger(sequence) || sequence < 1 ||
      sequence > (this.#sequences.get(name) ?? 0)
    ) {
      throw new GatewayError(
        "BAD_FRAME",
        `no delivery ${JSON.stringify(id)} of "${name}" on this connection`,
      );
    }
    const inflight = this.#inflight.get(name) ?? [];
    let settled = 0;
    while (settled < inflight.length && inflight[settled].sequence <= sequence) {
      inflight[settled++].settle?.();
    }
    inflight.splice(0, settled);
    if (this.#state === "open" && this.#throttled.has(name) && inflight.length < this.settings.maxInFlight) {
      this.#throttled.delete(name);
      this.events.writable(this, name);
    }
  }

  /**
   * One write to a sink. A sink that throws gets the message once more as base64 (the form
   * nothing can go wrong with); if that throws too, the socket is broken: it is closed (1011),
   * and the message stays with the broker.
   */
  #write(sink: DeliverySink, delivery: Delivery): boolean {
    const { logger } = this.settings;
    try {
      return sink.deliver(delivery);
    } catch (error) {
      logger.error(
        `[Delivery] Writing to ${this.clientId} from ${delivery.endpoint} failed; sending it as base64`,
        error,
      );
    }
    try {
      return sink.deliver({
        ...delivery,
        prepared: { json: `"${toBase64(delivery.payload)}"`, encoding: "base64" },
      });
    } catch (error) {
      logger.error(`[Delivery] Connection of ${this.clientId} cannot be written; closing it`, error);
      try {
        sink.close(CloseCode.INTERNAL_ERROR, "internal error");
      } catch {
        // A sink that cannot write may not close either; its socket's own close ends the session.
      }
      return false;
    }
  }

  /** Polls a back-pressured connection; once it drains, the refused consumers resume. */
  #watchDrain(): void {
    if (this.#drainTimer !== undefined) return;
    const { scheduler } = this.settings;
    this.#drainTimer = scheduler.setInterval(() => {
      if (this.#state !== "open") return this.#clearTimers();
      if (!this.#sink?.writable()) return;
      scheduler.clear(this.#drainTimer!);
      this.#drainTimer = undefined;
      const endpoints = [...this.#blocked];
      this.#blocked.clear();
      for (const name of endpoints) this.events.writable(this, name);
    }, this.settings.drainInterval);
  }

  #clearTimers(): void {
    const { scheduler } = this.settings;
    if (this.#openTimer !== undefined) scheduler.clear(this.#openTimer);
    if (this.#drainTimer !== undefined) scheduler.clear(this.#drainTimer);
    this.#openTimer = this.#drainTimer = undefined;
  }
}
