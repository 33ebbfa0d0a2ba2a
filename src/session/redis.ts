/**
 * RedisSessionStore: sessions in Redis through @upstash/redis (the Upstash REST API or any REST
 * proxy of it), shared by every gateway node. The rules are those of the SessionStore port in
 * src/core/session.ts.
 *
 * Layout, under `keyPrefix` (default `mediation:session:`):
 * - `{prefix}{clientId}`: a hash with one field per session attribute (`epoch`, `state`, `node`,
 *   `connectedAt`, `disconnectedAt`, `lease`, `deadline`) and one `sub:{endpoint}` field per
 *   subscription (JSON of its params and bind time), plus `claim` while a cleanup holds it.
 *   Field by field, so every lifecycle step is a few HSETs in a script, never a JSON rewrite.
 * - `{prefix}~deadlines`: a sorted set of client IDs by reconnection deadline, so expired
 *   sessions are found by one range query, never by scanning keys. `~` cannot occur in a client
 *   ID, so the index never collides with a session.
 *
 * Each lifecycle operation is one EVAL: it checks the epoch and updates hash and index together,
 * so nothing is ever half-written, in one round trip. Every key also expires a day past its
 * deadline, counted from each write (the store needs no clock): a record nobody can clean up
 * (unreadable, or its cleanup kept failing) does not stay forever.
 */
import { Redis } from "@upstash/redis";
import { GatewayError } from "../core/errors.ts";
import type { Attach, Lease, Session, SessionStore, Subscription, Taken } from "../core/session.ts";

export interface RedisSessionStoreOptions {
  url: string;
  token: string;
  keyPrefix?: string;
  /** `base64` for Upstash; `none` for REST proxies that answer in plain JSON. */
  encoding?: "base64" | "none";
  /** Longest wait for one round trip, in ms; past it the store counts as unreachable. */
  timeout?: number;
  /** Reports records that cannot be read (written by another version, or damaged). */
  onUnreadable?: (clientId: string, reason: string) => void;
  /** Counts round trips, for /metrics. */
  onRoundTrip?: () => void;
}

/** How long a key outlives its deadline, as a safety net, in ms. */
const RETENTION_MS = 24 * 60 * 60 * 1000;

/** Puts a session into (or out of) the deadline index and sets its key's lifetime. */
const INDEX = `
local function index(key, zkey, id, deadline, ttl)
  if deadline ~= '' then
    redis.call('ZADD', zkey, deadline, id)
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('ZREM', zkey, id)
    redis.call('PERSIST', key)
  end
end
`;

/**
 * KEYS: session, index. ARGV: id, deadline, ttl, expectedEpoch ('' to create), then the hash's
 * field/value pairs. Creates (if absent) or replaces (if the epoch matches) the whole record.
 */
const WRITE = INDEX + `
if ARGV[4] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
else
  if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[4] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
index(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return 1
`;

/**
 * KEYS: session, index. ARGV: id, now, node, leaseUntil, deadline, ttl, freshEpoch. A connecting
 * client takes its session: created if absent, taken (epoch + 1) if within its deadline.
 * Returns {outcome, fields}: created, resumed, expired (left alone for the caller to clean up),
 * or unreadable (a key of another type, or an epoch or deadline that is not a number).
 */
const CONNECT = INDEX + `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return {'unreadable', {}} end
local held = {'state', 'connected', 'node', ARGV[3], 'connectedAt', ARGV[2], 'lease', ARGV[4], 'deadline', ARGV[5]}
local outcome = 'created'
if kind == 'none' then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[7], unpack(held))
else
  local deadline = redis.call('HGET', KEYS[1], 'deadline')
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if (deadline and not tonumber(deadline)) or not epoch or not tonumber(epoch) then
    return {'unreadable', redis.call('HGETALL', KEYS[1])}
  end
  if deadline and tonumber(deadline) < tonumber(ARGV[2]) then return {'expired', redis.call('HGETALL', KEYS[1])} end
  redis.call('HDEL', KEYS[1], 'disconnectedAt', 'claim')
  redis.call('HINCRBY', KEYS[1], 'epoch', 1)
  redis.call('HSET', KEYS[1], unpack(held))
  outcome = 'resumed'
end
index(KEYS[1], KEYS[2], ARGV[1], ARGV[5], ARGV[6])
return {outcome, redis.call('HGETALL', KEYS[1])}
`;

/** KEYS: session, index. ARGV: id, epoch, now, deadline, ttl. Marks the session disconnected. */
const RELEASE = INDEX + `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'node', 'lease', 'claim')
redis.call('HSET', KEYS[1], 'state', 'disconnected', 'disconnectedAt', ARGV[3], 'deadline', ARGV[4])
index(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[5])
return 1
`;

/** KEYS: session, index. ARGV: id, epoch, field, value ('' removes the field). */
const SUBSCRIPTION = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], ARGV[3]) else redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
return 1
`;

/** KEYS: session, index. ARGV: id, expectedEpoch. */
const DELETE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/**
 * KEYS: session, index. ARGV: id, now, claimTtl. Returns nil (nothing to claim), or
 * {outcome, fields}: claimed, or unreadable for a record whose deadline cannot be read (left
 * unclaimed for the caller to report).
 */
const CLAIM = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return {'unreadable', {}} end
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if kind == 'none' or not deadline then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return nil
end
if not tonumber(deadline) then return {'unreadable', redis.call('HGETALL', KEYS[1])} end
local now = tonumber(ARGV[2])
if tonumber(deadline) >= now then return nil end
local claim = tonumber(redis.call('HGET', KEYS[1], 'claim'))
if claim ~= nil and claim > now then return nil end
redis.call('HSET', KEYS[1], 'claim', now + tonumber(ARGV[3]))
return {'claimed', redis.call('HGETALL', KEYS[1])}
`;

/**
 * KEYS: index, then one session key per lease. ARGV: leaseUntil, deadline, ttl, then
 * (id, epoch) per lease. Renews the leases whose epoch still matches; returns the IDs of the
 * others (taken over by a newer connection, or gone).
 */
const RENEW = `
local lost = {}
for i = 2, #KEYS do
  local id = ARGV[2 * i]
  if redis.call('HGET', KEYS[i], 'epoch') == ARGV[2 * i + 1] then
    redis.call('HSET', KEYS[i], 'lease', ARGV[1], 'deadline', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  else
    lost[#lost + 1] = id
  end
end
return lost
`;

/** KEYS: session. The record's fields, as a flat field/value array. */
const GET = `return redis.call('HGETALL', KEYS[1])`;

const SUB = "sub:";

type Script = ReturnType<Redis["createScript"]>;

export class RedisSessionStore implements SessionStore {
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #index: string;
  readonly #options: RedisSessionStoreOptions;
  /** Sent by SHA (EVALSHA), the text only when Redis does not have it yet. */
  readonly #scripts: Record<
    "get" | "write" | "connect" | "release" | "subscription" | "delete" | "claim" | "renew",
    Script
  >;
  #closed = false;

  constructor(options: RedisSessionStoreOptions) {
    this.#options = options;
    this.prefix = options.keyPrefix ?? "mediation:session:";
    this.#index = `${this.prefix}~deadlines`;
    const timeout = options.timeout ?? 3000;
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      responseEncoding: options.encoding === "none" ? false : "base64",
      automaticDeserialization: false,
      enableTelemetry: false,
      // One quick retry for a dropped request; an outage answers within about `timeout`.
      retry: { retries: 1, backoff: () => 50 },
      signal: () => AbortSignal.timeout(timeout),
    });
    const script = (text: string) => this.#redis.createScript(text);
    this.#scripts = {
      get: script(GET),
      write: script(WRITE),
      connect: script(CONNECT),
      release: script(RELEASE),
      subscription: script(SUBSCRIPTION),
      delete: script(DELETE),
      claim: script(CLAIM),
      renew: script(RENEW),
    };
  }

  /** The key holding a client's session. */
  key(clientId: string): string {
    return this.prefix + clientId;
  }

  async get(clientId: string): Promise<Session | undefined> {
    const fields = await this.#call(() => this.#scripts.get.exec([this.key(clientId)], [])) as
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
    const { nodeId, now, leaseUntil, deadline, freshEpoch } = attach;
    const [outcome, fields] = await this.#eval(this.#scripts.connect, clientId, [
      String(now),
      nodeId,
      String(leaseUntil),
      String(deadline),
      String(ttl(deadline, now)),
      String(freshEpoch),
    ]) as [string, string[]];
    // An expired record is read too: one that cannot be read is refused here, not claimed.
    if (outcome === "expired") {
      this.#decode(clientId, fields, true);
      return { outcome };
    }
    if (outcome === "unreadable") this.#refuse(clientId, problemOf(clientId, fields));
    return { outcome: outcome as "created" | "resumed", session: this.#decode(clientId, fields, true)! };
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
    return await this.#eval(this.#scripts.delete, clientId, [String(expectedEpoch)]) === 1;
  }

  async listExpired(now: number, limit: number): Promise<string[]> {
    const ids = await this.#call(() =>
      this.#redis.zrange(this.#index, "-inf", `(${now}`, { byScore: true, offset: 0, count: limit })
    );
    return ids as string[];
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
      await this.#call(() => this.#redis.zrem(this.#index, clientId));
    }
    return session;
  }

  async renew(leases: Lease[], leaseUntil: number, deadline: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const keys = [this.#index, ...leases.map((l) => this.key(l.clientId))];
    const args = [String(leaseUntil), String(deadline), String(ttl(deadline, leaseUntil))];
    for (const { clientId, epoch } of leases) args.push(clientId, String(epoch));
    return await this.#call(() => this.#scripts.renew.exec(keys, args)) as string[];
  }

  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  /** Sessions in the store (for /metrics): every session has a deadline, so the index counts them. */
  async counts(): Promise<Record<string, number>> {
    return { all: await this.#call(() => this.#redis.zcard(this.#index)) };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #write(session: Session, expected: string): Promise<unknown> {
    const deadline = session.reconnectionDeadline;
    const anchor = Math.max(session.connectedAt, session.disconnectedAt ?? 0);
    return this.#eval(this.#scripts.write, session.clientId, [
      deadline === undefined ? "" : String(deadline),
      deadline === undefined ? "" : String(ttl(deadline, anchor)),
      expected,
      ...encode(session),
    ]);
  }

  #eval(script: Script, clientId: string, args: string[]): Promise<unknown> {
    return this.#call(() => script.exec([this.key(clientId), this.#index], [clientId, ...args]));
  }

  /** One round trip; any failure of Redis or of the way there is STORE_UNAVAILABLE. */
  async #call<T>(request: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new GatewayError("STORE_UNAVAILABLE", "session store is closed");
    this.#options.onRoundTrip?.();
    try {
      return await request();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new GatewayError("STORE_UNAVAILABLE", `session store unreachable: ${reason}`, true, {
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

  #refuse(clientId: string, problem: string): never {
    this.#options.onUnreadable?.(clientId, problem);
    throw new GatewayError(
      "STORE_UNAVAILABLE",
      `the stored session of ${clientId} is unreadable (${problem}); an operator must remove it`,
      false,
    );
  }
}

/** The key lifetime for a write at `now`: the deadline plus the retention. */
function ttl(deadline: number, now: number): number {
  return Math.max(0, deadline - now) + RETENTION_MS;
}

/** A session as the hash's field/value pairs. */
function encode(session: Session): string[] {
  const pairs = [
    "epoch",
    String(session.epoch),
    "state",
    session.state,
    "connectedAt",
    String(session.connectedAt),
  ];
  if (session.nodeId !== undefined) pairs.push("node", session.nodeId);
  if (session.disconnectedAt !== undefined) pairs.push("disconnectedAt", String(session.disconnectedAt));
  if (session.leaseUntil !== undefined) pairs.push("lease", String(session.leaseUntil));
  if (session.reconnectionDeadline !== undefined) {
    pairs.push("deadline", String(session.reconnectionDeadline));
  }
  for (const s of session.subscriptions) {
    pairs.push(SUB + s.endpoint, JSON.stringify({ params: s.params, boundAt: s.boundAt }));
  }
  return pairs;
}

/** What makes a record unreadable; an empty one is a key of another type than hash. */
function problemOf(clientId: string, fields: string[]): string {
  if (fields.length === 0) return "not a session hash";
  const parsed = parseFields(clientId, fields);
  return typeof parsed === "string" ? parsed : "unreadable";
}

/** A session from the hash's field/value pairs, or what is wrong with them. */
function parseFields(clientId: string, fields: string[]): Session | string {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
  const epoch = integer(f.get("epoch"));
  if (epoch === undefined) return `epoch ${JSON.stringify(f.get("epoch") ?? null)} is not a number`;
  const state = f.get("state");
  if (state !== "connected" && state !== "disconnected") return `state ${JSON.stringify(state ?? null)}`;
  const connectedAt = integer(f.get("connectedAt"));
  if (connectedAt === undefined) return "connectedAt missing or not a number";
  const session: Session = { clientId, state, epoch, connectedAt, subscriptions: [] };
  const node = f.get("node");
  if (node !== undefined) session.nodeId = node;
  for (
    const [field, key] of [["disconnectedAt", "disconnectedAt"], ["lease", "leaseUntil"], [
      "deadline",
      "reconnectionDeadline",
    ]] as const
  ) {
    const raw = f.get(field);
    if (raw === undefined) continue;
    const value = integer(raw);
    if (value === undefined) return `${field} ${JSON.stringify(raw)} is not a number`;
    session[key] = value;
  }
  for (const [field, raw] of f) {
    if (!field.startsWith(SUB)) continue;
    let sub: unknown;
    try {
      sub = JSON.parse(raw);
    } catch (error) {
      return `${field} is not JSON (${(error as Error).message})`;
    }
    const s = sub as { params?: unknown; boundAt?: unknown };
    if (
      !s || typeof s.boundAt !== "number" || !s.params || typeof s.params !== "object" ||
      !Object.values(s.params).every((p) => typeof p === "string")
    ) {
      return `${field} is not a subscription`;
    }
    session.subscriptions.push({
      endpoint: field.slice(SUB.length),
      params: s.params as Record<string, string>,
      boundAt: s.boundAt,
    });
  }
  session.subscriptions.sort((a, b) => a.boundAt - b.boundAt || (a.endpoint < b.endpoint ? -1 : 1));
  return session;
}

function integer(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+$/.test(value)) return undefined;
  return Number(value);
}
