/**
 * The end of a session past its reconnection window: claimed in the store (one node wins),
 * every subscription unbound broker-side, the record deleted. Run by the cleanup worker
 * (`expire`) and by a connect that finds its session expired (`cleanUp`), under the client's
 * lock, so the two never unbind one session at once.
 */
import type { ConnectionRegistry } from "./connection-registry.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import type { Leased, Leases } from "./leases.ts";
import type { Logger } from "./logger.ts";
import type { Scheduler } from "./scheduler.ts";
import type { LostLease, Session, SessionStore } from "./session.ts";

export interface ExpiryOptions {
  store: SessionStore;
  scheduler: Scheduler;
  logger: Logger;
  /** How long a cleanup claim holds before another node may retry a crashed cleanup, in ms. */
  claimTtl: number;
}

export class Expiry<C extends Leased> {
  private readonly options: ExpiryOptions;
  private readonly endpoints: EndpointSet;
  private readonly connections: ConnectionRegistry<C>;
  private readonly leases: Leases<C>;
  /** Lets go of a live connection whose lease was refused; runs under the client's lock. */
  private readonly release: (clientId: string, epoch: number, reason: LostLease["reason"]) => Promise<void>;
  /** Drops what other collaborators keep for a client gone for good (its rate buckets). */
  private readonly forget: (clientId: string) => void;
  constructor(
    options: ExpiryOptions,
    endpoints: EndpointSet,
    connections: ConnectionRegistry<C>,
    leases: Leases<C>,
    release: (clientId: string, epoch: number, reason: LostLease["reason"]) => Promise<void>,
    forget: (clientId: string) => void,
  ) {
    this.options = options;
    this.endpoints = endpoints;
    this.connections = connections;
    this.leases = leases;
    this.release = release;
    this.forget = forget;
  }

  /**
   * Cleanup of one expired session: claims it (one node wins), unbinds every subscription,
   * deletes it. Resolves whether this call cleaned it up. A session live on this node is renewed
   * first (its lease lapsed while the store was out of reach); only if that renewal is refused
   * does the connection let go and the cleanup go on. Nothing here waits on the client's lock
   * while holding it.
   */
  expire(clientId: string): Promise<boolean> {
    return this.connections.run(clientId, async () => {
      const { store, scheduler, logger, claimTtl } = this.options;
      const live = this.connections.get(clientId);
      if (live) {
        const [lost] = await this.leases.renew([live]);
        if (!lost) {
          logger.warn(`[CleanupWorker] Client ${clientId} is live on this node; lease renewed`);
          return false;
        }
        await this.release(clientId, live.epoch, lost.reason);
      }
      const claimed = await store.claimExpired(clientId, scheduler.now(), claimTtl);
      if (!claimed) return false;
      return await this.#expireSession(claimed, "[CleanupWorker]");
    });
  }

  /**
   * A connect found its session past its window: cleans it up first, claimed like the cleanup
   * worker does. Resolves the epoch of the session it deleted, if it did. Under the client's lock.
   */
  async cleanUp(clientId: string, now: number): Promise<number | undefined> {
    const claimed = await this.options.store.claimExpired(clientId, now, this.options.claimTtl);
    if (claimed && await this.#expireSession(claimed, "[Session]")) return claimed.epoch;
    return undefined;
  }

  /**
   * An operator ends `session` (the admin API): unbinds everything and deletes it, as for an
   * expired one. Under the client's lock, its connection here (if any) already let go.
   */
  end(session: Session): Promise<boolean> {
    return this.#expireSession(session, "[Admin]");
  }

  /** Unbinds everything of an expired session and deletes it; false if any step failed. */
  async #expireSession(session: Session, tag: string): Promise<boolean> {
    const { logger, store } = this.options;
    // A bucket is swept only by a later publish; after the last one it would stay for good.
    this.forget(session.clientId);
    for (const sub of session.subscriptions) {
      if (!this.endpoints.has(sub.endpoint)) {
        logger.warn(`${tag} Client ${session.clientId} was bound to unknown endpoint ${sub.endpoint}`);
        continue;
      }
      const endpoint = this.endpoints.bindable(sub.endpoint);
      if (!endpoint) continue;
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
}
