/**
 * RedisSessionStore: sessions in Redis, shared by every gateway node, over either transport of
 * redis-wire.ts: RESP over TCP (ioredis, redis-resp.ts) or the Upstash REST API (@upstash/redis,
 * redis-upstash.ts). Both send the same scripts to the same keys, so nodes on either can share
 * one Redis. The rules are those of the SessionStore port in src/core/session.ts.
 *
 * Layout, under `keyPrefix` (default `mediation:session:`):
 * - `{prefix}{clientId}`: a hash with a field per session attribute and per subscription
 *   (redis-record.ts), plus `claim` while a cleanup holds it. Field by field, so every lifecycle
 *   step is a few HSETs in a script (redis-scripts.ts), never a JSON rewrite.
 * - `{prefix}~deadlines`: a sorted set of client IDs by reconnection deadline, so expired
 *   sessions are found by one range query, never by scanning keys; `{prefix}~leases`, connected
 *   client IDs by lease end, so the connected ones are counted without reading sessions.
 * - `{prefix}{clientId}~pub`: the client's publish dedupe ledger, a hash of publish id -> receipt
 *   JSON ("" while pending), and `{prefix}{clientId}~pubt`, a sorted set of the same ids by last
 *   write, to find the expired and the least recently written in one range query. Both get a
 *   PEXPIRE of the ledger's ttl on every write, so neither outlives its newest entry; DELETE
 *   removes them with the session. Kept apart from the session hash, which WRITE replaces whole:
 *   a session write leaves the ledger alone, and a ledger write never touches the session.
 * - `{prefix}{clientId}~sse`: the client's SSE replay log, a list of JSON entries
 *   `{"bytes":N,"id":...,"endpoint":...,"text":...}`, oldest first (`bytes`, the text's UTF-8
 *   size, and `id` come first so the scripts read them without decoding JSON), and
 *   `{prefix}{clientId}~sseb`, a hash of its totals: `bytes` (the sum the bound counts),
 *   `evicted` (since the last take) and `confirmed` (the JSON text of the id the last take
 *   confirmed). Both get a PEXPIRE of the log's ttl on every append; a take keeps their lifetime.
 *   DELETE removes them with the session, and a session created afresh (CONNECT, WRITE) starts
 *   without any ledger or log left over from an older one whose key expired.
 *
 * - `{prefix}~nodes{nodes}`: a hash of node id -> the JSON of its announcement (NodeRecord), and
 *   `{prefix}~nodes-until{nodes}`, node ids by when their announcement lapses; `{prefix}~signals:
 *   {nodeId}{nodes}`, a list of the JSON signals queued for a node, taken by its next announcement
 *   (and expiring a minute after the last one queued).
 *
 * `~` cannot occur in a client ID, so none of these collides with a session or with another
 * client's keys.
 *
 * With `shards` set, the same keys sit in one of the shards' hash tags instead (redis-layout.ts):
 * `{prefix}{7}{clientId}`, `{prefix}{7}~deadlines`..., so every script's keys share one slot and
 * the store runs on a Redis Cluster too. What spans sessions (listing expired ones, renewing a
 * node's leases, counting) goes shard by shard, one script per shard; a subject's set of client
 * IDs lives in the subject's shard, checked by a script of its own before CONNECT. The layout is
 * recorded in `{prefix}~layout` (both layouts), and a node configured for another refuses to start.
 *
 * Each lifecycle operation is one EVAL: it checks the epoch and updates hash and index together,
 * so nothing is ever half-written, in one round trip. Every key also expires a day past its
 * deadline, counted from each write (the store needs no clock): a record nobody can clean up
 * (unreadable, or its cleanup kept failing) does not stay forever.
 *
 * Over 700 lines, one class: each SessionStore method is a script call (redis-scripts.ts) and
 * the decoding of its reply, and the key layout above is the one description all of them share.
 * The transports, record codec and scripts are in files of their own already; a further split
 * waits for the Redis Cluster work on this file.
 */
import { RealScheduler } from "../core/scheduler.ts";
import type { Scheduler } from "../core/scheduler.ts";
import { GatewayError } from "../core/errors.ts";
import { redactUrl } from "../core/redact.ts";
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
import { matchesQuery } from "../core/session.ts";
import { encode, parseFields, problemOf, SUB } from "./redis-record.ts";
import { KeyLayout } from "./redis-layout.ts";
import {
  ADMIT,
  ANNOUNCE,
  APPEND_REPLAY,
  CLAIM,
  COMPLETE_PUBLISH,
  CONNECT,
  COUNTS,
  DELETE,
  EXISTS,
  EXPIRED,
  FORGET_MEMBERS,
  GET,
  NODES,
  PROBE as PROBE_LAYOUT,
  RELEASE,
  RENEW,
  RESERVE_PUBLISH,
  SCAN_SESSIONS,
  SIGNAL,
  SUBSCRIPTION,
  TAKE_REPLAY,
  WRITE,
} from "./redis-scripts.ts";
import { RespWire } from "./redis-resp.ts";
import type { ClusterWireOptions, RespWireOptions, SentinelWireOptions } from "./redis-resp.ts";
import { UpstashWire } from "./redis-upstash.ts";
import type { UpstashWireOptions } from "./redis-upstash.ts";
import { wireScript } from "./redis-wire.ts";
import type { RedisWire, WireScript } from "./redis-wire.ts";

/** The Upstash REST API (or a REST proxy of it). */
export interface RestTransport extends UpstashWireOptions {
  transport: "rest";
}

/** RESP over TCP (or TLS): a plain Redis. */
export interface RespTransport extends RespWireOptions {
  transport: "resp";
}

/** A Redis Cluster (needs `shards`). */
export interface ClusterTransport extends ClusterWireOptions {
  transport: "cluster";
}

/** A primary that Redis Sentinel manages, found (and followed after a failover) through sentinels. */
export interface SentinelTransport extends SentinelWireOptions {
  transport: "sentinel";
}

export type RedisSessionStoreOptions =
  & (RestTransport | RespTransport | ClusterTransport | SentinelTransport)
  & RedisStoreSettings;

/** The settings of `session.redis`; their defaults are the config schema's (src/config/schema.ts). */
export interface RedisStoreSettings {
  /** Prefix of every key of the store (`mediation:session:` by default). */
  keyPrefix: string;
  /** The sharded layout's number of shards (redis-layout.ts); unset, the single-Redis layout. */
  shards?: number;
  /** The clock of the wait for a first connection (RESP); the runtime's if unset. */
  scheduler?: Scheduler;
  /** Longest wait for one round trip, in ms; past it the store counts as unreachable. */
  timeout: number;
  /** Reports records that cannot be read (written by another version, or damaged). */
  onUnreadable?: (clientId: string, reason: string) => void;
  /** Counts round trips, for /metrics. */
  onRoundTrip?: () => void;
  /** Connection changes, for the log (RESP only: RespWireOptions.report). */
  report?: (level: "info" | "warn", message: string) => void;
}

/**
 * What the encoding check sends: valid base64 (of "mediation-probe"), so a client that expects
 * base64 answers and gets plain text decodes it to something else instead of failing to decode.
 */
const PROBE = "bWVkaWF0aW9uLXByb2Jl";

/** How long a key outlives its deadline, as a safety net, in ms. */
const RETENTION_MS = 24 * 60 * 60 * 1000;

/** How long a signal waits for its node to take it, in ms (SessionStore.signal). */
const SIGNAL_TTL_MS = 60_000;

/** The start-up check: hands back its argument, and the layout the marker holds. */
const PROBE_SCRIPT = wireScript(PROBE_LAYOUT);

export class RedisSessionStore implements SessionStore {
  readonly #prefix: string;
  readonly #layout: KeyLayout;
  readonly #wire: RedisWire;
  readonly #options: RedisSessionStoreOptions;
  /** Sent by SHA (EVALSHA), the text only when Redis does not have it yet. */
  readonly #scripts: Record<
    | "get"
    | "write"
    | "connect"
    | "release"
    | "subscription"
    | "delete"
    | "claim"
    | "renew"
    | "counts"
    | "reserve"
    | "complete"
    | "append"
    | "take"
    | "scan"
    | "announce"
    | "nodes"
    | "signal"
    | "admit"
    | "forget"
    | "exists"
    | "expired",
    WireScript
  >;
  #closed = false;
  /** Set once the server's response encoding was seen to match `encoding`. */
  #verified?: Promise<void>;

  constructor(options: RedisSessionStoreOptions) {
    this.#options = options;
    this.#prefix = options.keyPrefix;
    if (options.transport === "cluster" && options.shards === undefined) {
      throw new GatewayError("STORE_UNAVAILABLE", "a Redis Cluster needs session.redis.shards", {
        temporary: false,
      });
    }
    this.#layout = new KeyLayout(options.keyPrefix, options.shards);
    const { timeout } = options;
    this.#wire = options.transport === "rest"
      ? new UpstashWire(options, timeout)
      : new RespWire(options, timeout, options.scheduler ?? new RealScheduler());
    this.#scripts = {
      get: wireScript(GET),
      write: wireScript(WRITE),
      connect: wireScript(CONNECT),
      release: wireScript(RELEASE),
      subscription: wireScript(SUBSCRIPTION),
      delete: wireScript(DELETE),
      claim: wireScript(CLAIM),
      renew: wireScript(RENEW),
      counts: wireScript(COUNTS),
      reserve: wireScript(RESERVE_PUBLISH),
      complete: wireScript(COMPLETE_PUBLISH),
      append: wireScript(APPEND_REPLAY),
      take: wireScript(TAKE_REPLAY),
      scan: wireScript(SCAN_SESSIONS),
      announce: wireScript(ANNOUNCE),
      nodes: wireScript(NODES),
      signal: wireScript(SIGNAL),
      admit: wireScript(ADMIT),
      forget: wireScript(FORGET_MEMBERS),
      exists: wireScript(EXISTS),
      expired: wireScript(EXPIRED),
    };
  }

  /**
   * The nodes' records and their times; a node's signals are `{prefix}~signals:{id}{nodes}`. All
   * under the one hash tag `{nodes}`, so each script's keys share a slot on a Redis Cluster.
   */
  #nodeKeys(): [string, string] {
    return [`${this.#prefix}~nodes{nodes}`, `${this.#prefix}~nodes-until{nodes}`];
  }

  /** The key holding a client's session. */
  #key(clientId: string): string {
    return this.#layout.key(clientId);
  }

  /** Whether a subject's set lives apart from its sessions (the sharded layout). */
  get #apart(): boolean {
    return this.#layout.shards !== undefined;
  }

  async get(clientId: string): Promise<Session | undefined> {
    const fields = await this.#call(() => this.#wire.eval(this.#scripts.get, [this.#key(clientId)], [])) as
      | string[]
      | null;
    if (!fields || fields.length === 0) return undefined;
    return this.#decode(clientId, fields, true);
  }

  async create(session: Session): Promise<boolean> {
    return await this.#write(session, "") === 1;
  }

  async update(session: Session, expectedEpoch: number): Promise<boolean> {
    return await this.#write(session, String(expectedEpoch)) === 1;
  }

  async connect(clientId: string, attach: Attach): Promise<Taken> {
    if (!this.#apart || !attach.subject || attach.maxSessions === undefined) {
      return await this.#connect(clientId, attach, attach.maxSessions);
    }
    // The sharded layout: the subject's set is in another slot, checked (and the client counted)
    // first; a client counted here whose session did not come of it is taken out again.
    const admitted = await this.#admit(
      clientId,
      attach.subject,
      attach.maxSessions,
      ttl(attach.deadline, attach.now),
    );
    let taken: Taken;
    try {
      taken = await this.#connect(clientId, attach, admitted === "full" ? 0 : undefined);
    } catch (error) {
      // Left behind if this fails too: the next full ADMIT prunes it, the session never made.
      if (admitted === "added") await this.#unadmit(attach.subject, clientId).catch(() => {});
      throw error;
    }
    if (admitted === "added" && taken.outcome !== "created" && taken.outcome !== "resumed") {
      await this.#unadmit(attach.subject, clientId);
    }
    return taken;
  }

  /** Counts `clientId` among `subject`'s sessions if there is room, pruning those that are gone. */
  async #admit(
    clientId: string,
    subject: string,
    max: number,
    lifetime: number,
  ): Promise<"member" | "added" | "full"> {
    const set = this.#layout.subject(subject);
    const args = [clientId, String(max), String(lifetime)];
    for (let pass = 0;; pass++) {
      const reply = await this.#call(() => this.#wire.eval(this.#scripts.admit, [set], args));
      if (reply === "member" || reply === "added") return reply;
      if (!Array.isArray(reply)) throw this.#unexpected(clientId, "subject set", reply);
      if (pass > 0) return "full";
      const members = reply as string[];
      const present = await Promise.all(
        members.map((member) =>
          this.#call(() => this.#wire.eval(this.#scripts.exists, [this.#key(member)], []))
        ),
      );
      const gone = members.filter((_, i) => present[i] === 0);
      if (gone.length === 0) return "full";
      await this.#call(() => this.#wire.eval(this.#scripts.forget, [set], gone));
    }
  }

  async #unadmit(subject: string, clientId: string): Promise<void> {
    await this.#call(() =>
      this.#wire.eval(this.#scripts.forget, [this.#layout.subject(subject)], [clientId])
    );
  }

  async #connect(clientId: string, attach: Attach, maxSessions: number | undefined): Promise<Taken> {
    const { nodeId, now, leaseUntil, deadline, freshEpoch } = attach;
    const [outcome, fields] = await this.#eval(this.#scripts.connect, clientId, [
      String(now),
      nodeId,
      String(leaseUntil),
      String(deadline),
      String(ttl(deadline, now)),
      String(freshEpoch),
      attach.subject ?? "",
      maxSessions === undefined ? "" : String(maxSessions),
      this.#prefix,
      this.#apart ? "apart" : "",
    ]) as [string, string[]];
    if (outcome === "forbidden" || outcome === "limited") return { outcome };
    // An expired record is read too: one that cannot be read is refused here, not claimed.
    if (outcome === "expired") {
      this.#decode(clientId, fields, true);
      return { outcome };
    }
    if (outcome === "unreadable") this.#refuse(clientId, problemOf(clientId, fields));
    if (outcome !== "created" && outcome !== "resumed") throw this.#unexpected(clientId, "connect", outcome);
    return { outcome, session: this.#decode(clientId, fields, true)! };
  }

  async release(clientId: string, epoch: number, now: number, deadline: number): Promise<boolean> {
    const args = [String(epoch), String(now), String(deadline), String(ttl(deadline, now))];
    return await this.#eval(this.#scripts.release, clientId, args) === 1;
  }

  async setSubscription(
    clientId: string,
    epoch: number,
    endpoint: string,
    subscription: Subscription | undefined,
  ): Promise<boolean> {
    const value = subscription
      ? JSON.stringify({ params: subscription.params, boundAt: subscription.boundAt })
      : "";
    return await this.#eval(this.#scripts.subscription, clientId, [String(epoch), SUB + endpoint, value]) ===
      1;
  }

  async delete(clientId: string, expectedEpoch: number): Promise<boolean> {
    const reply = await this.#eval(this.#scripts.delete, clientId, [
      String(expectedEpoch),
      this.#prefix,
      this.#apart ? "apart" : "",
    ]);
    if (!Array.isArray(reply)) return reply === 1;
    const subject = reply[1];
    // Left behind if this fails: the next full ADMIT prunes it, its session being gone.
    if (typeof subject === "string" && subject !== "") await this.#unadmit(subject, clientId).catch(() => {});
    return true;
  }

  async listExpired(now: number, limit: number): Promise<string[]> {
    if (!this.#apart) {
      const index = this.#layout.deadlines(this.#prefix);
      return await this.#call(() => this.#wire.zrangeByScore(index, "-inf", `(${now}`, 0, limit));
    }
    // Shard by shard, each a page of its oldest, merged by deadline.
    const pages = await this.#everyShard(
      "listing expired sessions",
      (base) =>
        this.#wire.eval(this.#scripts.expired, [this.#layout.deadlines(base)], [String(now), String(limit)]),
    );
    const found: Array<[string, number]> = [];
    for (const page of pages) {
      const pairs = page as string[];
      for (let i = 0; i + 1 < pairs.length; i += 2) found.push([pairs[i], Number(pairs[i + 1])]);
    }
    return found.sort((a, b) => a[1] - b[1]).slice(0, limit).map(([id]) => id);
  }

  /**
   * One request per shard, all at once: the answers of the shards that answered. Shards whose
   * primary is down (a failover under way) are reported and skipped; only when none answers does
   * it reject, so one primary down never stops the work on the others.
   */
  async #everyShard(
    what: string,
    request: (base: string) => Promise<unknown>,
    bases = this.#layout.bases,
  ): Promise<unknown[]> {
    const settled = await Promise.allSettled(bases.map((base) => this.#call(() => request(base))));
    const answers = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed && answers.length === 0) throw failed.reason;
    if (failed) {
      const missing = settled.length - answers.length;
      this.#options.report?.(
        "warn",
        `[SessionStore] ${what}: ${missing} of ${settled.length} shards did not answer: ${
          failed.reason instanceof Error ? failed.reason.message : String(failed.reason)
        }`,
      );
    }
    return answers;
  }

  async claimExpired(clientId: string, now: number, claimTtl: number): Promise<Session | undefined> {
    const reply = await this.#eval(this.#scripts.claim, clientId, [String(now), String(claimTtl)]) as [
      string,
      string[],
    ] | null;
    if (!reply) return undefined;
    const [outcome, fields] = reply;
    let session: Session | undefined;
    if (outcome === "claimed") session = this.#decode(clientId, fields, false);
    else this.#options.onUnreadable?.(clientId, problemOf(clientId, fields));
    if (!session) {
      // Reported once: out of the index, so it never fills a cleanup batch again. The key is left
      // for an operator to look at.
      const index = this.#layout.deadlines(this.#layout.baseOf(clientId));
      await this.#call(() => this.#wire.zrem(index, clientId));
    }
    return session;
  }

  async renew(leases: Lease[], now: number, leaseUntil: number, deadline: number): Promise<LostLease[]> {
    if (leases.length === 0) return [];
    await this.#verify();
    // One script per shard the leases fall in (one without shards).
    const byBase = new Map<string, Lease[]>();
    for (const lease of leases) {
      const base = this.#layout.baseOf(lease.clientId);
      byBase.set(base, [...byBase.get(base) ?? [], lease]);
    }
    const renewal = (base: string) => {
      const group = byBase.get(base)!;
      const keys = [
        this.#layout.deadlines(base),
        this.#layout.leases(base),
        ...group.map((l) => this.#key(l.clientId)),
      ];
      const args = [String(now), String(leaseUntil), String(deadline), String(ttl(deadline, leaseUntil))];
      for (const { clientId, epoch } of group) args.push(clientId, String(epoch));
      return this.#wire.eval(this.#scripts.renew, keys, args);
    };
    const bases = [...byBase.keys()];
    const replies = bases.length === 1
      ? [await this.#call(() => renewal(bases[0]))]
      : await this.#everyShard("renewing leases", renewal, bases);
    const lost: LostLease[] = [];
    for (const pairs of replies as string[][]) {
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        lost.push({ clientId: pairs[i], reason: pairs[i + 1] === "taken" ? "taken" : "expired" });
      }
    }
    // In the order of `leases`, as one script would have answered.
    const order = new Map(leases.map((l, i) => [l.clientId, i]));
    return lost.sort((a, b) => order.get(a.clientId)! - order.get(b.clientId)!);
  }

  async reservePublish(
    clientId: string,
    id: string,
    now: number,
    ttl: number,
    maxIds: number,
  ): Promise<PublishReservation> {
    const args = [id, String(now), String(ttl), String(maxIds)];
    const reply = await this.#eval(this.#scripts.reserve, clientId, args);
    const [state, receipt] = Array.isArray(reply) ? reply : [];
    if (state === "new" || state === "pending") return { state };
    if (state === "done" && typeof receipt === "string") return { state, receipt };
    // Never read as "new": that would publish a message that may already be out.
    throw this.#unexpected(clientId, "publish ledger", reply);
  }

  async completePublish(
    clientId: string,
    id: string,
    receipt: string | undefined,
    now: number,
    ttl: number,
  ): Promise<void> {
    await this.#eval(this.#scripts.complete, clientId, [id, String(now), String(ttl), receipt ?? ""]);
  }

  async appendReplay(
    clientId: string,
    events: ReplayEvent[],
    maxBytes: number,
    ttl: number,
  ): Promise<number> {
    if (events.length === 0) return 0;
    const entries = events.map(({ id, endpoint, text }) =>
      // Key order matters: the scripts read `bytes` and `id` from the entry's start.
      JSON.stringify({ bytes: utf8Length(text), id, endpoint, text })
    );
    const evicted = await this.#eval(this.#scripts.append, clientId, [
      String(maxBytes),
      String(ttl),
      ...entries,
    ]);
    if (typeof evicted !== "number") throw this.#unexpected(clientId, "replay log", evicted);
    return evicted;
  }

  async takeReplay(
    clientId: string,
    lastEventId: string | undefined,
  ): Promise<{ events: ReplayEvent[]; evicted: number; found: boolean }> {
    const args = lastEventId === undefined ? [] : [JSON.stringify(lastEventId)];
    const reply = await this.#eval(this.#scripts.take, clientId, args);
    const [entries, evicted, found] = Array.isArray(reply) ? reply : [];
    if (!Array.isArray(entries) || typeof evicted !== "number") {
      throw this.#unexpected(clientId, "replay log", reply);
    }
    const events = entries.map((entry) => {
      const { id, endpoint, text } = JSON.parse(entry) as ReplayEvent;
      return { id, endpoint, text };
    });
    return { events, evicted, found: found === 1 };
  }

  /**
   * ZSCAN steps over the deadline index (the cursor is Redis's own; "0" ends that index), then
   * each session read in a round trip of its own, all at once. `limit` is ZSCAN's COUNT: Redis
   * may read more in a step (a small index is read whole), and then the page holds more. Steps
   * go on, shard after shard in the sharded layout (the cursor `<shard>:<Redis's cursor>`), until
   * the page has read `limit` IDs or the walk is done.
   */
  async listSessions(
    query: SessionQuery,
    cursor: string | undefined,
    limit: number,
    now: number,
  ): Promise<SessionPage> {
    const bases = this.#layout.bases;
    let [shard, scan] = this.#apart ? shardCursor(cursor, bases.length) : [0, cursor ?? "0"];
    // A page goes on to the next shards until it has read `limit` IDs or every shard is done.
    const ids: string[] = [];
    do {
      const index = this.#layout.deadlines(bases[shard]);
      const reply = await this.#call(() =>
        this.#wire.eval(this.#scripts.scan, [index], [scan, String(limit - ids.length)])
      ) as [string, string[]];
      const [step, pairs] = Array.isArray(reply) ? reply : ["0", []];
      for (let i = 0; i < pairs.length; i += 2) ids.push(pairs[i]);
      scan = String(step);
      if (scan === "0") shard++;
    } while (ids.length < limit && shard < bases.length);
    const next = shard >= bases.length ? undefined : this.#apart ? `${shard}:${scan}` : scan;
    const read = await Promise.all(
      ids.map((id) =>
        this.#call(() => this.#wire.eval(this.#scripts.get, [this.#key(id)], [])).then((fields) =>
          Array.isArray(fields) && fields.length > 0 ? this.#decode(id, fields as string[], false) : undefined
        )
      ),
    );
    const sessions = read.filter((s): s is Session => s !== undefined && matchesQuery(s, query, now));
    return next === undefined ? { sessions } : { sessions, cursor: next };
  }

  async announce(node: NodeRecord, until: number): Promise<NodeSignal[]> {
    const keys = [...this.#nodeKeys(), `${this.#prefix}~signals:${node.id}{nodes}`];
    const reply = await this.#call(() =>
      this.#wire.eval(this.#scripts.announce, keys, [node.id, JSON.stringify(node), String(until)])
    );
    return (Array.isArray(reply) ? reply as string[] : []).flatMap((text) => {
      try {
        return [JSON.parse(text) as NodeSignal];
      } catch {
        return [];
      }
    });
  }

  async nodes(now: number): Promise<NodeRecord[]> {
    const reply = await this.#call(() =>
      this.#wire.eval(this.#scripts.nodes, this.#nodeKeys(), [String(now)])
    );
    const records = (Array.isArray(reply) ? reply as string[] : []).flatMap((text) => {
      try {
        return [JSON.parse(text) as NodeRecord];
      } catch {
        return [];
      }
    });
    return records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async signal(nodeId: string, signal: NodeSignal, now: number): Promise<boolean> {
    const keys = [this.#nodeKeys()[1], `${this.#prefix}~signals:${nodeId}{nodes}`];
    const args = [nodeId, String(now), JSON.stringify(signal), String(SIGNAL_TTL_MS)];
    return await this.#call(() => this.#wire.eval(this.#scripts.signal, keys, args)) === 1;
  }

  /**
   * One round trip that checks what the store relies on: scripts run (a Redis that refuses
   * EVALSHA, a wrong password or db fail on RESP with a non-temporary error naming the setting),
   * and the script's answer comes back unchanged. A mismatch (`encoding: base64` against a REST
   * server that does not encode) is a configuration error, not an outage: it rejects with a
   * non-temporary error naming the setting.
   */
  async ping(): Promise<void> {
    const { marker, description } = this.#layout;
    const reply = await this.#call(() => this.#wire.eval(PROBE_SCRIPT, [marker], [PROBE, description]));
    const [echoed, layout] = Array.isArray(reply) ? reply : [reply];
    if (echoed !== PROBE && this.#options.transport === "rest") {
      const encoding = this.#options.encoding ?? "base64";
      throw new GatewayError(
        "STORE_UNAVAILABLE",
        `session.redis.encoding is "${encoding}" but the REST server at ${
          redactUrl(this.#options.url)
        } answers ${
          encoding === "base64" ? "without encoding: set encoding: none" : "in base64: set encoding: base64"
        }`,
        { temporary: false },
      );
    }
    if (echoed !== PROBE) throw this.#unexpected("the store", "probe", echoed);
    if (layout !== description) {
      throw new GatewayError(
        "STORE_UNAVAILABLE",
        `session.redis: Redis holds sessions in the layout (${layout}) but this node is configured for (${description}) (${marker}; docs/clustering.md)`,
        { temporary: false },
      );
    }
  }

  /**
   * Before the first write: the encoding check, once (a record written with the wrong encoding
   * could not be read back, and would lock its client out). A failed check is tried again on the
   * next write.
   */
  #verify(): Promise<void> {
    this.#verified ??= this.ping().catch((error) => {
      this.#verified = undefined;
      throw error;
    });
    return this.#verified;
  }

  async counts(now: number): Promise<{ connected: number; disconnected: number }> {
    const count = (base: string) =>
      this.#wire.eval(
        this.#scripts.counts,
        [this.#layout.deadlines(base), this.#layout.leases(base)],
        [String(now), String(RETENTION_MS)],
      );
    const replies = this.#apart
      ? await this.#everyShard("counting sessions", count)
      : [await this.#call(() => count(this.#prefix))];
    let [sessions, connected] = [0, 0];
    for (const [s, c] of replies as Array<[number, number]>) {
      [sessions, connected] = [sessions + s, connected + c];
    }
    return { connected, disconnected: sessions - connected };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#wire.close();
  }

  async #write(session: Session, expected: string): Promise<unknown> {
    await this.#verify();
    const deadline = session.reconnectionDeadline;
    const anchor = Math.max(session.connectedAt, session.disconnectedAt ?? 0);
    return await this.#eval(this.#scripts.write, session.clientId, [
      deadline === undefined ? "" : String(deadline),
      deadline === undefined ? "" : String(ttl(deadline, anchor)),
      session.state === "connected" && session.leaseUntil !== undefined ? String(session.leaseUntil) : "",
      expected,
      ...encode(session),
    ]);
  }

  /** One lifecycle script over a client's keys, in the order redis-scripts.ts names them. */
  async #eval(script: WireScript, clientId: string, args: string[]): Promise<unknown> {
    await this.#verify();
    const base = this.#layout.baseOf(clientId);
    const key = base + clientId;
    const [index, leases] = [this.#layout.deadlines(base), this.#layout.leases(base)];
    return await this.#call(() =>
      this.#wire.eval(
        script,
        [key, index, leases, `${key}~pub`, `${key}~pubt`, `${key}~sse`, `${key}~sseb`],
        [clientId, ...args],
      )
    );
  }

  /** One round trip; any failure of Redis or of the way there is STORE_UNAVAILABLE. */
  async #call<T>(request: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new GatewayError("STORE_UNAVAILABLE", "session store is closed");
    this.#options.onRoundTrip?.();
    try {
      return await request();
    } catch (error) {
      // A setting Redis refused (redis-resp.ts): waiting will not cure it.
      if (error instanceof GatewayError && !error.temporary) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new GatewayError("STORE_UNAVAILABLE", `session store unreachable: ${reason}`, {
        temporary: true,
        cause: error,
      });
    }
  }

  /**
   * A stored record as a Session. Unreadable records are reported; strict callers (a client
   * connecting) get an error, since what cannot be read must not be overwritten; a claim skips
   * them.
   */
  #decode(clientId: string, fields: string[], strict: boolean): Session | undefined {
    const parsed = parseFields(clientId, fields);
    if (typeof parsed !== "string") return parsed;
    if (strict) this.#refuse(clientId, parsed);
    this.#options.onUnreadable?.(clientId, parsed);
    return undefined;
  }

  /** A script reply of the wrong shape: an answer not to act on. */
  #unexpected(clientId: string, what: string, reply: unknown): GatewayError {
    return new GatewayError(
      "STORE_UNAVAILABLE",
      `the ${what} of ${clientId} answered ${JSON.stringify(reply)}`,
    );
  }

  #refuse(clientId: string, problem: string): never {
    this.#options.onUnreadable?.(clientId, problem);
    throw new GatewayError(
      "STORE_UNAVAILABLE",
      `the stored session of ${clientId} is unreadable (${problem}); an operator must remove it`,
      { temporary: false },
    );
  }
}

/** The size of a text as the byte bound counts it: its UTF-8 encoding. */
function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** The key lifetime for a write at `now`: the deadline plus the retention. */
function ttl(deadline: number, now: number): number {
  return Math.max(0, deadline - now) + RETENTION_MS;
}

/** A sharded listing's cursor, `<shard>:<Redis's cursor>`; none starts at shard 0. */
function shardCursor(cursor: string | undefined, shards: number): [number, string] {
  if (cursor === undefined) return [0, "0"];
  const m = cursor.match(/^(\d+):(\d+)$/);
  if (!m || Number(m[1]) >= shards) {
    throw new GatewayError("BAD_REQUEST", `cursor ${JSON.stringify(cursor)} is not one a listing gave`);
  }
  return [Number(m[1]), m[2]];
}
