/**
 * The Hub: routes client messages to endpoints and endpoint deliveries to live connections, and
 * runs the session lifecycle of DESIGN.md section 4. It knows no broker and no runtime.
 *
 * Every lifecycle step of one client (connect, open, bind, disconnect, expiry) runs under that
 * client's lock, so on one node they never interleave. Across nodes the session's epoch fences
 * them: each connect increments it, and every write is a compare-and-set on it.
 */
import { Connection } from "./connection.ts";
import { isBindable } from "./endpoint.ts";
import type { DeliveryHandler, Endpoint, InboundMessage, Receipt } from "./endpoint.ts";
import { CloseCode, GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Counter, Metrics } from "./metrics.ts";
import { KeyedMutex } from "./mutex.ts";
import type { Policy } from "./policy.ts";
import type { Scheduler, TimerId } from "./scheduler.ts";
import type { Session, SessionStore, Subscription } from "./session.ts";
import type { DeliverySink } from "./sink.ts";

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
}

const CONNECT_ATTEMPTS = 5;
/** Leases renewed per store round trip. */
const RENEW_BATCH = 1000;

export class Hub implements DeliveryHandler {
  readonly endpoints: ReadonlyMap<string, Endpoint>;
  readonly options: HubOptions;
  #live = new Map<string, Connection>();
  #locks = new KeyedMutex();
  #stopping = false;
  #renewal?: TimerId;
  #renewing?: Promise<void>;
  #messagesIn: Counter;
  #messagesOut: Counter;
  #errors: Counter;

  constructor(options: HubOptions) {
    this.options = options;
    this.endpoints = new Map(options.endpoints.map((e) => [e.name, e]));
    const m = options.metrics;
    this.#messagesIn = m.counter("mediation_messages_in_total", "Messages published by clients");
    this.#messagesOut = m.counter("mediation_messages_out_total", "Messages delivered to clients");
    this.#errors = m.counter("mediation_errors_total", "Errors answered to clients, by code");
    m.gauge("mediation_connections", "Live client connections on this node", () => {
      const counts = new Map<string, number>();
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
    }, Math.max(100, Math.floor(this.options.lease / 3)));
  }

  /**
   * Renews the lease of every session this node holds connected, in batches of one store round
   * trip each. A session that moved on (another node took the client over) loses its connection
   * here: closed with 4409, its consumers released. Store failures are logged; the leases run on
   * until the next renewal.
   */
  async renewLeases(): Promise<void> {
    const { store, scheduler, lease, reconnectionWindow, logger } = this.options;
    const conns = [...this.#live.values()];
    for (let i = 0; i < conns.length; i += RENEW_BATCH) {
      const batch = conns.slice(i, i + RENEW_BATCH);
      const leaseUntil = scheduler.now() + lease;
      let lost: string[];
      try {
        lost = await store.renew(
          batch.map((c) => ({ clientId: c.clientId, epoch: c.epoch })),
          leaseUntil,
          leaseUntil + reconnectionWindow,
        );
      } catch (error) {
        logger.warn(
          `[Session] Lease renewal failed; connections keep flowing: ${GatewayError.from(error).message}`,
        );
        return;
      }
      const epochs = new Map(batch.map((c) => [c.clientId, c.epoch]));
      for (const id of lost) await this.#release(id, epochs.get(id)!);
    }
  }

  /** DeliveryHandler: a consumer dropped; if another node took the client over, let go of it. */
  consumerDropped(clientId: string): void {
    const conn = this.#live.get(clientId);
    if (!conn) return;
    this.options.store.get(clientId).then((session) => {
      if (!session || session.epoch !== conn.epoch) return this.#release(clientId, conn.epoch);
    }).catch((error) =>
      this.options.logger.warn(
        `[Session] Ownership check of ${clientId} failed: ${GatewayError.from(error).message}`,
      )
    );
  }

  /**
   * Another connection (on another node) owns the session now: close ours with 4409 and take its
   * consumers offline, touching neither the store nor broker-side state, which are the new
   * owner's.
   */
  #release(clientId: string, epoch: number): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const conn = this.#live.get(clientId);
      if (!conn || conn.epoch !== epoch) return;
      conn.state = "closed";
      this.#clearTimer(conn);
      this.#live.delete(clientId);
      conn.sink?.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
      await this.#suspendAll(conn);
      this.options.logger.info(`[Session] Client ${clientId} taken over elsewhere; connection released`);
    });
  }

  /** Names of the configured endpoints, in configuration order. */
  get endpointNames(): string[] {
    return [...this.endpoints.keys()];
  }

  /** Live connections on this node. */
  get connectionCount(): number {
    return this.#live.size;
  }

  /** Counts an error answered to a client (for /metrics). */
  recordError(error: GatewayError): void {
    this.#errors.inc({ code: error.code });
  }

  /**
   * Takes the session for `clientId`: resumes it within its window, starts fresh after it,
   * creates it if there is none, and takes it over from an older connection (closed with 4409).
   * The connection receives nothing until `open` attaches its socket.
   */
  connect(clientId: string, transport: string): Promise<Connection> {
    if (this.#stopping) {
      return Promise.reject(new GatewayError("UPSTREAM_UNAVAILABLE", "gateway is shutting down"));
    }
    return this.#locks.run(clientId, async () => {
      const { store, scheduler, lease, reconnectionWindow, nodeId } = this.options;
      let lastEpoch = 0;
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
        });
        if (taken.outcome !== "expired") {
          return this.#attach(taken.session, taken.outcome === "resumed", transport);
        }
        // Past its window: cleaned up first, claimed like the cleanup worker does, so the two
        // never unbind one session at once.
        const claimed = await store.claimExpired(clientId, now, this.options.claimTtl ?? 60_000);
        if (claimed && await this.#expireSession(claimed, "[Session]")) lastEpoch = claimed.epoch;
      }
      throw new GatewayError(
        "STORE_UNAVAILABLE",
        `session of ${clientId} is being cleaned up or kept changing; retry shortly`,
      );
    });
  }

  #attach(session: Session, resumed: boolean, transport: string): Connection {
    const { clientId } = session;
    const older = this.#live.get(clientId);
    if (older) {
      // Same node: the consumers stay bound and simply deliver to the newer connection.
      older.state = "closed";
      this.#clearTimer(older);
      older.sink?.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
      this.options.logger.info(`[Session] Client ${clientId} taken over by a newer connection`);
    }
    const conn = new Connection(
      this,
      clientId,
      session.epoch,
      resumed,
      transport,
      session.subscriptions.map((s) => [s.endpoint, s.params]),
    );
    this.#live.set(clientId, conn);
    conn.timer = this.options.scheduler.setTimeout(() => {
      if (conn.state === "pending") void this.disconnect(conn);
    }, this.options.openTimeout ?? 10_000);
    this.options.logger.debug(
      `[Session] Client ${clientId} ${resumed ? "resumed" : "created"} (epoch ${session.epoch})`,
    );
    return conn;
  }

  /** See `Connection.open`. */
  open(conn: Connection, sink: DeliverySink): Promise<GatewayError[]> {
    return this.#locks.run(conn.clientId, async () => {
      if (conn.state !== "pending") {
        sink.close(CloseCode.TAKEN_OVER, "session taken over by a newer connection");
        return [];
      }
      this.#clearTimer(conn);
      conn.sink = sink;
      conn.state = "open";
      const failures: GatewayError[] = [];
      for (const [name, params] of conn.bound) {
        const endpoint = this.endpoints.get(name);
        if (!endpoint || !isBindable(endpoint)) continue;
        try {
          await endpoint.resumeClient(conn.clientId, params);
        } catch (error) {
          const e = GatewayError.from(error, "UPSTREAM_UNAVAILABLE");
          this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e);
          failures.push(e);
        }
      }
      return failures;
    });
  }

  /** DeliveryHandler: writes an endpoint's message to the client's live connection, if any. */
  deliver(clientId: string, endpoint: string, message: InboundMessage): boolean {
    const conn = this.#live.get(clientId);
    if (!conn || conn.state !== "open" || !conn.sink) return false;
    const sequence = (conn.sequences.get(endpoint) ?? 0) + 1;
    const written = conn.sink.deliver({
      endpoint,
      id: `${conn.epoch}.${sequence}`,
      payload: message.payload,
      meta: message.meta,
    });
    if (!written) {
      conn.blocked.add(endpoint);
      this.#watchDrain(conn);
      return false;
    }
    conn.sequences.set(endpoint, sequence);
    this.#messagesOut.inc({ endpoint });
    return true;
  }

  /** Polls a back-pressured connection; once it drains, the refused consumers resume. */
  #watchDrain(conn: Connection): void {
    if (conn.timer !== undefined) return;
    const { scheduler } = this.options;
    conn.timer = scheduler.setInterval(() => {
      if (conn.state !== "open") return this.#clearTimer(conn);
      if (!conn.sink?.writable()) return;
      this.#clearTimer(conn);
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

  #clearTimer(conn: Connection): void {
    if (conn.timer !== undefined) this.options.scheduler.clear(conn.timer);
    conn.timer = undefined;
  }

  /** See `Connection.publish`. */
  async publish(
    conn: Connection,
    name: string,
    payload: Uint8Array,
  ): Promise<Receipt> {
    this.#requireLive(conn);
    this.options.policy.checkPublish(conn.clientId, name, payload.length);
    const endpoint = this.#endpoint(name);
    if (isBindable(endpoint) && !conn.bound.has(name)) await this.#bind(conn, name, {});
    const receipt = await endpoint.publish(conn.clientId, { payload }, conn.bound.get(name) ?? {});
    this.#messagesIn.inc({ endpoint: name });
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
  ): Promise<Receipt> {
    this.options.policy.checkPublish(clientId, name, payload.length);
    this.options.policy.checkSubscribe(clientId, name, params);
    const receipt = await this.#endpoint(name).publish(clientId, { payload }, params);
    this.#messagesIn.inc({ endpoint: name });
    return receipt;
  }

  /** See `Connection.subscribe`. */
  async subscribe(conn: Connection, name: string, params: Record<string, string>): Promise<void> {
    this.#requireLive(conn);
    this.options.policy.checkSubscribe(conn.clientId, name, params);
    const endpoint = this.#endpoint(name);
    if (!isBindable(endpoint)) {
      throw new GatewayError("BAD_FRAME", `endpoint "${name}" does not deliver to clients`);
    }
    const bound = conn.bound.get(name);
    if (bound && !sameParams(bound, params)) {
      throw new GatewayError("BAD_FRAME", `already bound to "${name}" with other params; unsubscribe first`);
    }
    if (!bound) await this.#bind(conn, name, params);
  }

  /** Binds once per client-endpoint pair; concurrent callers share the same bind. */
  #bind(conn: Connection, name: string, params: Record<string, string>): Promise<void> {
    const pending = conn.binding.get(name);
    if (pending) return pending;
    const bind = this.#locks.run(conn.clientId, async () => {
      this.#requireLive(conn);
      if (conn.bound.has(name)) return;
      const endpoint = this.#endpoint(name);
      if (!isBindable(endpoint)) return;
      this.options.logger.info(
        `[Binding] Creating endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
      // Recorded before binding: a crash in between leaves a record whose (idempotent) unbind
      // cleans up; the other order would leak broker resources nothing knows about.
      await this.#setSubscription(conn, name, {
        endpoint: name,
        params,
        boundAt: this.options.scheduler.now(),
      });
      await endpoint.bindClient(conn.clientId, params);
      conn.bound.set(name, params);
    }).finally(() => conn.binding.delete(name));
    conn.binding.set(name, bind);
    return bind;
  }

  /** See `Connection.unsubscribe`. */
  unsubscribe(conn: Connection, name: string): Promise<void> {
    this.#requireLive(conn);
    const endpoint = this.#endpoint(name);
    return this.#locks.run(conn.clientId, async () => {
      const params = conn.bound.get(name);
      if (!params || !isBindable(endpoint)) return;
      await endpoint.unbindClient(conn.clientId, params);
      conn.bound.delete(name);
      conn.blocked.delete(name);
      await this.#setSubscription(conn, name, undefined);
      this.options.logger.info(
        `[Binding] Removed endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
    });
  }

  async #setSubscription(
    conn: Connection,
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
  disconnect(conn: Connection): Promise<void> {
    return this.#locks.run(conn.clientId, async () => {
      if (conn.state === "closed") return;
      conn.state = "closed";
      this.#clearTimer(conn);
      if (this.#live.get(conn.clientId) !== conn) return;
      this.#live.delete(conn.clientId);
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

  async #suspendAll(conn: Connection): Promise<void> {
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
   * deletes it. Resolves whether this call cleaned it up.
   */
  expire(clientId: string): Promise<boolean> {
    return this.#locks.run(clientId, async () => {
      const { store, scheduler } = this.options;
      const claimed = await store.claimExpired(clientId, scheduler.now(), this.options.claimTtl ?? 60_000);
      if (!claimed) return false;
      const live = this.#live.get(clientId);
      if (live?.epoch === claimed.epoch) {
        // Ours and live: the lease lapsed while the store was out of reach. Renewed, it is no
        // longer expired, so the claim is moot.
        this.options.logger.warn(`[CleanupWorker] Client ${clientId} is live on this node; lease renewed`);
        await this.renewLeases();
        return false;
      }
      return await this.#expireSession(claimed, "[CleanupWorker]");
    });
  }

  /** Unbinds everything of an expired session and deletes it; false if any step failed. */
  async #expireSession(session: Session, tag: string): Promise<boolean> {
    const { logger, store } = this.options;
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
    await Promise.all(connections.map((conn) => this.disconnect(conn)));
  }

  /** A closed or superseded connection acts no more: its session belongs to someone else. */
  #requireLive(conn: Connection): void {
    if (conn.state === "closed") throw new GatewayError("FORBIDDEN", "connection is closed");
  }

  #endpoint(name: string): Endpoint {
    const endpoint = this.endpoints.get(name);
    if (!endpoint) throw new GatewayError("UNKNOWN_ENDPOINT", `no endpoint named "${name}"`);
    return endpoint;
  }
}

function sameParams(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
