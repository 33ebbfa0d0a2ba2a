/**
 * The Hub: wires the session lifecycle of DESIGN.md section 4 from its collaborators and runs
 * the connect flow; routes endpoint deliveries to live connections. It knows no broker and no
 * runtime, and holds no other module's state:
 * - ConnectionRegistry: live connections and the per-client lock;
 * - ClientConnection: each connection's own state (sink, timers, sequences, in-flight, back-pressure);
 * - Bindings: bind, unbind, suspend and resume consumers;
 * - Publisher: policy check, rate limits, pending cap, dedupe;
 * - Leases and Expiry: this node's hold on its sessions, and the end of expired ones.
 *
 * Longer than the others (about 350 lines) because it is also the one face the entrypoints and
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
import { HubMetrics } from "./hub-metrics.ts";
import type { ConnectOptions, HubOptions } from "./hub-options.ts";
import { preparePayload } from "./payload.ts";
import type { PreparedPayload } from "./payload.ts";
import type { ClientFrame } from "./protocol.ts";
import { Publisher } from "./publisher.ts";
import type { Refusals } from "./publisher.ts";
import { heldAt } from "./session.ts";
import type { LostLease, NodeSignal, ReplayEvent, Session } from "./session.ts";
import type { DeliverySink } from "./sink.ts";

export type { ConnectOptions, HubOptions } from "./hub-options.ts";

/** Longest a newer connection waits for an older one's sink to settle, in ms. */
const SETTLE_WAIT_MS = 5000;

export class Hub implements DeliveryHandler {
  readonly endpoints: EndpointSet;
  readonly #options: HubOptions;
  #connections = new ConnectionRegistry<ClientConnection>();
  #bindings: Bindings;
  #publisher: Publisher<ClientConnection>;
  #leases: Leases<ClientConnection>;
  #expiry: Expiry<ClientConnection>;
  #stopping = false;
  /** Draining: new connections are refused while the live ones are closed in waves. */
  #draining = false;
  #announcing?: Promise<void>;
  #metrics: HubMetrics;
  /** One payload fanned out to many clients is prepared once (keyed by its bytes). */
  #prepared = new WeakMap<Uint8Array, PreparedPayload>();
  #prepare = (payload: Uint8Array): PreparedPayload => {
    let prepared = this.#prepared.get(payload);
    if (!prepared) {
      prepared = preparePayload(payload, this.#options.maxJsonDepth);
      this.#prepared.set(payload, prepared);
    }
    return prepared;
  };
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
    this.#settings = { ...options, endpoints: this.endpoints };
  }

  /** Starts renewing this node's leases. */
  start(): void {
    // Buckets of clients gone quiet are swept on the same timer, and the node says it is alive.
    this.#leases.start(() => {
      this.#publisher.sweep();
      void this.announce();
    });
    void this.announce();
  }

  /**
   * Tells the nodes sharing the store that this one is alive (HubOptions.node), until a lease
   * from now, and acts on the signals the admin API sent it meanwhile. Store failures are logged.
   */
  announce(): Promise<void> {
    const { node, store, scheduler, nodeId, lease, logger } = this.#options;
    if (!node) return Promise.resolve();
    this.#announcing ??= (async () => {
      const now = scheduler.now();
      const record = {
        id: nodeId,
        ...node,
        connected: this.#connections.size,
        draining: this.#draining,
        seenAt: now,
        ...this.#metrics.totals(),
      };
      const signals = await store.announce(record, now + lease);
      for (const signal of signals) await this.#signalled(signal);
    })().catch((error) =>
      logger.warn(`[Admin] Announcing node ${nodeId} failed: ${GatewayError.from(error).message}`)
    ).finally(() => (this.#announcing = undefined));
    return this.#announcing;
  }

  /** A signal from another node's admin API, for a client of this one. */
  async #signalled(signal: NodeSignal): Promise<void> {
    const { logger } = this.#options;
    logger.info(`[Admin] Signal ${signal.type} for client ${signal.clientId} from another node`);
    if (signal.type === "disconnect") await this.disconnectClient(signal.clientId);
    else if (signal.type === "end") await this.endSession(signal.clientId);
    else {
      const payload = signal.encoding === "base64"
        ? Uint8Array.from(atob(signal.data), (c) => c.charCodeAt(0))
        : new TextEncoder().encode(signal.data);
      await this.deliverTo(signal.clientId, signal.endpoint, payload);
    }
  }

  /** The live connection of `clientId` on this node, as the admin API shows it; undefined if none. */
  connectionInfo(clientId: string):
    | {
      transport: string;
      acks: boolean;
      state: string;
      endpoints?: string[];
      inFlight: Record<string, number>;
    }
    | undefined {
    const conn = this.#connections.get(clientId);
    if (!conn) return undefined;
    return {
      transport: conn.transport,
      acks: conn.acks,
      state: conn.state,
      ...conn.endpoints ? { endpoints: [...conn.endpoints] } : {},
      inFlight: conn.inFlight(),
    };
  }

  /**
   * The admin API disconnects a client: its connection closes (4000) and its session stays for
   * the window, so the client may resume. A client live on another node is signalled there.
   * Resolves what was done.
   */
  async disconnectClient(
    clientId: string,
  ): Promise<"disconnected" | "signalled" | "not connected" | "no session"> {
    const conn = this.#connections.get(clientId);
    if (conn) {
      conn.closeSink(CloseCode.DISCONNECTED, "disconnected by an operator");
      await this.#disconnect(conn);
      this.#options.logger.info(`[Session] Client ${clientId} disconnected by an operator`);
      return "disconnected";
    }
    return await this.#elsewhere(clientId, { type: "disconnect", clientId }) ?? "not connected";
  }

  /**
   * The admin API ends a session: its connection here closes (4404), everything is unbound at
   * the brokers and the session deleted. A session live on another node is signalled there.
   */
  endSession(clientId: string): Promise<"ended" | "signalled" | "no session" | "failed"> {
    return this.#connections.run(clientId, async () => {
      const conn = this.#connections.get(clientId);
      if (conn) {
        this.#forget(conn);
        conn.closeSink(CloseCode.SESSION_ENDED, "session ended by an operator");
        await this.#bindings.suspendAll(conn);
      } else {
        const signalled = await this.#elsewhere(clientId, { type: "end", clientId });
        if (signalled) return signalled;
      }
      const { store, scheduler, claimTtl } = this.#options;
      const session = await store.get(clientId);
      if (!session) return "no session";
      // Ended as an expired session is: marked past its deadline (compare-and-set on its epoch, so
      // a client that came back meanwhile wins), then claimed, so the cleanup worker and a
      // reconnecting client (which then gets a fresh session) never unbind it at the same time.
      const now = scheduler.now();
      const past: Session = {
        ...session,
        state: "disconnected",
        disconnectedAt: session.disconnectedAt ?? now,
        reconnectionDeadline: now - 1,
      };
      delete past.nodeId;
      delete past.leaseUntil;
      // One already past its deadline is not written: a write would void a cleanup's claim.
      const expired = session.reconnectionDeadline !== undefined && session.reconnectionDeadline < now;
      const claimed = (expired || await store.update(past, session.epoch)) &&
        await store.claimExpired(clientId, now, claimTtl);
      if (!claimed) return "failed";
      const ended = await this.#expiry.end(claimed);
      this.#publisher.forget(clientId);
      this.#options.logger.info(
        `[Session] Session of ${clientId} ${ended ? "ended" : "not ended"} by an operator`,
      );
      return ended ? "ended" : "failed";
    });
  }

  /**
   * The admin API writes a message to a client's live connection, as if `endpoint` delivered it
   * (nothing goes through a broker; a client away misses it). A client live on another node is
   * signalled there.
   */
  async deliverTo(
    clientId: string,
    endpoint: string,
    payload: Uint8Array,
  ): Promise<"delivered" | "not written" | "signalled" | "not connected" | "no session"> {
    this.endpoints.get(endpoint);
    const conn = this.#connections.get(clientId);
    if (conn) return conn.deliver(endpoint, { payload }, this.#prepare) ? "delivered" : "not written";
    let binary = "";
    for (const byte of payload) binary += String.fromCharCode(byte);
    const signal = { type: "deliver", clientId, endpoint, data: btoa(binary), encoding: "base64" } as const;
    return await this.#elsewhere(clientId, signal) ?? "not connected";
  }

  /** Signals the node holding `clientId`'s live connection, if another holds it. */
  async #elsewhere(clientId: string, signal: NodeSignal): Promise<"signalled" | "no session" | undefined> {
    const { store, scheduler, nodeId } = this.#options;
    const session = await store.get(clientId);
    if (!session) return "no session";
    const now = scheduler.now();
    if (!heldAt(session, now) || session.nodeId === undefined || session.nodeId === nodeId) return undefined;
    return await store.signal(session.nodeId, signal, now) ? "signalled" : undefined;
  }

  /** Whether this node is draining (refusing new connections; see `drain`). */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Drains this node: new connections are refused (UPSTREAM_UNAVAILABLE) from now on, and the
   * live ones are closed with 1001 in `waves` waves spread over `duration` ms, the first after
   * one wave's interval, so their clients resume on other nodes without a herd. Resolves once
   * the last wave closed (the caller then shuts down).
   */
  async drain(duration: number, waves: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const { scheduler, logger } = this.#options;
    logger.info(`[Server] Draining: ${this.#connections.size} connections close over ${duration} ms`);
    void this.announce();
    const interval = duration / waves;
    for (let wave = 0; wave < waves; wave++) {
      await scheduler.sleep(interval);
      const live = this.#connections.all();
      // An even share of what is left; the last wave takes the rest.
      const count = Math.round(live.length / (waves - wave));
      const closing = live.slice(0, count);
      for (const conn of closing) conn.closeSink(CloseCode.GOING_AWAY, "server draining");
      await Promise.all(closing.map((conn) => this.#disconnect(conn)));
      logger.debug(`[Server] Drain wave ${wave + 1}/${waves}: ${closing.length} connections closed`);
    }
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
    if (this.#stopping || this.#draining) {
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
