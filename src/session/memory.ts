/**
 * MemorySessionStore: sessions in this process's memory. For a single node; the rules are those
 * of the SessionStore port in src/core/session.ts.
 */
import type {
  Attach,
  Lease,
  LostLease,
  Session,
  SessionStore,
  Subscription,
  Taken,
} from "../core/session.ts";

interface Entry {
  session: Session;
  /** Until when a cleanup claim holds. */
  claimedUntil?: number;
}

export class MemorySessionStore implements SessionStore {
  #entries = new Map<string, Entry>();

  get(clientId: string): Promise<Session | undefined> {
    return Promise.resolve(copy(this.#entries.get(clientId)?.session));
  }

  create(session: Session): Promise<boolean> {
    if (this.#entries.has(session.clientId)) return Promise.resolve(false);
    this.#entries.set(session.clientId, { session: copy(session)! });
    return Promise.resolve(true);
  }

  update(session: Session, expectedEpoch: number): Promise<boolean> {
    const entry = this.#entries.get(session.clientId);
    if (!entry || entry.session.epoch !== expectedEpoch) return Promise.resolve(false);
    // A new write means the client is back or still there: any cleanup claim is void.
    this.#entries.set(session.clientId, { session: copy(session)! });
    return Promise.resolve(true);
  }

  connect(clientId: string, attach: Attach): Promise<Taken> {
    const entry = this.#entries.get(clientId);
    const { nodeId, now, leaseUntil, deadline } = attach;
    const held = {
      state: "connected",
      nodeId,
      connectedAt: now,
      leaseUntil,
      reconnectionDeadline: deadline,
    } as const;
    if (!entry) {
      const session: Session = { clientId, epoch: attach.freshEpoch, subscriptions: [], ...held };
      this.#entries.set(clientId, { session });
      return Promise.resolve({ outcome: "created", session: copy(session)! });
    }
    const stored = entry.session;
    if (stored.reconnectionDeadline !== undefined && stored.reconnectionDeadline < now) {
      return Promise.resolve({ outcome: "expired" });
    }
    const session: Session = { ...stored, ...held, epoch: stored.epoch + 1 };
    delete session.disconnectedAt;
    this.#entries.set(clientId, { session });
    return Promise.resolve({ outcome: "resumed", session: copy(session)! });
  }

  release(clientId: string, epoch: number, now: number, deadline: number): Promise<boolean> {
    const entry = this.#entries.get(clientId);
    if (!entry || entry.session.epoch !== epoch) return Promise.resolve(false);
    const session: Session = {
      ...entry.session,
      state: "disconnected",
      disconnectedAt: now,
      reconnectionDeadline: deadline,
    };
    delete session.nodeId;
    delete session.leaseUntil;
    this.#entries.set(clientId, { session });
    return Promise.resolve(true);
  }

  setSubscription(
    clientId: string,
    epoch: number,
    endpoint: string,
    subscription: Subscription | undefined,
  ): Promise<boolean> {
    const session = this.#entries.get(clientId)?.session;
    if (!session || session.epoch !== epoch) return Promise.resolve(false);
    const others = session.subscriptions.filter((s) => s.endpoint !== endpoint);
    session.subscriptions = subscription ? [...others, structuredClone(subscription)] : others;
    return Promise.resolve(true);
  }

  delete(clientId: string, expectedEpoch: number): Promise<boolean> {
    const entry = this.#entries.get(clientId);
    if (!entry || entry.session.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#entries.delete(clientId);
    return Promise.resolve(true);
  }

  listExpired(now: number, limit: number): Promise<string[]> {
    const expired: Array<[number, string]> = [];
    for (const { session, claimedUntil } of this.#entries.values()) {
      const deadline = session.reconnectionDeadline;
      if (deadline === undefined || deadline >= now) continue;
      if (claimedUntil === undefined || claimedUntil <= now) expired.push([deadline, session.clientId]);
    }
    expired.sort((a, b) => a[0] - b[0]);
    return Promise.resolve(expired.slice(0, limit).map(([, id]) => id));
  }

  claimExpired(clientId: string, now: number, claimTtl: number): Promise<Session | undefined> {
    const entry = this.#entries.get(clientId);
    const deadline = entry?.session.reconnectionDeadline;
    if (!entry || deadline === undefined || deadline >= now) return Promise.resolve(undefined);
    if (entry.claimedUntil !== undefined && entry.claimedUntil > now) {
      return Promise.resolve(undefined);
    }
    entry.claimedUntil = now + claimTtl;
    return Promise.resolve(copy(entry.session));
  }

  renew(leases: Lease[], now: number, leaseUntil: number, deadline: number): Promise<LostLease[]> {
    const lost: LostLease[] = [];
    for (const { clientId, epoch } of leases) {
      const entry = this.#entries.get(clientId);
      if (entry && entry.session.epoch !== epoch) lost.push({ clientId, reason: "taken" });
      else if (!entry || (entry.claimedUntil !== undefined && entry.claimedUntil > now)) {
        lost.push({ clientId, reason: "expired" });
      } else {
        delete entry.claimedUntil;
        Object.assign(entry.session, { leaseUntil, reconnectionDeadline: deadline });
      }
    }
    return Promise.resolve(lost);
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  counts(now: number): Promise<{ connected: number; disconnected: number }> {
    const counts = { connected: 0, disconnected: 0 };
    for (const { session } of this.#entries.values()) {
      const held = session.state === "connected" &&
        (session.leaseUntil === undefined || session.leaseUntil >= now);
      counts[held ? "connected" : "disconnected"]++;
    }
    return Promise.resolve(counts);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Stored sessions are copies, so callers never mutate the store by accident. */
function copy(session: Session | undefined): Session | undefined {
  return session && structuredClone(session);
}
