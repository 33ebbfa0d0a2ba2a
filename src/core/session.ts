/**
 * Sessions and the SessionStore port (DESIGN.md sections 3-4).
 *
 * A session outlives its client's connection for the reconnection window. Its `epoch` is a
 * fencing token: every connect increments it, every write is a compare-and-set on it, so two
 * connections (or two nodes) can never both believe they own a client.
 *
 * Near 350 lines, kept whole on purpose: it is the SessionStore port, and most of it is the rules
 * written on its members (atomicity, TTLs, fencing), which every store implements together.
 */

export type SessionState = "connected" | "disconnected";

/** One endpoint the client is bound to; `params` are the binding's template values. */
export interface Subscription {
  endpoint: string;
  params: Record<string, string>;
  boundAt: number;
}

export interface Session {
  clientId: string;
  state: SessionState;
  /** Increments on every connect and takeover; the compare-and-set field. */
  epoch: number;
  /** The node holding the live connection while connected. */
  nodeId?: string;
  /** While connected: the node's lease; past it the session counts as disconnected at this time. */
  leaseUntil?: number;
  connectedAt: number;
  disconnectedAt?: number;
  /**
   * When the session expires. Disconnected: `disconnectedAt` plus the window. Connected under a
   * lease: `leaseUntil` plus the window, so a crashed node's clients expire with nobody writing.
   * Connected without a lease (single node): undefined, never expires.
   */
  reconnectionDeadline?: number;
  subscriptions: Subscription[];
  /**
   * The authenticated subject the session belongs to (auth on): a connect of another subject is
   * refused. Unset for sessions made without authentication.
   */
  subject?: string;
}

/** A node's hold on one connected session. */
export interface Lease {
  clientId: string;
  epoch: number;
}

/**
 * A lease that could not be renewed: the session was taken over by a newer connection (its epoch
 * moved on), or it expired (gone, or held by a cleanup claim: the node could not renew it for
 * longer than the window, and the cleanup worker is ending it).
 */
export interface LostLease {
  clientId: string;
  reason: "taken" | "expired";
}

/** A node taking a connecting client's session: the values the session gets. */
export interface Attach {
  nodeId: string;
  now: number;
  leaseUntil: number;
  /** The reconnection deadline under this lease: `leaseUntil` plus the window. */
  deadline: number;
  /** The epoch of a session created now. */
  freshEpoch: number;
  /** The connecting client's authenticated subject; a session of another subject is not taken. */
  subject?: string;
  /** Most sessions one subject may hold: a connect that would make one more is `limited`. */
  maxSessions?: number;
}

/**
 * What `connect` found: no session (one was created), one within its deadline (taken over, its
 * epoch incremented), or one past its deadline (left alone: the caller cleans it up first).
 */
export type Taken =
  | { outcome: "created" | "resumed"; session: Session }
  | { outcome: "expired" }
  | { outcome: "forbidden" }
  | { outcome: "limited" };

/**
 * What reserving a publish `id` found: `new` (the caller publishes, then completes the
 * reservation), `pending` (the same id is being published right now, maybe on another node), or
 * `done` with the receipt JSON the first publish got.
 */
export type PublishReservation =
  | { state: "new" }
  | { state: "pending" }
  | { state: "done"; receipt: string };

/** One SSE event as written to a stream: its `id:`, the endpoint it came from, and the whole event text. */
export interface ReplayEvent {
  id: string;
  endpoint: string;
  text: string;
}

/** Which sessions `listSessions` returns: every filter given must match. */
export interface SessionQuery {
  /** Connected under a lease that has not lapsed, or disconnected (lapsed leases included), as `counts`. */
  state?: SessionState;
  subject?: string;
  /** The node holding its live connection. */
  node?: string;
  /** Bound to this endpoint. */
  endpoint?: string;
}

/** One page of `listSessions`: `cursor` is where the next page starts; absent after the last. */
export interface SessionPage {
  sessions: Session[];
  cursor?: string;
}

/** What a node says of itself to the others sharing its store (`announce`). */
export interface NodeRecord {
  id: string;
  /** Where its clients reach it, as it listens (`host:port`). */
  address: string;
  /** The runtime and its version (`deno 2.1.4`, `bun 1.1.38`). */
  runtime: string;
  /** The gateway's version. */
  version: string;
  startedAt: number;
  /** Live connections on it when it last announced itself. */
  connected: number;
  /** Whether it is draining (refusing new connections while its clients move away). */
  draining: boolean;
  /** When it last announced itself. */
  seenAt: number;
  /** Messages clients published through it, and it delivered to them, since it started. */
  messagesIn?: number;
  messagesOut?: number;
  /** Client bindings it holds, per endpoint. */
  bindings?: Record<string, number>;
}

/**
 * What the admin API asks of the node holding a client's live connection, through the store
 * (`signal`): disconnect it (the session stays), end its session, or write a message to it.
 */
export type NodeSignal =
  | { type: "disconnect"; clientId: string }
  | { type: "end"; clientId: string }
  | { type: "deliver"; clientId: string; endpoint: string; data: string; encoding?: "base64" };

/**
 * Where sessions live. Implementations: MemorySessionStore, RedisSessionStore; every one passes
 * `sessionStoreContract` (src/conformance/session-store/, `mediation-engine/conformance`), and so
 * must another store (docs/writing-a-store.md).
 *
 * All methods may reject with a `GatewayError("STORE_UNAVAILABLE")` when the backing service is
 * unreachable; they never resolve with partial writes.
 */
export interface SessionStore {
  /** The session, or undefined if none exists. */
  get(clientId: string): Promise<Session | undefined>;
  /**
   * Stores a new session. Resolves false, writing nothing, if one already exists for that
   * client ID.
   */
  create(session: Session): Promise<boolean>;
  /**
   * Replaces a session only if the stored one still has epoch `expectedEpoch` (compare-and-set).
   * Resolves false, writing nothing, if the epoch moved on or the session is gone.
   */
  update(session: Session, expectedEpoch: number): Promise<boolean>;
  /** Deletes a session only if its epoch is still `expectedEpoch`. Resolves whether it deleted. */
  delete(clientId: string, expectedEpoch: number): Promise<boolean>;
  /**
   * Up to `limit` client IDs whose `reconnectionDeadline` is before `now` and that no cleanup
   * claim holds at `now`, oldest first. Does not claim them. Sessions held by a claim are left
   * out, so claims whose cleanup keeps failing never crowd newer expired sessions out of a page.
   */
  listExpired(now: number, limit: number): Promise<string[]>;
  /**
   * Atomically takes an expired session out of circulation for cleanup: exactly one caller
   * across all nodes gets it back; every other gets undefined. A session that is no longer
   * expired at `now` (the client came back) is not claimed. The claimed session stays readable
   * through `get` until `delete`, so a crash mid-cleanup leaves it to be claimed again after
   * `claimTtl` milliseconds; until then `listExpired` leaves it out.
   */
  claimExpired(clientId: string, now: number, claimTtl: number): Promise<Session | undefined>;
  /**
   * A client connects: in one atomic step, creates its session (connected to `attach.nodeId`)
   * if there is none, or takes it (state connected, epoch + 1, the new node and lease) if it is
   * within its deadline. A session past its deadline is left as it is, reported as expired. A
   * session within its deadline that belongs to another subject than `attach.subject` is left
   * as it is, reported as forbidden (neither resumed nor taken over). The subject is recorded
   * on the session a subject creates or takes (a session made without one is taken by the first).
   * A subject that holds `attach.maxSessions` sessions gets `limited` for a new one (nothing is
   * written); its existing sessions are resumed as usual.
   */
  connect(clientId: string, attach: Attach): Promise<Taken>;
  /**
   * The client's connection went away: if the epoch is still `epoch`, the session becomes
   * disconnected at `now` with reconnection deadline `deadline`. Resolves whether it wrote.
   */
  release(clientId: string, epoch: number, now: number, deadline: number): Promise<boolean>;
  /**
   * Records (or, with undefined, removes) the client's subscription to `endpoint`, if the epoch
   * is still `epoch`. Resolves whether it wrote.
   */
  setSubscription(
    clientId: string,
    epoch: number,
    endpoint: string,
    subscription: Subscription | undefined,
  ): Promise<boolean>;
  /**
   * Renews the leases of the sessions a node holds connected, in one round trip: each session
   * whose epoch is still the given one, and that no cleanup claim holds at `now`, gets
   * `leaseUntil` and `reconnectionDeadline = deadline`. Resolves the others with the reason:
   * taken over by a newer connection, or expired (gone, or claimed: a claim is honoured, never
   * cleared by a renewal, since its cleanup may already be unbinding the broker state).
   */
  renew(leases: Lease[], now: number, leaseUntil: number, deadline: number): Promise<LostLease[]>;
  /**
   * How many sessions are connected (under a lease that has not lapsed at `now`) and how many
   * are disconnected (lapsed leases included), across every node using the store.
   */
  counts(now: number): Promise<{ connected: number; disconnected: number }>;
  /**
   * The publish dedupe ledger (DESIGN.md section 5): reserves a client's publish `id`, in one
   * atomic step (one round trip), so a retry of it (after a reconnect, maybe to another node) is
   * not sent to the broker twice. Resolves `new` for an id the ledger does not hold (the caller
   * publishes and then calls `completePublish`), `pending` for one reserved and not completed,
   * `done` with the stored receipt for one completed.
   *
   * - Time: an entry counts for `ttl` ms from its last write (a reservation from its reserve, a
   *   receipt from its completion); at `now >= written + ttl` it is absent. So a reservation
   *   whose node died mid-publish blocks its id for `ttl` at most.
   * - Space: at most `maxIds` (>= 1) ids per client; reserving a new one past that evicts the
   *   least recently written (pending or done).
   * - Lifetime: the ledger belongs to the session: `delete` takes it along; entries past their
   *   ttl are dropped by the client's next reserve, and a ledger kept apart from the session (as
   *   in Redis) expires `ttl` after its last write. A client without a session has no ledger:
   *   `new`, nothing recorded. It is independent of the epoch: a reconnect (a new epoch, maybe on
   *   another node) keeps it.
   */
  reservePublish(
    clientId: string,
    id: string,
    now: number,
    ttl: number,
    maxIds: number,
  ): Promise<PublishReservation>;
  /**
   * Completes a `pending` reservation of `id`, in one round trip: with `receipt` (a JSON text,
   * never empty) the id becomes `done` and the receipt is kept for `ttl` from `now`; with
   * undefined (the publish failed, a retry may publish it) the reservation is removed. Only a
   * pending reservation is completed: a receipt stays as first stored, and a reservation that is
   * gone (past its ttl, evicted, or deleted with its session) is not brought back. A completion
   * cannot tell its reservation from a newer one of the same id made after its own lapsed: keep
   * `ttl` well above the publish timeout.
   */
  completePublish(
    clientId: string,
    id: string,
    receipt: string | undefined,
    now: number,
    ttl: number,
  ): Promise<void>;
  /**
   * Appends events to the client's replay log (oldest first), in one round trip. The log is bounded
   * by `maxBytes` (the sum of `text` lengths, in UTF-8 bytes): past it the oldest events are evicted
   * and counted. Resolves how many were evicted by this call. Every write renews the log's lifetime
   * to `ttl` ms.
   *
   * The SSE replay log (DESIGN.md section 5): an SSE stream cannot acknowledge, so every event it
   * wrote is kept until a reconnecting EventSource's Last-Event-ID confirms it (`takeReplay`).
   *
   * - Space: an event that alone exceeds `maxBytes` is evicted at once; the cost is one step per
   *   event appended or evicted, never a pass over the log.
   * - Lifetime: the log belongs to the session: `delete` takes it along, and a session created
   *   afresh starts with none. A log kept apart from the session (as in Redis) expires `ttl` after
   *   its last write. A client without a session has no log: resolves 0, nothing recorded. It is
   *   independent of the epoch: a reconnect (a new epoch, maybe on another node) keeps it.
   */
  appendReplay(clientId: string, events: ReplayEvent[], maxBytes: number, ttl: number): Promise<number>;
  /**
   * A stream reconnects with `lastEventId` (or undefined, none): in one round trip, drops every event
   * up to and including the one with that id (the client has them), and resolves the rest, oldest
   * first, with `evicted`: how many events were evicted since the log was last taken (then reset to 0),
   * and `found`: whether `lastEventId` was in the log (false when it is unknown or was evicted; then
   * nothing is dropped).
   *
   * Taking drops only what `lastEventId` confirms: the rest stays until a later take confirms it,
   * since the new stream may drop before the client has it. The id a take confirmed last is found
   * again (nothing dropped) until an eviction: a client that reconnects twice without getting
   * anything new in between has lost nothing. The log's lifetime is not renewed. A client without
   * a session resolves `{ events: [], evicted: 0, found: false }`.
   */
  takeReplay(
    clientId: string,
    lastEventId: string | undefined,
  ): Promise<{ events: ReplayEvent[]; evicted: number; found: boolean }>;
  /**
   * One page of sessions matching `query`, in the store's own order, from `cursor` (undefined:
   * the first page). A page holds at most `limit` sessions and may hold fewer (even none) while
   * a `cursor` follows: filters are applied to what one step reads. Every session with a
   * reconnection deadline (every session a hub makes) is listed once in a walk from the first
   * page to the last, unless it is created or deleted during the walk; `state` counts as
   * `counts` does at `now`.
   */
  listSessions(
    query: SessionQuery,
    cursor: string | undefined,
    limit: number,
    now: number,
  ): Promise<SessionPage>;
  /**
   * A node says it is alive, in one round trip: its record is kept until `until` (past it the
   * node is gone from `nodes`), and the signals sent to it since its last announcement are
   * taken (resolved oldest first, and removed).
   */
  announce(node: NodeRecord, until: number): Promise<NodeSignal[]>;
  /** The nodes whose last announcement holds at `now`, by id. */
  nodes(now: number): Promise<NodeRecord[]>;
  /**
   * Queues `signal` for node `nodeId`, taken by its next `announce`. Resolves false, queuing
   * nothing, when that node's record does not hold at `now`. Signals not taken within a minute
   * are dropped.
   */
  signal(nodeId: string, signal: NodeSignal, now: number): Promise<boolean>;
  /** Resolves once the backing service answers; rejects with STORE_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** Whether a session counts as connected at `now`: connected, under a lease that has not lapsed. */
export function heldAt(session: Session, now: number): boolean {
  return session.state === "connected" && (session.leaseUntil === undefined || session.leaseUntil >= now);
}

/** Whether `session` matches every filter of `query` at `now` (see SessionStore.listSessions). */
export function matchesQuery(session: Session, query: SessionQuery, now: number): boolean {
  if (query.state !== undefined && (query.state === "connected") !== heldAt(session, now)) return false;
  if (query.subject !== undefined && session.subject !== query.subject) return false;
  if (query.node !== undefined && (session.nodeId !== query.node || !heldAt(session, now))) return false;
  if (query.endpoint !== undefined && !session.subscriptions.some((s) => s.endpoint === query.endpoint)) {
    return false;
  }
  return true;
}
