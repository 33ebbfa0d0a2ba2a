/**
 * MemorySessionStore: sessions in this process's memory. For a single node; the rules are those
 * of the SessionStore port in src/core/session.ts.
 *
 * Over 300 lines, one class: one SessionStore method after another over the same entries map;
 * the replay log is in memory-replay.ts.
 */
import { heldAt, matchesQuery } from "../core/session.ts";
import { Replay } from "./memory-replay.ts";
import type {
  Attach,
  Lease,
  LostLease,
  NodeRecord,
  NodeSignal,
  PublishReservation,
  ReplayEvent,
  Session,
  SessionPage,
  SessionQuery,
  SessionStore,
  Subscription,
  Taken,
} from "../core/session.ts";

interface Entry {
  session: Session;
  /** Until when a cleanup claim holds. */
  claimedUntil?: number;
  /** The publish dedupe ledger, by id, least recently written first. */
  publishes?: Map<string, Publish>;
  /** The SSE replay log. */
  replay?: Replay;
}

/** A ledger entry: pending while `receipt` is undefined; `at` is its last write. */
interface Publish {
  at: number;
  receipt?: string;
}

export class MemorySessionStore implements SessionStore {
  /** Client IDs of each subject's sessions (for `maxSessions`). */
  #subjects = new Map<string, Set<string>>();
  #entries = new Map<string, Entry>();
  /** Nodes by id, each until its announcement lapses, with the signals queued for it. */
  #nodes = new Map<
    string,
    { record: NodeRecord; until: number; signals: Array<{ at: number; signal: NodeSignal }> }
  >();

  get(clientId: string): Promise<Session | undefined> {
    return Promise.resolve(copy(this.#entries.get(clientId)?.session));
  }

  create(session: Session): Promise<boolean> {
    if (this.#entries.has(session.clientId)) return Promise.resolve(false);
    this.#put(copy(session)!);
    return Promise.resolve(true);
  }

  update(session: Session, expectedEpoch: number): Promise<boolean> {
    const entry = this.#entries.get(session.clientId);
    if (!entry || entry.session.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#put(copy(session)!);
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
      if (!this.#own(attach, clientId)) return Promise.resolve({ outcome: "limited" });
      const session: Session = { clientId, epoch: attach.freshEpoch, subscriptions: [], ...held };
      if (attach.subject !== undefined) session.subject = attach.subject;
      this.#put(session);
      return Promise.resolve({ outcome: "created", session: copy(session)! });
    }
    const stored = entry.session;
    if (stored.reconnectionDeadline !== undefined && stored.reconnectionDeadline < now) {
      return Promise.resolve({ outcome: "expired" });
    }
    if (stored.subject !== undefined && attach.subject !== stored.subject) {
      return Promise.resolve({ outcome: "forbidden" });
    }
    if (stored.subject === undefined && !this.#own(attach, clientId)) {
      return Promise.resolve({ outcome: "limited" });
    }
    const session: Session = { ...stored, ...held, epoch: stored.epoch + 1 };
    if (attach.subject !== undefined) session.subject = attach.subject;
    delete session.disconnectedAt;
    this.#put(session);
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
    this.#put(session);
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
    session.subscriptions = subscription ? [...others, copySubscription(subscription)] : others;
    return Promise.resolve(true);
  }

  delete(clientId: string, expectedEpoch: number): Promise<boolean> {
    const entry = this.#entries.get(clientId);
    if (!entry || entry.session.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#entries.delete(clientId);
    const subject = entry.session.subject;
    if (subject !== undefined) {
      const owned = this.#subjects.get(subject);
      owned?.delete(clientId);
      if (owned?.size === 0) this.#subjects.delete(subject);
    }
    return Promise.resolve(true);
  }

  /** Entries kept, by map (see Hub.retained): empty once every session is deleted. */
  retained(): Record<string, number> {
    return { sessions: this.#entries.size, subjects: this.#subjects.size };
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

  reservePublish(
    clientId: string,
    id: string,
    now: number,
    ttl: number,
    maxIds: number,
  ): Promise<PublishReservation> {
    const entry = this.#entries.get(clientId);
    if (!entry) return Promise.resolve({ state: "new" });
    const ledger = entry.publishes ??= new Map();
    for (const [key, { at }] of ledger) if (at <= now - ttl) ledger.delete(key);
    const found = ledger.get(id);
    if (found) {
      return Promise.resolve(
        found.receipt === undefined ? { state: "pending" } : { state: "done", receipt: found.receipt },
      );
    }
    for (const key of ledger.keys()) {
      if (ledger.size < maxIds) break;
      ledger.delete(key);
    }
    ledger.set(id, { at: now });
    return Promise.resolve({ state: "new" });
  }

  completePublish(
    clientId: string,
    id: string,
    receipt: string | undefined,
    now: number,
    ttl: number,
  ): Promise<void> {
    const ledger = this.#entries.get(clientId)?.publishes;
    const found = ledger?.get(id);
    if (!ledger || !found || found.receipt !== undefined || found.at <= now - ttl) return Promise.resolve();
    // Deleted first, so a receipt moves to the end: eviction goes by last write.
    ledger.delete(id);
    if (receipt !== undefined) ledger.set(id, { at: now, receipt });
    return Promise.resolve();
  }

  appendReplay(clientId: string, events: ReplayEvent[], maxBytes: number, _ttl: number): Promise<number> {
    const entry = this.#entries.get(clientId);
    if (!entry || events.length === 0) return Promise.resolve(0);
    // The ttl is not kept: here the log lives in the session's entry and goes with it.
    return Promise.resolve((entry.replay ??= new Replay()).append(events, maxBytes));
  }

  takeReplay(
    clientId: string,
    lastEventId: string | undefined,
  ): Promise<{ events: ReplayEvent[]; evicted: number; found: boolean }> {
    const replay = this.#entries.get(clientId)?.replay;
    return Promise.resolve(replay?.take(lastEventId) ?? { events: [], evicted: 0, found: false });
  }

  listSessions(
    query: SessionQuery,
    cursor: string | undefined,
    limit: number,
    now: number,
  ): Promise<SessionPage> {
    // In client ID order, the cursor the last ID returned: stable while sessions come and go.
    const ids = [...this.#entries.keys()].filter((id) => cursor === undefined || id > cursor).sort();
    const sessions: Session[] = [];
    let last: string | undefined;
    for (const id of ids) {
      if (sessions.length >= limit) break;
      last = id;
      const session = this.#entries.get(id)!.session;
      if (matchesQuery(session, query, now)) sessions.push(copy(session)!);
    }
    const more = last !== undefined && ids[ids.length - 1] !== last;
    return Promise.resolve(more ? { sessions, cursor: last } : { sessions });
  }

  announce(node: NodeRecord, until: number): Promise<NodeSignal[]> {
    const held = this.#nodes.get(node.id);
    const signals = (held?.signals ?? []).filter((s) => s.at > node.seenAt - SIGNAL_TTL_MS);
    this.#nodes.set(node.id, { record: { ...node }, until, signals: [] });
    return Promise.resolve(signals.map((s) => s.signal));
  }

  nodes(now: number): Promise<NodeRecord[]> {
    for (const [id, { until }] of this.#nodes) if (until < now) this.#nodes.delete(id);
    const records = [...this.#nodes.values()].map(({ record }) => ({ ...record }));
    return Promise.resolve(records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  }

  signal(nodeId: string, signal: NodeSignal, now: number): Promise<boolean> {
    const held = this.#nodes.get(nodeId);
    if (!held || held.until < now) return Promise.resolve(false);
    held.signals.push({ at: now, signal: { ...signal } });
    return Promise.resolve(true);
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  counts(now: number): Promise<{ connected: number; disconnected: number }> {
    const counts = { connected: 0, disconnected: 0 };
    for (const { session } of this.#entries.values()) {
      counts[heldAt(session, now) ? "connected" : "disconnected"]++;
    }
    return Promise.resolve(counts);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Stores a session as written by a lifecycle step. A write means the client is back or still
   * there: any cleanup claim is void. The publish ledger and the replay log stay: they are
   * independent of the epoch.
   */
  /** Counts `clientId` as one of the subject's sessions, unless it holds its maximum already. */
  #own(attach: Attach, clientId: string): boolean {
    if (attach.subject === undefined) return true;
    let owned = this.#subjects.get(attach.subject);
    if (!owned) this.#subjects.set(attach.subject, owned = new Set());
    if (attach.maxSessions !== undefined && owned.size >= attach.maxSessions) return false;
    owned.add(clientId);
    return true;
  }

  #put(session: Session): void {
    const { publishes, replay } = this.#entries.get(session.clientId) ?? {};
    this.#entries.set(session.clientId, { session, publishes, replay });
  }
}

/** How long a signal waits for its node to take it, in ms (SessionStore.signal). */
const SIGNAL_TTL_MS = 60_000;

/**
 * Stored sessions are copies, so callers never mutate the store by accident. By hand, not
 * structuredClone: a session is flat values plus flat subscriptions, and this is on every
 * connect and bind.
 */
function copy(session: Session | undefined): Session | undefined {
  return session && { ...session, subscriptions: session.subscriptions.map(copySubscription) };
}

function copySubscription(subscription: Subscription): Subscription {
  return { ...subscription, params: { ...subscription.params } };
}
