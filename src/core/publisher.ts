/**
 * Everything between a client's publish and its broker: the policy check, every rate limit of
 * the gateway (publishes and bytes per client, new connections per subject and per address,
 * the client that ignores RATE_LIMITED), the cap on publishes waiting for their broker, the
 * bind on a first publish, and the dedupe of publish ids across the session's connections.
 */
import type { Principal } from "./auth.ts";
import { requireLive } from "./connection-registry.ts";
import type { Registered } from "./connection-registry.ts";
import type { Endpoint, Receipt } from "./endpoint.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import { GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { CounterSeries } from "./metrics.ts";
import type { Policy } from "./policy.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Scheduler } from "./scheduler.ts";
import type { SessionStore } from "./session.ts";

export interface PublisherOptions {
  store: SessionStore;
  scheduler: Scheduler;
  policy: Policy;
  logger: Logger;
  /** Publish ids remembered per session, and for how long (ms), so a retry is not sent twice. */
  dedupeIds: number;
  dedupeWindow: number;
  /** Per client: publishes and payload bytes a second (bursts of twice as many). */
  publishesPerSecond: number;
  publishBytesPerSecond: number;
  /** Publishes of one connection waiting for their broker at once. */
  maxPendingPublishes: number;
  /** New connections a second per subject, and per client address (bursts of twice as many). */
  connectionsPerSecond: number;
  connectionsPerSecondPerAddress: number;
  /** Counts a message taken by an endpoint's broker (mediation_messages_in_total). */
  messagesIn: (endpoint: string) => CounterSeries;
}

/** What the publisher needs of a connection. */
export interface Publishing extends Registered {
  readonly principal?: Principal;
  readonly bound: ReadonlyMap<string, Record<string, string>>;
}

/** Binds a connection to an endpoint on its first publish, if it may subscribe (see Bindings). */
export type BindOnFirstPublish<C> = (conn: C, endpoint: Endpoint) => Promise<void>;

export class Publisher<C extends Publishing> {
  #publishRate: RateLimiter;
  #byteRate: RateLimiter;
  #connectionRate: RateLimiter;
  #addressRate: RateLimiter;
  /** Publishes of each connection waiting for their broker (the pending cap). */
  #pending = new WeakMap<C, number>();

  private readonly options: PublisherOptions;
  private readonly endpoints: EndpointSet;
  private readonly bindFirst: BindOnFirstPublish<C>;
  constructor(
    options: PublisherOptions,
    endpoints: EndpointSet,
    bindFirst: BindOnFirstPublish<C>,
  ) {
    this.options = options;
    this.endpoints = endpoints;
    this.bindFirst = bindFirst;
    const { scheduler, publishesPerSecond, publishBytesPerSecond } = options;
    this.#publishRate = new RateLimiter(scheduler, publishesPerSecond, publishesPerSecond * 2);
    this.#byteRate = new RateLimiter(scheduler, publishBytesPerSecond, publishBytesPerSecond * 2);
    const perSubject = options.connectionsPerSecond;
    this.#connectionRate = new RateLimiter(scheduler, perSubject, perSubject * 2);
    const perAddress = options.connectionsPerSecondPerAddress;
    this.#addressRate = new RateLimiter(scheduler, perAddress, perAddress * 2);
  }

  /**
   * New connections a second, per address and per subject: one client cannot flood the store
   * and the brokers with sessions. Throws RATE_LIMITED.
   */
  admitConnection(address: string | undefined, subject: string | undefined): void {
    const byAddress = address === undefined ? 0 : this.#addressRate.take(address);
    if (byAddress > 0) throw GatewayError.rateLimited(`too many connections from ${address}`, byAddress);
    const bySubject = subject !== undefined ? this.#connectionRate.take(subject) : 0;
    if (bySubject > 0) throw GatewayError.rateLimited(`too many connections for ${subject}`, bySubject);
  }

  /** A meter for one socket: whether its client keeps publishing past RATE_LIMITED answers. */
  refusals(): Refusals {
    return new Refusals(this.options.scheduler, this.options.publishesPerSecond);
  }

  /** A connection's publish (see Connection.publish). */
  async publish(conn: C, name: string, payload: Uint8Array, id?: string): Promise<Receipt> {
    requireLive(conn);
    const endpoint = this.endpoints.get(name);
    const params = conn.bound.get(name) ?? {};
    this.options.policy.checkPublish(conn.clientId, name, payload.length, params, conn.principal);
    const pending = this.#pending.get(conn) ?? 0;
    if (pending >= this.options.maxPendingPublishes) {
      throw GatewayError.rateLimited(
        `${pending} publishes of this connection are waiting for the broker`,
        100,
      );
    }
    this.#limit(conn.clientId, payload.length);
    this.#pending.set(conn, pending + 1);
    try {
      return await this.#publishFor(conn, endpoint, payload, id);
    } finally {
      this.#pending.set(conn, this.#pending.get(conn)! - 1);
    }
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
    const endpoint = this.endpoints.get(name);
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
    this.options.messagesIn(name).inc();
    return receipt;
  }

  /** Drops the rate buckets of a client gone for good (nothing else would ever drop them). */
  forget(clientId: string): void {
    this.#publishRate.forget(clientId);
    this.#byteRate.forget(clientId);
  }

  /** Drops the buckets of clients gone quiet (an HTTP publisher has no session that expires). */
  sweep(): void {
    this.#publishRate.sweep();
    this.#byteRate.sweep();
  }

  /** Per-client buckets kept now (see Hub.retained). */
  retained(): { publishBuckets: number; byteBuckets: number } {
    return { publishBuckets: this.#publishRate.size, byteBuckets: this.#byteRate.size };
  }

  /** The per-client publish rate: a token a publish, and one a byte. */
  #limit(clientId: string, bytes: number): void {
    const wait = this.#publishRate.take(clientId) || this.#byteRate.take(clientId, bytes);
    if (wait > 0) throw GatewayError.rateLimited(`publish rate of ${clientId} exceeded`, wait);
  }

  async #publishFor(conn: C, endpoint: Endpoint, payload: Uint8Array, id?: string): Promise<Receipt> {
    await this.bindFirst(conn, endpoint);
    if (id === undefined) return await this.#send(conn, endpoint, payload);
    const { store, scheduler, dedupeIds, dedupeWindow, logger } = this.options;
    const key = `${endpoint.name}:${id}`;
    let reserved;
    try {
      reserved = await store.reservePublish(conn.clientId, key, scheduler.now(), dedupeWindow, dedupeIds);
    } catch (error) {
      // Live traffic flows while the store is out of reach: sent without dedupe (a retry of this
      // id may then be sent twice: at least once still holds).
      logger.warn(
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
        logger.warn(
          `[Session] Recording publish ${id} of ${conn.clientId} failed: ${GatewayError.from(error).message}`,
        )
      );
    }
  }

  async #send(conn: C, endpoint: Endpoint, payload: Uint8Array): Promise<Receipt> {
    const receipt = await endpoint.publish(conn.clientId, { payload }, conn.bound.get(endpoint.name) ?? {});
    this.options.messagesIn(endpoint.name).inc();
    return receipt;
  }
}

/**
 * One socket's RATE_LIMITED answers within a second. A client refused more than its publish
 * rate (`policy.publishes_per_second`) times in a second ignores `retry_after_ms` and sends at
 * least twice its rate, and each refusal costs the gateway as much as a publish: it is closed.
 */
export class Refusals {
  #refused = 0;
  #since = -Infinity;

  private readonly scheduler: Scheduler;
  private readonly perSecond: number;
  constructor(scheduler: Scheduler, perSecond: number) {
    this.scheduler = scheduler;
    this.perSecond = perSecond;
  }

  /** Counts one refusal; true once the client is past its rate of them. */
  keepsPushing(): boolean {
    const now = this.scheduler.now();
    if (now - this.#since >= 1000) {
      this.#since = now;
      this.#refused = 0;
    }
    return ++this.#refused > this.perSecond;
  }
}
