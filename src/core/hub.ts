/**
 * The Hub: wires the session lifecycle of DESIGN.md section 4 from its collaborators and runs
 * the connect flow; routes endpoint deliveries to live connections. It knows no broker and no
 * runtime, and holds no other module's state:
 * - ConnectionRegistry: live connections and the per-client lock;
 * - ClientConnection: each connection's own state (sink, timers, sequences, in-flight, back-pressure);
 * - Bindings: bind, unbind, suspend and resume consumers;
 * - Publisher: policy check, rate limits, pending cap, dedupe;
 * - Leases and Expiry: this node's hold on its sessions, and the end of expired ones;
 * - Operations and NodePresence: the admin API's acts on one client (here or signalled to the
 *   node holding it), this node's announcement to the others, and its drain.
 *
 * Longer than the others (about 400 lines) because it is also the one face the entrypoints and
 * tests use: most public methods are a line that hands off to the collaborator that owns it.
 *
 * Every lifecycle step of one client (connect, open, bind, disconnect, expiry) runs under that
 * client's lock, so on one node they never interleave. Across nodes the session's epoch fences
 * them: each connect increments it, and every write is a compare-and-set on it.
 */
import type { Principal } from "./auth.ts";
import { Bindings } from "./bindings.ts";
import { ClientConnection } from "./client-connection.ts";
import type { ConnectionEvents, ConnectionSettings } from "./client-connection.ts";
import type { Connection, Recovery } from "./connection.ts";
import { ConnectionRegistry } from "./connection-registry.ts";
import type { DeliveryHandler, Endpoint, InboundMessage, Receipt } from "./endpoint.ts";
import { EndpointSet } from "./endpoint-set.ts";
import { CloseCode, GatewayError } from "./errors.ts";
import { Expiry } from "./expiry.ts";
import { Leases } from "./leases.ts";
import { NodePresence } from "./node-presence.ts";
import { Operations } from "./operations.ts";
import { HubMetrics } from "./hub-metrics.ts";
import type { ConnectOptions, HubOptions } from "./hub-options.ts";
import { preparedOnce } from "./payload.ts";
import type { PreparedPayload } from "./payload.ts";
import type { ClientFrame } from "./protocol.ts";
import { Publisher } from "./publisher.ts";
import type { Refusals } from "./publisher.ts";
import type { LostLease, ReplayEvent, Session } from "./session.ts";
import type { DeliverySink } from "./sink.ts";

export type { ConnectOptions, HubOptions } from "./hub-options.ts";

/** Longest a newer connection waits for an older one's sink to settle, in ms. */
const SETTLE_WAIT_MS = 5000;

export class Hub implements DeliveryHandler {
  readonly endpoints: EndpointSet;
  /** What the admin API does to one client: look, disconnect, end, deliver (see Operations). */
  readonly operations: Operations;
  readonly #options: HubOptions;
  #connections = new ConnectionRegistry<ClientConnection>();
  #bindings: Bindings;
  #publisher: Publisher<ClientConnection>;
  #leases: Leases<ClientConnection>;
  #expiry: Expiry<ClientConnection>;
  #presence: NodePresence;
  #stopping = false;
  #metrics: HubMetrics;
  /** One payload fanned out to many clients is prepared once. */
  readonly #prepare: (payload: Uint8Array) => PreparedPayload;
  #settings: ConnectionSettings;
  readonly #events: ConnectionEvents = {
    open: (conn, sink, greet) => this.#open(conn, sink, greet),
    publish: (conn, name, payload, id) => this.#publisher.publish(conn, name, payload, id),
    subscribe: (conn, name, params) => this.#bindings.subscribe(conn, name, params),
    unsubscribe: (conn, name) => this.#bindings.unsubscribe(conn, name),
    close: (conn) => this.#disconnect(conn),
    writable: (conn, name) => this.#bindings.resume(conn, name),
    delivered: (name) => this.#metrics.messagesOut(name).inc(),
  };

  constructor(options: HubOptions) {
    this.#options = options;
    const { store, scheduler, policy, logger, metrics: m } = options;
    this.endpoints = new EndpointSet(options.endpoints);
    this.#prepare = preparedOnce(options.maxJsonDepth);
    this.#metrics = new HubMetrics(m, this.endpoints, this.#connections);
    const release = (clientId: string, epoch: number, reason: LostLease["reason"]) =>
      this.#release(clientId, epoch, reason);
    this.#bindings = new Bindings({ store, scheduler, policy, logger }, this.endpoints, this.#connections);
    this.#publisher = new Publisher(
      { ...options, messagesIn: this.#metrics.messagesIn },
      this.endpoints,
      (conn, endpoint) => this.#bindings.bindOnFirstPublish(conn, endpoint),
    );
    this.#leases = new Leases(options, this.#connections, release);
    this.#expiry = new Expiry(
      options,
      this.endpoints,
      this.#connections,
      this.#leases,
      release,
      (clientId) => this.#publisher.forget(clientId),
    );
    const disconnect = (conn: ClientConnection) => this.#disconnect(conn);
    this.operations = new Operations(options, this.endpoints, this.#connections, {
      bindings: this.#bindings,
      expiry: this.#expiry,
      publisher: this.#publisher,
      disconnect,
      forget: (conn) => this.#forget(conn),
      prepare: this.#prepare,
    });
    this.#presence = new NodePresence(
      options,
      this.#connections,
      this.#metrics,
      (signal) => this.operations.signalled(signal),
      disconnect,
    );
    this.#settings = { ...options, endpoints: this.endpoints };
  }

  /** Starts renewing this node's leases. */
  start(): void {
    // Buckets of clients gone quiet are swept on the same timer, and the node says it is alive.
    this.#leases.start(() => {
      this.#publisher.sweep();
      void this.#presence.announce();
    });
    void this.#presence.announce();
  }

  /** Whether this node is draining (refusing new connections; see `drain`). */
  get draining(): boolean {
    return this.#presence.draining;
  }

  /** Refuses new connections and closes the live ones in waves (see NodePresence.drain). */
  drain(duration: number, waves: number): Promise<void> {
    return this.#presence.drain(duration, waves);
  }

  /** Renews the lease of every session this node holds connected (see Leases.renewAll). */
  renewLeases(): Promise<void> {
    return this.#leases.renewAll();
  }

  /** DeliveryHandler: a consumer dropped; if another node took the client over, let go of it. */
  consumerDropped(clientId: string): void {
    const conn = this.#connections.get(clientId);
    if (conn) this.#leases.checkOwnership(conn);
  }

  /** Names of the configured endpoints, in configuration order. */
  get endpointNames(): string[] {
    return this.endpoints.names;
  }

  /** Live connections on this node. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Entries this hub keeps per client, by map: what a test (or an operator chasing memory)
   * checks is empty once every session ended. Buckets of clients that published lately stay
   * until they refill (a second or two) or the session expires.
   */
  retained(): Record<string, number> {
    return {
      connections: this.#connections.size,
      locks: this.#connections.lockCount,
      ...this.#publisher.retained(),
    };
  }

  /** Counts an error answered to a client (for /metrics). */
  recordError(error: GatewayError): void {
    this.#metrics.errors.inc({ code: error.code });
  }

  /** Throws RATE_LIMITED past the new connections a second of `address` or `subject`. */
  admitConnection(address: string | undefined, subject: string | undefined): void {
    this.#publisher.admitConnection(address, subject);
  }

  /** A meter for one socket's RATE_LIMITED answers (see Refusals). */
  refusals(): Refusals {
    return this.#publisher.refusals();
  }

  /**
   * Keeps SSE events a stream wrote in the session's replay log (one store round trip), so a
   * reconnect with Last-Event-ID, on any node, gets them again. Resolves how many older events
   * the byte bound evicted.
   */
  appendReplay(clientId: string, events: ReplayEvent[]): Promise<number> {
    const { store, replayBytes, lease, reconnectionWindow } = this.#options;
    return store.appendReplay(clientId, events, replayBytes, lease + reconnectionWindow);
  }

  /** A stream reconnects: confirms what `lastEventId` says it has, resolves the rest (see SessionStore). */
  takeReplay(clientId: string, lastEventId: string | undefined) {
    return this.#options.store.takeReplay(clientId, lastEventId);
  }

  /**
   * Parses and validates one multiplexed WebSocket text frame under the policy's limits:
   * TOO_LARGE, BAD_FRAME (see Policy.parseFrame).
   */
  parseFrame(text: string): ClientFrame {
    return this.#options.policy.parseFrame(text);
  }

  /**
   * Whether `principal` may subscribe to `endpoint` with `params`, asked before anything is made
   * (an SSE stream's bindings are refused before it is answered): FORBIDDEN.
   */
  checkSubscribe(
    clientId: string,
    endpoint: string,
    params: Record<string, string>,
    principal?: Principal,
  ): void {
    this.#options.policy.checkSubscribe(clientId, endpoint, params, principal);
  }

  /** The endpoint named `name`; throws UNKNOWN_ENDPOINT. */
  endpoint(name: string): Endpoint {
    return this.endpoints.get(name);
  }

  /**
   * Takes the session for `clientId`: resumes it within its window, starts fresh after it,
   * creates it if there is none, and takes it over from an older connection (closed with 4409).
   * The connection receives nothing until `open` attaches its socket.
   */
  connect(clientId: string, transport: string, options: ConnectOptions = {}): Promise<Connection> {
    if (this.#stopping || this.#presence.draining) {
      return Promise.reject(
        new GatewayError(
          "UPSTREAM_UNAVAILABLE",
          `gateway is ${this.#stopping ? "shutting down" : "draining"}`,
        ),
      );
    }
    const carried = options.endpoints === undefined ? undefined : new Set(options.endpoints);
    for (const name of carried ?? []) this.endpoints.get(name);
    return this.#connections.run(clientId, async () => {
      // Past its window, a session is cleaned up first, claimed like the cleanup worker does,
      // so the two never unbind one session at once.
      const taken = await this.#leases.take(
        clientId,
        options.principal,
        (now) => this.#expiry.cleanUp(clientId, now),
      );
      const conn = this.#attach(taken.session, taken.resumed, transport, carried, options);
      if (taken.expired) conn.sessionExpired();
      return conn;
    });
  }

  #attach(
    session: Session,
    resumed: boolean,
    transport: string,
    carried: ReadonlySet<string> | undefined,
    options: ConnectOptions,
  ): ClientConnection {
    const { clientId } = session;
    const conn = new ClientConnection(this.#settings, this.#events, {
      clientId,
      epoch: session.epoch,
      resumed,
      transport,
      endpoints: carried,
      acks: options.acks ?? false,
      bound: session.subscriptions.map((s) => [s.endpoint, s.params]),
      principal: options.principal,
    });
    const older = this.#connections.add(conn);
    if (older) {
      // Same node: the consumers stay bound and deliver to the newer connection (those it does
      // not carry are suspended when it opens). What the older one had unacknowledged must come
      // again: its consumers restart when the newer one opens, so the broker redelivers.
      older.retire();
      conn.takeOver(older);
      older.closeSink(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
      this.#options.logger.info(`[Session] Client ${clientId} taken over by a newer connection`);
    }
    conn.watch(options.principal?.expiresAt);
    this.#options.logger.debug(
      `[Session] Client ${clientId} ${resumed ? "resumed" : "created"} (epoch ${session.epoch})`,
    );
    return conn;
  }

  /** Connection.open: attaches the socket, greets, resumes the consumers it carries. */
  #open(
    conn: ClientConnection,
    sink: DeliverySink,
    greet?: (recovery: Recovery) => void,
  ): Promise<GatewayError[]> {
    return this.#connections.run(conn.clientId, async () => {
      if (conn.state !== "pending") {
        sink.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
        return [];
      }
      conn.opening();
      const restart = await conn.leftUnacknowledged(SETTLE_WAIT_MS);
      greet?.(await conn.recoveryReport());
      conn.attach(sink);
      return await this.#bindings.resumeOnOpen(conn, restart);
    });
  }

  /**
   * DeliveryHandler: writes an endpoint's message to the client's live connection, if any, and
   * if that connection carries the endpoint (see ClientConnection.deliver). Never throws.
   */
  deliver(clientId: string, endpoint: string, message: InboundMessage): boolean {
    const conn = this.#connections.get(clientId);
    return conn !== undefined && conn.deliver(endpoint, message, this.#prepare);
  }

  /**
   * Publishes for a client without a connection (HTTP publish): no session, no binding. The
   * params fill the topic template, as a binding's would.
   */
  publishDetached(
    clientId: string,
    name: string,
    payload: Uint8Array,
    params: Record<string, string> = {},
    principal?: Principal,
  ): Promise<Receipt> {
    return this.#publisher.publishDetached(clientId, name, payload, params, principal);
  }

  /**
   * The session moved on without this node (taken over elsewhere, or expired): close our
   * connection and take its consumers offline, touching neither the store nor broker-side state,
   * which are the new owner's or the cleanup's. Runs under the client's lock.
   */
  async #release(clientId: string, epoch: number, reason: LostLease["reason"]): Promise<void> {
    const conn = this.#connections.get(clientId);
    if (!conn || conn.epoch !== epoch) return;
    this.#forget(conn);
    if (reason === "taken") {
      conn.closeSink(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
    } else {
      conn.closeSink(CloseCode.SESSION_EXPIRED, "session expired; reconnect for a fresh one");
    }
    await this.#bindings.suspendAll(conn);
    this.#options.logger.info(
      `[Session] Client ${clientId} ${
        reason === "taken" ? "taken over elsewhere" : "expired"
      }; connection released`,
    );
  }

  /** Closes a connection's books on this node: no more deliveries, no timers. */
  #forget(conn: ClientConnection): void {
    conn.retire();
    this.#connections.remove(conn);
  }

  /**
   * The connection's socket is gone: mark the session disconnected with its reconnection
   * deadline and suspend its consumers so the brokers queue. A connection superseded by a
   * newer one on this node changes nothing: the newer one owns the session and the consumers.
   */
  #disconnect(conn: ClientConnection): Promise<void> {
    return this.#connections.run(conn.clientId, async () => {
      if (conn.state === "closed") return;
      const owner = this.#connections.holds(conn);
      this.#forget(conn);
      if (!owner) return;
      const { logger } = this.#options;
      try {
        await this.#leases.letGo(conn);
      } catch (error) {
        logger.error(`[Session] Could not mark ${conn.clientId} disconnected`, error);
      } finally {
        await this.#bindings.suspendAll(conn);
      }
      logger.debug(`[Session] Client ${conn.clientId} disconnected`);
    });
  }

  /** Cleanup of one expired session (the cleanup worker's call; see Expiry.expire). */
  expire(clientId: string): Promise<boolean> {
    return this.#expiry.expire(clientId);
  }

  /**
   * Graceful shutdown: refuses new connections, closes every live one with 1001 and marks its
   * session disconnected (the window starts now), suspending its consumers.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    await this.#leases.stop();
    const connections = this.#connections.all();
    for (const conn of connections) conn.closeSink(CloseCode.GOING_AWAY, "server shutting down");
    await Promise.all(connections.map((conn) => this.#disconnect(conn)));
  }
}
