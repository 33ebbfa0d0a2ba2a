/**
 * The Hub: routes client messages to endpoints and endpoint deliveries to live connections, and
 * runs the session lifecycle of DESIGN.md section 4. It knows no broker and no runtime.
 *
 * Every lifecycle step of one client (connect, open, bind, disconnect, expiry) runs under that
 * client's lock, so on one node they never interleave. Across nodes the session's epoch fences
 * them: each connect increments it, and every write is a compare-and-set on it.
 */
import type { Principal } from "./auth.ts";
import type { Connection, Recovery } from "./connection.ts";
import { isBindable } from "./endpoint.ts";
import type { DeliveryHandler, Endpoint, InboundMessage, Receipt } from "./endpoint.ts";
import { CloseCode, ERROR_CODES, GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Counter, CounterSeries, Metrics } from "./metrics.ts";
import { LiveConnection } from "./live-connection.ts";
import type { ConnectionOps, InFlight } from "./live-connection.ts";
import { KeyedMutex } from "./mutex.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Policy } from "./policy.ts";
import type { Scheduler, TimerId } from "./scheduler.ts";
import { preparePayload, toBase64 } from "./payload.ts";
import type { PreparedPayload } from "./payload.ts";
import type { LostLease, ReplayEvent, Session, SessionStore, Subscription } from "./session.ts";
import type { Delivery, DeliverySink } from "./sink.ts";

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
  openTimeout?: number;
  /** How long a cleanup claim holds before another node may retry a crashed cleanup, in ms. */
  claimTtl?: number;
  /** How often a back-pressured connection is checked for having drained, in ms. */
  drainInterval?: number;
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
  /** Most sessions one authenticated subject may hold. */
  sessionsPerSubject: number;
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

const CONNECT_ATTEMPTS = 5;
/** The transports of the built-in entrypoints (Connection.transport): mediation_connections' labels. */
const TRANSPORTS = ["ws", "ws-raw", "sse"];
/** Longest a newer connection waits for an older one's sink to settle, in ms. */
const SETTLE_WAIT_MS = 5000;
/** Leases renewed per store round trip. */
const RENEW_BATCH = 1000;

export class Hub implements DeliveryHandler {
  readonly endpoints: ReadonlyMap<string, Endpoint>;
  readonly options: HubOptions;
  #live = new Map<string, LiveConnection>();
  #locks = new KeyedMutex();
  #stopping = false;
  #renewal?: TimerId;
  #renewing?: Promise<void>;
  /** Per endpoint name: the series are kept, as these are bumped per message. */
  #messagesIn: (endpoint: string) => CounterSeries;
  #messagesOut: (endpoint: string) => CounterSeries;
  #errors: Counter;
  #publishRate: RateLimiter;
  #byteRate: RateLimiter;
  /** One payload fanned out to many clients is prepared once (keyed by its bytes). */
  #prepared = new WeakMap<Uint8Array, PreparedPayload>();
  readonly #ops: ConnectionOps = {
    open: (conn, sink, greet) => this.#open(conn, sink, greet),
    ack: (conn, name, id) => this.#ack(conn, name, id),
    publish: (conn, name, payload, id) => this.#publish(conn, name, payload, id),
    subscribe: (conn, name, params) => this.#subscribe(conn, name, params),
    unsubscribe: (conn, name) => this.#unsubscribe(conn, name),
    close: (conn) => this.#disconnect(conn),
  };

  constructor(options: HubOptions) {
    this.options = options;
    const { scheduler, publishesPerSecond, publishBytesPerSecond } = options;
    this.#publishRate = new RateLimiter(scheduler, publishesPerSecond, publishesPerSecond * 2);
    this.#byteRate = new RateLimiter(scheduler, publishBytesPerSecond, publishBytesPerSecond * 2);
    this.endpoints = new Map(options.endpoints.map((e) => [e.name, e]));
    const m = options.metrics;
    this.#messagesIn = m.counter("mediation_messages_in_total", "Messages published by clients").by(
      "endpoint",
    );
    this.#messagesOut = m.counter("mediation_messages_out_total", "Messages delivered to clients").by(
      "endpoint",
    );
    this.#errors = m.counter("mediation_errors_total", "Errors answered to clients, by code");
    // Every known series from the first scrape on, at 0 (src/core/metrics.ts).
    for (const e of options.endpoints) {
      this.#messagesIn(e.name);
      this.#messagesOut(e.name);
    }
    for (const code of ERROR_CODES) this.#errors.series({ code });
    m.gauge("mediation_connections", "Live client connections on this node", () => {
      const counts = new Map<string, number>(TRANSPORTS.map((t) => [t, 0]));
      for (const c of this.#live.values()) counts.set(c.transport, (counts.get(c.transport) ?? 0) + 1);
      return [...counts].map(([transport, value]) => ({ labels: { transport }, value }));
    });
    m.gauge(
      "mediation_bindings",
      "Client bindings held by this node, per endpoint",
      () => options.endpoints.map((e) => ({ labels: { endpoint: e.name }, value: e.bindingCount?.() ?? 0 })),
    );
  }

  /** Starts renewing this node's leases. */
  start(): void {
    this.#renewal ??= this.options.scheduler.setInterval(() => {
      this.#renewing ??= this.renewLeases().finally(() => (this.#renewing = undefined));
      // Buckets of clients gone quiet (an HTTP publisher has no session that expires).
      this.#publishRate.sweep();
      this.#byteRate.sweep();
    }, Math.max(100, Math.floor(this.options.lease / 3)));
  }

  /**
   * Renews the lease of every session this node holds connected, in batches of one store round
   * trip each. A session that moved on loses its connection here: closed with 4409 when another
   * connection took it over, with 4410 when it expired (the cleanup worker is ending it), its
   * consumers released. Store failures are logged; the leases run on until the next renewal.
   * Never called under a client's lock: releasing takes it.
   */
  async renewLeases(): Promise<void> {
    const { logger } = this.options;
    const conns = [...this.#live.values()];
    for (let i = 0; i < conns.length; i += RENEW_BATCH) {
      const batch = conns.slice(i, i + RENEW_BATCH);
      let lost: LostLease[];
      try {
        lost = await this.#renew(batch);
      } catch (error) {
        logger.warn(
          `[Session] Lease renewal failed; connections keep flowing: ${GatewayError.from(error).message}`,
        );
        return;
      }
      const epochs = new Map(batch.map((c) => [c.clientId, c.epoch]));
      for (const { clientId, reason } of lost) {
        await this.#locks.run(clientId, () => this.#release(clientId, epochs.get(clientId)!, reason));
      }
    }
  }

  #renew(conns: LiveConnection[]): Promise<LostLease[]> {
    const { store, scheduler, lease, reconnectionWindow } = this.options;
    const now = scheduler.now();
    return store.renew(
      conns.map((c) => ({ clientId: c.clientId, epoch: c.epoch })),
      now,
      now + lease,
      now + lease + reconnectionWindow,
    );
  }

  /** DeliveryHandler: a consumer dropped; if another node took the client over, let go of it. */
  consumerDropped(clientId: string): void {
    const conn = this.#live.get(clientId);
    if (!conn) return;
    this.options.store.get(clientId).then((session) => {
      if (session && session.epoch === conn.epoch) return;
      return this.#locks.run(
        clientId,
        () => this.#release(clientId, conn.epoch, session ? "taken" : "expired"),
      );
    }).catch((error) =>
      this.options.logger.warn(
        `[Session] Ownership check of ${clientId} failed: ${GatewayError.from(error).message}`,
      )
    );
  }

  /**
   * The session moved on without this node (taken over elsewhere, or expired): close our
   * connection and take its consumers offline, touching neither the store nor broker-side state,
   * which are the new owner's or the cleanup's. Runs under the client's lock.
   */
  async #release(clientId: string, epoch: number, reason: LostLease["reason"]): Promise<void> {
    const conn = this.#live.get(clientId);
    if (!conn || conn.epoch !== epoch) return;
    this.#forget(conn);
    if (reason === "taken") {
      conn.sink?.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
    } else {
      conn.sink?.close(CloseCode.SESSION_EXPIRED, "session expired; reconnect for a fresh one");
    }
    await this.#suspendAll(conn);
    this.options.logger.info(
      `[Session] Client ${clientId} ${
        reason === "taken" ? "taken over elsewhere" : "expired"
      }; connection released`,
    );
  }

  /** Names of the configured endpoints, in configuration order. */
  get endpointNames(): string[] {
    return [...this.endpoints.keys()];
  }

  /** Live connections on this node. */
  get connectionCount(): number {
    return this.#live.size;
  }

  /**
   * Entries this hub keeps per client, by map: what a test (or an operator chasing memory)
   * checks is empty once every session ended. Buckets of clients that published lately stay
   * until they refill (a second or two) or the session expires.
   */
  retained(): Record<string, number> {
    return {
      connections: this.#live.size,
      locks: this.#locks.size,
      publishBuckets: this.#publishRate.size,
      byteBuckets: this.#byteRate.size,
    };
  }

  /** Counts an error answered to a client (for /metrics). */
  recordError(error: GatewayError): void {
    this.#errors.inc({ code: error.code });
  }

  /**
   * Keeps SSE events a stream wrote in the session's replay log (one store round trip), so a
   * reconnect with Last-Event-ID, on any node, gets them again. Resolves how many older events
   * the byte bound evicted.
   */
  appendReplay(clientId: string, events: ReplayEvent[]): Promise<number> {
    const { store, replayBytes, lease, reconnectionWindow } = this.options;
    return store.appendReplay(clientId, events, replayBytes, lease + reconnectionWindow);
  }

  /** A stream reconnects: confirms what `lastEventId` says it has, resolves the rest (see SessionStore). */
  takeReplay(clientId: string, lastEventId: string | undefined) {
    return this.options.store.takeReplay(clientId, lastEventId);
  }

  /** The endpoint named `name`; throws UNKNOWN_ENDPOINT (the one place that says so). */
  endpoint(name: string): Endpoint {
    const endpoint = this.endpoints.get(name);
    if (!endpoint) throw new GatewayError("UNKNOWN_ENDPOINT", `no endpoint named "${name}"`);
    return endpoint;
  }

  /**
   * Takes the session for `clientId`: resumes it within its window, starts fresh after it,
   * creates it if there is none, and takes it over from an older connection (closed with 4409).
   * The connection receives nothing until `open` attaches its socket.
   */
  connect(clientId: string, transport: string, options: ConnectOptions = {}): Promise<Connection> {
    if (this.#stopping) {
      return Promise.reject(new GatewayError("UPSTREAM_UNAVAILABLE", "gateway is shutting down"));
    }
    const carried = options.endpoints === undefined ? undefined : new Set(options.endpoints);
    for (const name of carried ?? []) this.endpoint(name);
    return this.#locks.run(clientId, async () => {
      const { store, scheduler, lease, reconnectionWindow, nodeId } = this.options;
      let lastEpoch = 0;
      let expired = false;
      for (let attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
        const now = scheduler.now();
        const taken = await store.connect(clientId, {
          nodeId,
          now,
          leaseUntil: now + lease,
          deadline: now + lease + reconnectionWindow,
          // A fresh session's epoch is past every earlier one of this client (by the clock, as
          // an old one may be gone without a trace), so nothing holding an old epoch can ever
          // write to it.
          freshEpoch: Math.max(lastEpoch + 1, now),
          subject: options.principal?.subject,
          maxSessions: options.principal ? this.options.sessionsPerSubject : undefined,
        });
        if (taken.outcome === "forbidden") {
          throw new GatewayError("FORBIDDEN", `client ID ${clientId} belongs to another subject`);
        }
        if (taken.outcome === "limited") {
          throw new GatewayError(
            "RATE_LIMITED",
            `${
              options.principal!.subject
            } holds ${this.options.sessionsPerSubject} sessions already (policy.sessions_per_subject)`,
          );
        }
        if (taken.outcome !== "expired") {
          const conn = this.#attach(taken.session, taken.outcome === "resumed", transport, carried, options);
          if (expired) conn.recovery = { recovered: false, reason: "expired" };
          return conn;
        }
        // Past its window: cleaned up first, claimed like the cleanup worker does, so the two
        // never unbind one session at once.
        expired = true;
        const claimed = await store.claimExpired(clientId, now, this.options.claimTtl ?? 60_000);
        if (claimed && await this.#expireSession(claimed, "[Session]")) lastEpoch = claimed.epoch;
      }
      throw new GatewayError(
        "STORE_UNAVAILABLE",
        `session of ${clientId} is being cleaned up or kept changing; retry shortly`,
      );
    });
  }

  #attach(
    session: Session,
    resumed: boolean,
    transport: string,
    carried: ReadonlySet<string> | undefined,
    options: ConnectOptions,
  ): LiveConnection {
    const { clientId } = session;
    const older = this.#live.get(clientId);
    const conn = new LiveConnection(
      this.#ops,
      clientId,
      session.epoch,
      resumed,
      transport,
      carried,
      options.acks ?? false,
      session.subscriptions.map((s) => [s.endpoint, s.params]),
      options.principal,
    );
    if (older) {
      // Same node: the consumers stay bound and deliver to the newer connection (those it does
      // not carry are suspended when it opens). What the older one had unacknowledged must come
      // again: its consumers restart when the newer one opens, so the broker redelivers.
      this.#forget(older);
      conn.previous = older;
      older.sink?.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
      this.options.logger.info(`[Session] Client ${clientId} taken over by a newer connection`);
    }
    this.#live.set(clientId, conn);
    const { scheduler } = this.options;
    conn.openTimer = scheduler.setTimeout(() => {
      if (conn.state === "pending") void this.#disconnect(conn);
    }, this.options.openTimeout ?? 10_000);
    const expiresAt = options.principal?.expiresAt;
    if (expiresAt !== undefined) {
      conn.authTimer = scheduler.setTimeout(() => {
        conn.sink?.close(CloseCode.UNAUTHENTICATED, "credential expired");
        void this.#disconnect(conn);
      }, Math.max(0, expiresAt - scheduler.now()));
    }
    this.options.logger.debug(
      `[Session] Client ${clientId} ${resumed ? "resumed" : "created"} (epoch ${session.epoch})`,
    );
    return conn;
  }

  /** Closes a connection's books on this node: no more deliveries, no timers. */
  #forget(conn: LiveConnection): void {
    conn.state = "closed";
    this.#clearTimers(conn);
    if (conn.authTimer !== undefined) this.options.scheduler.clear(conn.authTimer);
    if (this.#live.get(conn.clientId) === conn) this.#live.delete(conn.clientId);
  }

  #open(
    conn: LiveConnection,
    sink: DeliverySink,
    greet?: (recovery: Recovery) => void,
  ): Promise<GatewayError[]> {
    return this.#locks.run(conn.clientId, async () => {
      if (conn.state !== "pending") {
        sink.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
        return [];
      }
      this.#clearTimers(conn);
      const restart = await this.#leftUnacknowledged(conn);
      greet?.(this.#recovery(conn));
      conn.sink = sink;
      conn.state = "open";
      const failures: GatewayError[] = [];
      for (const [name, params] of [...conn.bound]) {
        const endpoint = this.endpoints.get(name);
        if (!endpoint || !isBindable(endpoint)) continue;
        try {
          // Permissions are checked again: one revoked while away does not come back with the
          // session. The binding goes, broker state included.
          if (!this.#allowed(conn, name, params)) {
            await this.#setSubscription(conn, name, undefined);
            await endpoint.unbindClient(conn.clientId, params);
            conn.bound.delete(name);
            failures.push(
              new GatewayError("FORBIDDEN", `no longer allowed to subscribe to "${name}"; unbound`),
            );
            continue;
          }
          // What this connection does not carry stays queued with its broker.
          if (!conn.carries(name) || restart.has(name)) await endpoint.suspendClient(conn.clientId);
          if (conn.carries(name)) await endpoint.resumeClient(conn.clientId, params);
        } catch (error) {
          const e = GatewayError.from(error, "UPSTREAM_UNAVAILABLE");
          this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e);
          if (conn.carries(name)) conn.unresumed.add(name);
          failures.push(e);
        }
      }
      return failures;
    });
  }

  /**
   * The endpoints whose messages the connection this one took over (on this node) left
   * unacknowledged, once its sink acknowledged what it could (an SSE stream keeping its last
   * events): their consumers restart, so the broker sends those again.
   */
  async #leftUnacknowledged(conn: LiveConnection): Promise<Set<string>> {
    const previous = conn.previous;
    conn.previous = undefined;
    if (!previous) return new Set();
    const settled = previous.sink?.settled?.();
    // A sink that failed to settle kept nothing more: what it left in flight is counted below and
    // comes again from the broker, so its error changes nothing here (the sink logs its own).
    if (settled) await Promise.race([settled.catch(() => {}), this.options.scheduler.sleep(SETTLE_WAIT_MS)]);
    return new Set([...previous.inflight].filter(([, list]) => list.length > 0).map(([name]) => name));
  }

  /** The resume report: what the session lost while away, as far as anyone can tell. */
  #recovery(conn: LiveConnection): Recovery {
    if (!conn.recovery.recovered) return conn.recovery;
    const lost: Record<string, number> = {};
    for (const name of conn.bound.keys()) {
      const count = this.endpoints.get(name) as { takeLosses?(clientId: string): number } | undefined;
      const n = count?.takeLosses?.(conn.clientId) ?? 0;
      if (n > 0) lost[name] = n;
    }
    return Object.keys(lost).length > 0 ? { recovered: false, reason: "dropped", lost } : { recovered: true };
  }

  /**
   * DeliveryHandler: writes an endpoint's message to the client's live connection, if any, and
   * if that connection carries the endpoint. Never throws: whatever the payload, it is formatted
   * in linear time, and a sink that fails is answered "not written" (the broker keeps it).
   * Without acks the message is settled at once; with them, when the client acknowledges it,
   * and at most `maxInFlight` wait per endpoint (past it the endpoint is refused until acks come).
   */
  deliver(clientId: string, endpoint: string, message: InboundMessage): boolean {
    const conn = this.#live.get(clientId);
    if (!conn || conn.state !== "open" || !conn.sink || !conn.carries(endpoint)) return false;
    let inflight: InFlight[] | undefined;
    if (conn.acks) {
      inflight = conn.inflight.get(endpoint);
      if (!inflight) conn.inflight.set(endpoint, inflight = []);
      if (inflight.length >= this.options.maxInFlight) {
        conn.throttled.add(endpoint);
        return false;
      }
    }
    const sequence = (conn.sequences.get(endpoint) ?? 0) + 1;
    const delivery: Delivery = {
      endpoint,
      id: `${conn.epoch}.${sequence}`,
      payload: message.payload,
      prepared: this.#prepare(message.payload),
      meta: message.meta,
      redelivered: message.redelivered,
    };
    const written = this.#write(conn, conn.sink, delivery);
    if (!written) {
      if (conn.state === "open") {
        conn.blocked.add(endpoint);
        this.#watchDrain(conn);
      }
      return false;
    }
    conn.sequences.set(endpoint, sequence);
    this.#messagesOut(endpoint).inc();
    if (inflight) inflight.push({ sequence, settle: message.settle });
    else message.settle?.();
    return true;
  }

  /**
   * A cumulative acknowledgement: settles every in-flight message of `name` up to `id`, in
   * order, and lets a throttled endpoint deliver again. Ids are this connection's own
   * (`<epoch>.<sequence>`): an earlier connection's, or one not yet sent, is a BAD_FRAME.
   */
  #ack(conn: LiveConnection, name: string, id: string): void {
    // A closed connection may still settle what it took: an SSE stream keeps its last events
    // after its client went, and then they must not come again.
    this.endpoint(name);
    if (!conn.acks) throw new GatewayError("BAD_FRAME", "acks need a connection opened with ack=1");
    const dot = id.indexOf(".");
    const sequence = Number(id.slice(dot + 1));
    if (
      dot < 0 || id.slice(0, dot) !== String(conn.epoch) || !Number.isInteger(sequence) || sequence < 1 ||
      sequence > (conn.sequences.get(name) ?? 0)
    ) {
      throw new GatewayError(
        "BAD_FRAME",
        `no delivery ${JSON.stringify(id)} of "${name}" on this connection`,
      );
    }
    const inflight = conn.inflight.get(name) ?? [];
    let settled = 0;
    while (settled < inflight.length && inflight[settled].sequence <= sequence) {
      inflight[settled++].settle?.();
    }
    inflight.splice(0, settled);
    if (conn.state === "open" && conn.throttled.has(name) && inflight.length < this.options.maxInFlight) {
      conn.throttled.delete(name);
      const endpoint = this.endpoints.get(name);
      if (endpoint && isBindable(endpoint)) {
        endpoint.resumeClient(conn.clientId, conn.bound.get(name) ?? {}).catch((e) =>
          this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e)
        );
      }
    }
  }

  #prepare(payload: Uint8Array): PreparedPayload {
    let prepared = this.#prepared.get(payload);
    if (!prepared) {
      prepared = preparePayload(payload, this.options.maxJsonDepth);
      this.#prepared.set(payload, prepared);
    }
    return prepared;
  }

  /**
   * One write to a sink. A sink that throws gets the message once more as base64 (the form
   * nothing can go wrong with); if that throws too, the socket is broken: it is closed (1011),
   * and the message stays with the broker.
   */
  #write(conn: LiveConnection, sink: DeliverySink, delivery: Delivery): boolean {
    try {
      return sink.deliver(delivery);
    } catch (error) {
      this.options.logger.error(
        `[Delivery] Writing to ${conn.clientId} from ${delivery.endpoint} failed; sending it as base64`,
        error,
      );
    }
    try {
      return sink.deliver({
        ...delivery,
        prepared: { json: `"${toBase64(delivery.payload)}"`, encoding: "base64" },
      });
    } catch (error) {
      this.options.logger.error(
        `[Delivery] Connection of ${conn.clientId} cannot be written; closing it`,
        error,
      );
      try {
        sink.close(CloseCode.INTERNAL_ERROR, "internal error");
      } catch {
        // A sink that cannot write may not close either; its socket's own close ends the session.
      }
      return false;
    }
  }

  /** Polls a back-pressured connection; once it drains, the refused consumers resume. */
  #watchDrain(conn: LiveConnection): void {
    if (conn.drainTimer !== undefined) return;
    const { scheduler } = this.options;
    conn.drainTimer = scheduler.setInterval(() => {
      if (conn.state !== "open") return this.#clearTimers(conn);
      if (!conn.sink?.writable()) return;
      scheduler.clear(conn.drainTimer!);
      conn.drainTimer = undefined;
      const endpoints = [...conn.blocked];
      conn.blocked.clear();
      for (const name of endpoints) {
        const endpoint = this.endpoints.get(name);
        if (endpoint && isBindable(endpoint)) {
          endpoint.resumeClient(conn.clientId, conn.bound.get(name) ?? {}).catch((e) =>
            this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e)
          );
        }
      }
    }, this.options.drainInterval ?? 20);
  }

  #clearTimers(conn: LiveConnection): void {
    const { scheduler } = this.options;
    if (conn.openTimer !== undefined) scheduler.clear(conn.openTimer);
    if (conn.drainTimer !== undefined) scheduler.clear(conn.drainTimer);
    conn.openTimer = conn.drainTimer = undefined;
  }

  async #publish(conn: LiveConnection, name: string, payload: Uint8Array, id?: string): Promise<Receipt> {
    this.#requireLive(conn);
    const endpoint = this.endpoint(name);
    const params = conn.bound.get(name) ?? {};
    this.options.policy.checkPublish(conn.clientId, name, payload.length, params, conn.principal);
    if (conn.pendingPublishes >= this.options.maxPendingPublishes) {
      throw GatewayError.rateLimited(
        `${conn.pendingPublishes} publishes of this connection are waiting for the broker`,
        100,
      );
    }
    this.#limit(conn.clientId, payload.length);
    conn.pendingPublishes++;
    try {
      return await this.#publishFor(conn, endpoint, payload, id);
    } finally {
      conn.pendingPublishes--;
    }
  }

  /** The per-client publish rate: a token a publish, and one a byte. */
  #limit(clientId: string, bytes: number): void {
    const wait = this.#publishRate.take(clientId) || this.#byteRate.take(clientId, bytes);
    if (wait > 0) throw GatewayError.rateLimited(`publish rate of ${clientId} exceeded`, wait);
  }

  async #publishFor(
    conn: LiveConnection,
    endpoint: Endpoint,
    payload: Uint8Array,
    id?: string,
  ): Promise<Receipt> {
    const name = endpoint.name;
    // The first publish binds the client (it then hears the endpoint), if it may subscribe.
    if (isBindable(endpoint) && !conn.bound.has(name) && this.#allowed(conn, name, {})) {
      await this.#bind(conn, name, {});
    }
    if (id === undefined) return await this.#send(conn, endpoint, payload);
    const { store, scheduler, dedupeIds, dedupeWindow } = this.options;
    const key = `${name}:${id}`;
    let reserved;
    try {
      reserved = await store.reservePublish(conn.clientId, key, scheduler.now(), dedupeWindow, dedupeIds);
    } catch (error) {
      // Live traffic flows while the store is out of reach: sent without dedupe (a retry of this
      // id may then be sent twice: at least once still holds).
      this.options.logger.warn(
        `[Session] Publish ${id} of ${conn.clientId} sent without dedupe: ${
          GatewayError.from(error).message
        }`,
      );
      return await this.#send(conn, endpoint, payload);
    }
    if (reserved.state === "done") return JSON.parse(reserved.receipt) as Receipt;
    if (reserved.state === "pending") {
      throw new GatewayError(
        "OUTCOME_UNKNOWN",
        `a publish with id ${JSON.stringify(id)} is still under way; retry it for its receipt`,
      );
    }
    let receipt: Receipt | undefined;
    try {
      receipt = await this.#send(conn, endpoint, payload);
      return receipt;
    } finally {
      // A failed publish frees its id, so the retry goes to the broker (at least once).
      await store.completePublish(
        conn.clientId,
        key,
        receipt && JSON.stringify({ meta: receipt.meta ?? {} }),
        scheduler.now(),
        dedupeWindow,
      ).catch((error) =>
        this.options.logger.warn(
          `[Session] Recording publish ${id} of ${conn.clientId} failed: ${GatewayError.from(error).message}`,
        )
      );
    }
  }

  async #send(conn: LiveConnection, endpoint: Endpoint, payload: Uint8Array): Promise<Receipt> {
    const receipt = await endpoint.publish(conn.clientId, { payload }, conn.bound.get(endpoint.name) ?? {});
    this.#messagesIn(endpoint.name).inc();
    return receipt;
  }

  /**
   * Publishes for a client without a connection (HTTP publish): no session, no binding. The
   * params fill the topic template, as a binding's would.
   */
  async publishDetached(
    clientId: string,
    name: string,
    payload: Uint8Array,
    params: Record<string, string> = {},
    principal?: Principal,
  ): Promise<Receipt> {
    const endpoint = this.endpoint(name);
    const subject = principal?.subject;
    if (subject !== undefined) {
      // As a client ID that belongs to another subject: refused, like its connect would be.
      const owner = (await this.options.store.get(clientId))?.subject;
      if (owner !== undefined && owner !== subject) {
        throw new GatewayError("FORBIDDEN", `client ID ${clientId} belongs to another subject`);
      }
    }
    this.options.policy.checkPublish(clientId, name, payload.length, params, principal);
    this.#limit(clientId, payload.length);
    const receipt = await endpoint.publish(clientId, { payload }, params);
    this.#messagesIn(name).inc();
    return receipt;
  }

  async #subscribe(conn: LiveConnection, name: string, params: Record<string, string>): Promise<void> {
    this.#requireLive(conn);
    const endpoint = this.endpoint(name);
    this.options.policy.checkSubscribe(conn.clientId, name, params, conn.principal);
    if (!isBindable(endpoint)) {
      throw new GatewayError("BAD_FRAME", `endpoint "${name}" does not deliver to clients`);
    }
    const bound = conn.bound.get(name);
    if (bound && !sameParams(bound, params)) {
      throw new GatewayError("BAD_FRAME", `already bound to "${name}" with other params; unsubscribe first`);
    }
    if (!bound) await this.#bind(conn, name, params, true);
    else if (conn.unresumed.has(name)) await this.#resume(conn, name);
  }

  /** Resumes a bound endpoint's consumer that failed to at open (its broker was down). */
  #resume(conn: LiveConnection, name: string): Promise<void> {
    return this.#locks.run(conn.clientId, async () => {
      this.#requireOwner(conn);
      const params = conn.bound.get(name);
      const endpoint = this.endpoint(name);
      if (!conn.unresumed.has(name) || !params || !isBindable(endpoint)) return;
      try {
        await endpoint.resumeClient(conn.clientId, params);
      } catch (error) {
        throw GatewayError.from(error, "UPSTREAM_UNAVAILABLE");
      }
      conn.unresumed.delete(name);
    });
  }

  /**
   * Binds once per client-endpoint pair; concurrent callers with the same params share the same
   * bind. One with other params waits for the bind under way, then is judged against its result:
   * with `exact` (a subscribe) a binding with other params is a BAD_FRAME; otherwise (a first
   * publish) any binding will do.
   */
  async #bind(
    conn: LiveConnection,
    name: string,
    params: Record<string, string>,
    exact = false,
  ): Promise<void> {
    const pending = conn.binding.get(name);
    if (pending && sameParams(pending.params, params)) return await pending.done;
    if (pending) {
      // That bind's error is its own caller's to answer; this one is judged by what it left bound.
      await pending.done.catch(() => {});
      const bound = conn.bound.get(name);
      if (bound && exact && !sameParams(bound, params)) {
        throw new GatewayError(
          "BAD_FRAME",
          `already bound to "${name}" with other params; unsubscribe first`,
        );
      }
      if (bound) return;
      return await this.#bind(conn, name, params, exact);
    }
    const bind = this.#locks.run(conn.clientId, async () => {
      this.#requireOwner(conn);
      const bound = conn.bound.get(name);
      if (bound && exact && !sameParams(bound, params)) {
        throw new GatewayError(
          "BAD_FRAME",
          `already bound to "${name}" with other params; unsubscribe first`,
        );
      }
      if (bound) return;
      const endpoint = this.endpoint(name);
      if (!isBindable(endpoint)) return;
      // Debug, not info: the endpoint logs the bind it made at info ("[MQTT] Client ... bound"),
      // and a second console line per bind cost more than the rest of the hub's bind work.
      this.options.logger.debug(
        `[Binding] Creating endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
      // Recorded before binding (an epoch-checked write, so only the session's owner gets past
      // it): a crash in between leaves a record whose (idempotent) unbind cleans up; the other
      // order would leak broker resources nothing knows about.
      await this.#setSubscription(conn, name, {
        endpoint: name,
        params,
        boundAt: this.options.scheduler.now(),
      });
      await endpoint.bindClient(conn.clientId, params);
      conn.bound.set(name, params);
    }).finally(() => {
      if (conn.binding.get(name)?.done === bind) conn.binding.delete(name);
    });
    conn.binding.set(name, { params, done: bind });
    return await bind;
  }

  /**
   * Unbinds now, fenced like a bind: under the client's lock, only if this connection is still
   * the live one here, and only after an epoch-checked store write shows it still owns the
   * session (another node may have taken it over); then the broker state goes, then the record.
   * A stale connection's unsubscribe fails with FORBIDDEN and touches nothing.
   */
  async #unsubscribe(conn: LiveConnection, name: string): Promise<void> {
    this.#requireLive(conn);
    const endpoint = this.endpoint(name);
    await this.#locks.run(conn.clientId, async () => {
      this.#requireOwner(conn);
      const params = conn.bound.get(name);
      if (!params || !isBindable(endpoint)) return;
      const subscription = { endpoint: name, params, boundAt: this.options.scheduler.now() };
      await this.#setSubscription(conn, name, subscription);
      await endpoint.unbindClient(conn.clientId, params);
      conn.bound.delete(name);
      conn.blocked.delete(name);
      conn.unresumed.delete(name);
      await this.#setSubscription(conn, name, undefined);
      this.options.logger.info(
        `[Binding] Removed endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
    });
  }

  async #setSubscription(
    conn: LiveConnection,
    name: string,
    subscription: Subscription | undefined,
  ): Promise<void> {
    if (!await this.options.store.setSubscription(conn.clientId, conn.epoch, name, subscription)) {
      throw new GatewayError("FORBIDDEN", "session was taken over by a newer connection");
    }
  }

  /**
   * The connection's socket is gone: mark the session disconnected with its reconnection
   * deadline and suspend its consumers so the brokers queue. A connection superseded by a
   * newer one on this node changes nothing: the newer one owns the session and the consumers.
   */
  #disconnect(conn: LiveConnection): Promise<void> {
    return this.#locks.run(conn.clientId, async () => {
      if (conn.state === "closed") return;
      const owner = this.#live.get(conn.clientId) === conn;
      this.#forget(conn);
      if (!owner) return;
      const { store, scheduler, reconnectionWindow, logger } = this.options;
      try {
        const now = scheduler.now();
        await store.release(conn.clientId, conn.epoch, now, now + reconnectionWindow);
      } catch (error) {
        logger.error(`[Session] Could not mark ${conn.clientId} disconnected`, error);
      } finally {
        await this.#suspendAll(conn);
      }
      logger.debug(`[Session] Client ${conn.clientId} disconnected`);
    });
  }

  async #suspendAll(conn: LiveConnection): Promise<void> {
    for (const name of conn.bound.keys()) {
      const endpoint = this.endpoints.get(name);
      if (!endpoint || !isBindable(endpoint)) continue;
      try {
        await endpoint.suspendClient(conn.clientId);
      } catch (error) {
        this.options.logger.error(`[Session] Suspend of ${conn.clientId} on ${name} failed`, error);
      }
    }
  }

  /**
   * Cleanup of one expired session: claims it (one node wins), unbinds every subscription,
   * deletes it. Resolves whether this call cleaned it up. A session live on this node is renewed
   * first (its lease lapsed while the store was out of reach); only if that renewal is refused
   * does the connection let go and the cleanup go on. Nothing here waits on the client's lock
   * while holding it.
   */
  expire(clientId: string): Promise<boolean> {
    return this.#locks.run(clientId, async () => {
      const { store, scheduler, logger } = this.options;
      const live = this.#live.get(clientId);
      if (live) {
        const [lost] = await this.#renew([live]);
        if (!lost) {
          logger.warn(`[CleanupWorker] Client ${clientId} is live on this node; lease renewed`);
          return false;
        }
        await this.#release(clientId, live.epoch, lost.reason);
      }
      const claimed = await store.claimExpired(clientId, scheduler.now(), this.options.claimTtl ?? 60_000);
      if (!claimed) return false;
      return await this.#expireSession(claimed, "[CleanupWorker]");
    });
  }

  /** Unbinds everything of an expired session and deletes it; false if any step failed. */
  async #expireSession(session: Session, tag: string): Promise<boolean> {
    const { logger, store } = this.options;
    // A bucket is swept only by a later publish; after the last one it would stay for good.
    this.#publishRate.forget(session.clientId);
    this.#byteRate.forget(session.clientId);
    for (const sub of session.subscriptions) {
      const endpoint = this.endpoints.get(sub.endpoint);
      if (!endpoint) {
        logger.warn(`${tag} Client ${session.clientId} was bound to unknown endpoint ${sub.endpoint}`);
        continue;
      }
      if (!isBindable(endpoint)) continue;
      try {
        await endpoint.unbindClient(session.clientId, sub.params);
      } catch (error) {
        // Left claimed: once the claim lapses, a cleanup run tries again.
        logger.error(`${tag} Unbind of ${session.clientId} from ${sub.endpoint} failed`, error);
        return false;
      }
      logger.info(`${tag} Unbound client ${session.clientId} from endpoint ${sub.endpoint}`);
    }
    return await store.delete(session.clientId, session.epoch);
  }

  /**
   * Graceful shutdown: refuses new connections, closes every live one with 1001 and marks its
   * session disconnected (the window starts now), suspending its consumers.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    if (this.#renewal !== undefined) this.options.scheduler.clear(this.#renewal);
    this.#renewal = undefined;
    await this.#renewing;
    const connections = [...this.#live.values()];
    for (const conn of connections) {
      conn.sink?.close(CloseCode.GOING_AWAY, "server shutting down");
    }
    await Promise.all(connections.map((conn) => this.#disconnect(conn)));
  }

  /** Whether the connection's principal may subscribe to `name` with `params`. */
  #allowed(conn: LiveConnection, name: string, params: Record<string, string>): boolean {
    try {
      this.options.policy.checkSubscribe(conn.clientId, name, params, conn.principal);
      return true;
    } catch {
      return false;
    }
  }

  /** A closed or superseded connection acts no more: its session belongs to someone else. */
  #requireLive(conn: LiveConnection): void {
    if (conn.state === "closed") throw new GatewayError("FORBIDDEN", "connection is closed");
  }

  /** Under the client's lock: this connection still holds the session on this node. */
  #requireOwner(conn: LiveConnection): void {
    this.#requireLive(conn);
    if (this.#live.get(conn.clientId) !== conn) {
      throw new GatewayError("FORBIDDEN", "session was taken over by a newer connection");
    }
  }
}

function sameParams(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
