/**
 * RedisSessionStore: sessions in Redis through @upstash/redis (the Upstash REST API or any REST
 * proxy of it), shared by every gateway node. The rules are those of the SessionStore port in
 * src/core/session.ts.
 *
 * Layout, under `keyPrefix` (default `mediation:session:`):
 * - `{prefix}{clientId}`: a hash. `epoch` (the compare-and-set field), `data` (the session's JSON
 *   without the fields below), `lease` and `deadline` (the lease and the reconnection deadline,
 *   kept apart so a lease renewal rewrites two numbers, not the JSON), `claim` (until when a
 *   cleanup claim holds).
 * - `{prefix}~deadlines`: a sorted set of client IDs by reconnection deadline, so expired
 *   sessions are found by one range query, never by scanning keys. `~` cannot occur in a client
 *   ID, so the index never collides with a session.
 *
 * Every write is one EVAL that checks the epoch and updates hash and index together, so nothing
 * is ever half-written, and each operation is one round trip. Every key also expires a day past
 * its deadline: a record nobody can clean up (unreadable, or its cleanup kept failing) does not
 * stay forever. That lifetime is counted from each write, so the store needs no clock.
 */
import { Redis } from "@upstash/redis";
import { GatewayError } from "../core/errors.ts";
import type { Lease, Session, SessionStore, Subscription } from "../core/session.ts";

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
}

/** How long a key outlives its deadline, as a safety net, in ms. */
const RETENTION_MS = 24 * 60 * 60 * 1000;

/** Writes a session's hash and index entry; shared by create and update. */
const WRITE = `
local function write(key, index, id, epoch, data, lease, deadline, ttl)
  redis.call('DEL', key)
  redis.call('HSET', key, 'epoch', epoch, 'data', data)
  if lease ~= '' then redis.call('HSET', key, 'lease', lease) end
  if deadline ~= '' then
    redis.call('HSET', key, 'deadline', deadline)
    redis.call('ZADD', index, deadline, id)
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('ZREM', index, id)
  end
end
`;

/** KEYS: session, index. ARGV: id, epoch, data, lease, deadline, ttl. */
const CREATE = WRITE + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
write(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
`;

/** KEYS: session, index. ARGV: id, epoch, data, lease, deadline, ttl, expectedEpoch. */
const UPDATE = WRITE + `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[7] then return 0 end
write(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
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
 * KEYS: session, index. ARGV: id, now, claimTtl. Returns nil (nothing to claim), or the record's
 * fields followed by "claimed", or by "unreadable" for a record whose deadline is not a number
 * (left unclaimed for the caller to report).
 */
const CLAIM = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return {false, false, false, false, 'unreadable'} end
local record = redis.call('HMGET', KEYS[1], 'data', 'epoch', 'lease', 'deadline')
if kind == 'none' or record[4] == false then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return nil
end
local deadline = tonumber(record[4])
if deadline == nil then
  record[5] = 'unreadable'
  return record
end
local now = tonumber(ARGV[2])
if deadline >= now then return nil end
local claim = tonumber(redis.call('HGET', KEYS[1], 'claim'))
if claim ~= nil and claim > now then return nil end
redis.call('HSET', KEYS[1], 'claim', now + tonumber(ARGV[3]))
record[5] = 'claimed'
return record
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

type Row = [data: string | null, epoch: string | null, lease: string | null, deadline: string | null];

export class RedisSessionStore implements SessionStore {
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #index: string;
  readonly #options: RedisSessionStoreOptions;
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
  }

  /** The key holding a client's session. */
  key(clientId: string): string {
    return this.prefix + clientId;
  }

  async get(clientId: string): Promise<Session | undefined> {
    // Without automatic deserialization, HMGET answers the plain array of values.
    const row = await this.#call(() =>
      this.#redis.hmget(this.key(clientId), "data", "epoch", "lease", "deadline")
    ) as unknown as Row | null;
    if (!row || row.every((v) => v === null)) return undefined;
    return this.#decode(clientId, row, true);
  }

  async create(session: Session): Promise<boolean> {
    const result = await this.#eval(CREATE, session.clientId, this.#fields(session));
    return result === 1;
  }

  async update(session: Session, expectedEpoch: number): Promise<boolean> {
    const result = await this.#eval(UPDATE, session.clientId, [
      ...this.#fields(session),
      String(expectedEpoch),
    ]);
    return result === 1;
  }

  async delete(clientId: string, expectedEpoch: number): Promise<boolean> {
    return await this.#eval(DELETE, clientId, [String(expectedEpoch)]) === 1;
  }

  async listExpired(now: number, limit: number): Promise<string[]> {
    const ids = await this.#call(() =>
      this.#redis.zrange(this.#index, "-inf", `(${now}`, { byScore: true, offset: 0, count: limit })
    );
    return ids as string[];
  }

  async claimExpired(clientId: string, now: number, claimTtl: number): Promise<Session | undefined> {
    const reply = await this.#eval(CLAIM, clientId, [String(now), String(claimTtl)]) as
      | [...Row, "claimed" | "unreadable"]
      | null;
    if (!reply) return undefined;
    const session = reply[4] === "claimed"
      ? this.#decode(clientId, reply.slice(0, 4) as Row, false)
      : this.#unreadable(
        clientId,
        reply[0] === null ? "not a session hash" : `deadline ${JSON.stringify(reply[3])} is not a number`,
        false,
      );
    if (!session) {
      // Reported once: out of the index, so it never fills a cleanup batch again. The key is left
      // for an operator to look at.
      await this.#call(() => this.#redis.zrem(this.#index, clientId));
    }
    return session;
  }

  /**
   * Renews this node's leases in one round trip: each session whose epoch still matches gets
   * `leaseUntil` and `deadline`. Resolves the client IDs whose session moved on (a newer
   * connection took it over, here or on another node) or is gone.
   */
  async renew(
    leases: Lease[],
    leaseUntil: number,
    deadline: number,
  ): Promise<string[]> {
    if (leases.length === 0) return [];
    const keys = [this.#index, ...leases.map((l) => this.key(l.clientId))];
    const args = [String(leaseUntil), String(deadline), String(deadline - leaseUntil + RETENTION_MS)];
    for (const { clientId, epoch } of leases) args.push(clientId, String(epoch));
    return await this.#call(() => this.#redis.eval(RENEW, keys, args)) as string[];
  }

  /** Whether Redis answers (for /readyz). */
  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  /** Sessions in the store (for /metrics): every session has a deadline, so the index counts them. */
  async counts(): Promise<Record<string, number>> {
    const total = await this.#call(() => this.#redis.zcard(this.#index));
    return { all: total as number };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #fields(session: Session): string[] {
    const { clientId, state, nodeId, connectedAt, disconnectedAt, subscriptions } = session;
    const data = JSON.stringify({
      v: 1,
      clientId,
      state,
      nodeId,
      connectedAt,
      disconnectedAt,
      subscriptions,
    });
    const deadline = session.reconnectionDeadline;
    return [
      String(session.epoch),
      data,
      session.leaseUntil === undefined ? "" : String(session.leaseUntil),
      deadline === undefined ? "" : String(deadline),
      // Relative to the write's own time, so the store needs no clock of its own.
      deadline === undefined
        ? ""
        : String(Math.max(0, deadline - Math.max(connectedAt, disconnectedAt ?? 0)) + RETENTION_MS),
    ];
  }

  #eval(script: string, clientId: string, args: string[]): Promise<unknown> {
    return this.#call(() => this.#redis.eval(script, [this.key(clientId), this.#index], [clientId, ...args]));
  }

  /** One round trip; any failure of Redis or of the way there is STORE_UNAVAILABLE. */
  async #call<T>(request: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new GatewayError("STORE_UNAVAILABLE", "session store is closed");
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
   * A stored record as a Session. Unreadable records are reported; `get` refuses them with an
   * error (its caller must not overwrite what it cannot read), a claim skips them.
   */
  #decode(clientId: string, [data, epoch, lease, deadline]: Row, strict: boolean): Session | undefined {
    let parsed: Session | string;
    try {
      parsed = parseRecord(clientId, data, epoch, lease, deadline);
    } catch (error) {
      parsed = `data is not JSON (${(error as Error).message})`;
    }
    return typeof parsed === "string" ? this.#unreadable(clientId, parsed, strict) : parsed;
  }

  #unreadable(clientId: string, problem: string, strict: boolean): undefined {
    this.#options.onUnreadable?.(clientId, problem);
    if (strict) {
      throw new GatewayError(
        "STORE_UNAVAILABLE",
        `the stored session of ${clientId} is unreadable (${problem}); an operator must remove it`,
        false,
      );
    }
    return undefined;
  }
}

/** A session from its stored fields, or what is wrong with them. */
function parseRecord(
  clientId: string,
  data: string | null,
  epoch: string | null,
  lease: string | null,
  deadline: string | null,
): Session | string {
  if (data === null) return "no data field";
  const epochNumber = integer(epoch);
  if (epochNumber === undefined) return `epoch ${JSON.stringify(epoch)} is not a number`;
  const record: unknown = JSON.parse(data);
  if (!record || typeof record !== "object") return "data is not an object";
  const r = record as Record<string, unknown>;
  if (r.clientId !== clientId) return `clientId ${JSON.stringify(r.clientId)} does not match the key`;
  if (r.state !== "connected" && r.state !== "disconnected") return `state ${JSON.stringify(r.state)}`;
  if (typeof r.connectedAt !== "number") return "connectedAt missing";
  if (r.disconnectedAt !== undefined && typeof r.disconnectedAt !== "number") {
    return "disconnectedAt not a number";
  }
  if (r.nodeId !== undefined && typeof r.nodeId !== "string") return "nodeId not a string";
  if (!Array.isArray(r.subscriptions) || !r.subscriptions.every(isSubscription)) {
    return "subscriptions missing or malformed";
  }
  const leaseUntil = integer(lease);
  const reconnectionDeadline = integer(deadline);
  if (lease !== null && leaseUntil === undefined) return "lease is not a number";
  if (deadline !== null && reconnectionDeadline === undefined) return "deadline is not a number";
  const session: Session = {
    clientId,
    state: r.state,
    epoch: epochNumber,
    connectedAt: r.connectedAt,
    subscriptions: r.subscriptions,
  };
  if (r.nodeId !== undefined) session.nodeId = r.nodeId as string;
  if (leaseUntil !== undefined) session.leaseUntil = leaseUntil;
  if (r.disconnectedAt !== undefined) session.disconnectedAt = r.disconnectedAt as number;
  if (reconnectionDeadline !== undefined) session.reconnectionDeadline = reconnectionDeadline;
  return session;
}

function integer(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || !/^-?\d+$/.test(value)) return undefined;
  return Number(value);
}

function isSubscription(value: unknown): value is Subscription {
  if (!value || typeof value !== "object") return false;
  const s = value as Record<string, unknown>;
  return typeof s.endpoint === "string" && typeof s.boundAt === "number" &&
    !!s.params && typeof s.params === "object" &&
    Object.values(s.params as object).every((p) => typeof p === "string");
}
