/**
 * This node's hold on the sessions it has connected: one lease per session in the store,
 * renewed every third of its length. A session that moved on without this node (taken over
 * elsewhere, expired) is handed to `release`, which lets go of its connection.
 */
import type { ConnectionRegistry, Registered } from "./connection-registry.ts";
import { GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Scheduler, TimerId } from "./scheduler.ts";
import type { Principal } from "./auth.ts";
import type { LostLease, Session, SessionStore } from "./session.ts";

/** Store round trips a connect tries before it gives up (the session kept changing). */
const TAKE_ATTEMPTS = 5;
/** Leases renewed per store round trip. */
const RENEW_BATCH = 1000;

/** A session taken by a connect: `resumed` within its window; `expired` if an older one was past it. */
export interface Taken {
  session: Session;
  resumed: boolean;
  expired: boolean;
}

/** What a lease is held for: a connection holding a session's epoch. */
export interface Leased extends Registered {
  readonly epoch: number;
}

export interface LeaseOptions {
  store: SessionStore;
  nodeId: string;
  /** Most sessions one authenticated subject may hold. */
  sessionsPerSubject: number;
  scheduler: Scheduler;
  logger: Logger;
  /** How long a lease lasts without renewal, in ms. */
  lease: number;
  /** How long a disconnected session keeps its broker resources, in ms. */
  reconnectionWindow: number;
}

export class Leases<C extends Leased> {
  #renewal?: TimerId;
  #renewing?: Promise<void>;

  private readonly options: LeaseOptions;
  private readonly connections: ConnectionRegistry<C>;
  /** Lets go of a connection whose session moved on; runs under the client's lock. */
  private readonly release: (clientId: string, epoch: number, reason: LostLease["reason"]) => Promise<void>;
  constructor(
    options: LeaseOptions,
    connections: ConnectionRegistry<C>,
    release: (clientId: string, epoch: number, reason: LostLease["reason"]) => Promise<void>,
  ) {
    this.options = options;
    this.connections = connections;
    this.release = release;
  }

  /**
   * Takes the session of `clientId` for this node (under the client's lock): resumes it within
   * its window, creates it if there is none, and after its window has `cleanUp` end it first
   * (resolving the epoch it deleted, if it did), then starts a fresh one. Throws FORBIDDEN for a
   * session of another subject, RATE_LIMITED past `sessionsPerSubject`, STORE_UNAVAILABLE when
   * the session kept changing.
   */
  async take(
    clientId: string,
    principal: Principal | undefined,
    cleanUp: (now: number) => Promise<number | undefined>,
  ): Promise<Taken> {
    const { store, scheduler, lease, reconnectionWindow, nodeId, sessionsPerSubject } = this.options;
    let lastEpoch = 0;
    let expired = false;
    for (let attempt = 0; attempt < TAKE_ATTEMPTS; attempt++) {
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
        subject: principal?.subject,
        maxSessions: principal ? sessionsPerSubject : undefined,
      });
      if (taken.outcome === "forbidden") {
        throw new GatewayError("FORBIDDEN", `client ID ${clientId} belongs to another subject`);
      }
      if (taken.outcome === "limited") {
        throw new GatewayError(
          "RATE_LIMITED",
          `${principal!.subject} holds ${sessionsPerSubject} sessions already (policy.sessions_per_subject)`,
        );
      }
      if (taken.outcome !== "expired") {
        return { session: taken.session, resumed: taken.outcome === "resumed", expired };
      }
      expired = true;
      lastEpoch = await cleanUp(now) ?? lastEpoch;
    }
    throw new GatewayError(
      "STORE_UNAVAILABLE",
      `session of ${clientId} is being cleaned up or kept changing; retry shortly`,
    );
  }

  /** Starts renewing; `alsoEachTime` runs at every renewal (housekeeping on the same timer). */
  start(alsoEachTime?: () => void): void {
    this.#renewal ??= this.options.scheduler.setInterval(() => {
      this.#renewing ??= this.renewAll().finally(() => (this.#renewing = undefined));
      alsoEachTime?.();
    }, Math.max(100, Math.floor(this.options.lease / 3)));
  }

  /** Stops renewing, once a renewal under way finished. */
  async stop(): Promise<void> {
    if (this.#renewal !== undefined) this.options.scheduler.clear(this.#renewal);
    this.#renewal = undefined;
    await this.#renewing;
  }

  /**
   * Renews the lease of every session this node holds connected, in batches of one store round
   * trip each. A session that moved on loses its connection here: closed with 4409 when another
   * connection took it over, with 4410 when it expired (the cleanup worker is ending it), its
   * consumers released. Store failures are logged; the leases run on until the next renewal.
   * Never called under a client's lock: releasing takes it.
   */
  async renewAll(): Promise<void> {
    const conns = this.connections.all();
    for (let i = 0; i < conns.length; i += RENEW_BATCH) {
      const batch = conns.slice(i, i + RENEW_BATCH);
      let lost: LostLease[];
      try {
        lost = await this.renew(batch);
      } catch (error) {
        this.options.logger.warn(
          `[Session] Lease renewal failed; connections keep flowing: ${GatewayError.from(error).message}`,
        );
        return;
      }
      const epochs = new Map(batch.map((c) => [c.clientId, c.epoch]));
      for (const { clientId, reason } of lost) {
        await this.connections.run(clientId, () => this.release(clientId, epochs.get(clientId)!, reason));
      }
    }
  }

  /** Renews the leases of `conns` in one store round trip; resolves the ones refused. */
  renew(conns: readonly C[]): Promise<LostLease[]> {
    const { store, scheduler, lease, reconnectionWindow } = this.options;
    const now = scheduler.now();
    return store.renew(
      conns.map((c) => ({ clientId: c.clientId, epoch: c.epoch })),
      now,
      now + lease,
      now + lease + reconnectionWindow,
    );
  }

  /**
   * The connection's socket went: its session is marked disconnected, with its reconnection
   * deadline from now. Rejects when the store cannot be written.
   */
  async letGo(conn: C): Promise<void> {
    const { store, scheduler, reconnectionWindow } = this.options;
    const now = scheduler.now();
    await store.release(conn.clientId, conn.epoch, now, now + reconnectionWindow);
  }

  /**
   * A consumer of `clientId` dropped: if the store says another node took the client over (or
   * the session is gone), let go of it here. Failures to ask are logged.
   */
  checkOwnership(conn: C): void {
    const { clientId, epoch } = conn;
    this.options.store.get(clientId).then((session) => {
      if (session && session.epoch === epoch) return;
      return this.connections.run(
        clientId,
        () => this.release(clientId, epoch, session ? "taken" : "expired"),
      );
    }).catch((error) =>
      this.options.logger.warn(
        `[Session] Ownership check of ${clientId} failed: ${GatewayError.from(error).message}`,
      )
    );
  }
}
