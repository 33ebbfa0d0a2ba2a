/**
 * The Lua scripts of the Redis session store (src/session/redis.ts), one per lifecycle step:
 * each checks the session's epoch and updates the session hash and the two indexes together,
 * atomically, in one round trip. The hash layout they share is in redis-record.ts.
 *
 * KEYS are the session's hash, the deadline index (client IDs by reconnection deadline, for
 * cleanup), the lease index (connected client IDs by lease end, for counting who is connected),
 * the client's publish ledger (id -> receipt JSON, '' while pending), the ledger's times (id
 * by last write, for expiry and eviction), the client's SSE replay log (a list of entries, oldest
 * first) and the log's totals (a hash of `bytes` held, `evicted` since the last take and the id
 * the last take `confirmed`), in that order, unless a script says otherwise.
 *
 * Over 400 lines of Lua in one file on purpose: every script writes the same hash fields and
 * indexes, with KEYS in the order above, so they are read and changed together.
 */

/** Puts a session into (or out of) the indexes and sets its key's lifetime. */
const INDEX = `
local function index(id, deadline, ttl, lease)
  if deadline ~= '' then
    redis.call('ZADD', KEYS[2], deadline, id)
    redis.call('PEXPIRE', KEYS[1], ttl)
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('PERSIST', KEYS[1])
  end
  if lease ~= '' then redis.call('ZADD', KEYS[3], lease, id) else redis.call('ZREM', KEYS[3], id) end
end
`;

/**
 * ARGV: id, deadline, ttl, lease, expectedEpoch ('' to create), then the hash's field/value
 * pairs. Creates (if absent) or replaces (if the epoch matches) the whole record.
 */
export const WRITE = INDEX + `
if ARGV[5] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
  -- A fresh session starts without a ledger or log, even where the old ones outlived its key.
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7])
else
  if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[5] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
index(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
`;

/**
 * Counts a session as one of its subject's: ARGV[8] the subject, ARGV[9] the most it may hold
 * ('' for no bound), ARGV[10] the key prefix. The subject's set is `{prefix}~subject:{subject}`;
 * members whose session key is gone (expired by its TTL) are pruned when the set is full, so the
 * bound counts live sessions. Returns false when the subject holds its maximum.
 *
 * With ARGV[11] 'apart' (the sharded layout, where the set lives in another slot), the set was
 * checked before the script by ADMIT: ARGV[9] is '0' when it was full, '' when it made room.
 */
const OWN = `
local function own(id)
  if ARGV[8] == '' then return true end
  if ARGV[11] == 'apart' then return ARGV[9] ~= '0' end
  local set = ARGV[10] .. '~subject:' .. ARGV[8]
  if ARGV[9] ~= '' and redis.call('SCARD', set) >= tonumber(ARGV[9]) then
    for _, member in ipairs(redis.call('SMEMBERS', set)) do
      if redis.call('EXISTS', ARGV[10] .. member) == 0 then redis.call('SREM', set, member) end
    end
    if redis.call('SCARD', set) >= tonumber(ARGV[9]) then return false end
  end
  redis.call('SADD', set, id)
  redis.call('PEXPIRE', set, ARGV[6])
  return true
end
`;

/**
 * ARGV: id, now, node, leaseUntil, deadline, ttl, freshEpoch, subject ('' for none), maxSessions
 * ('' for none), keyPrefix. A
 * connecting client takes its session: created if absent, taken (epoch + 1) if within its
 * deadline. Returns {outcome, fields}: created, resumed, expired (left alone for the caller to
 * clean up), forbidden (another subject's), or unreadable (a key of another type, or an epoch or
 * deadline that is not a number).
 */
export const CONNECT = INDEX + OWN + `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return {'unreadable', {}} end
local held = {'state', 'connected', 'node', ARGV[3], 'connectedAt', ARGV[2], 'lease', ARGV[4], 'deadline', ARGV[5]}
local outcome = 'created'
if kind == 'none' then
  if not own(ARGV[1]) then return {'limited', {}} end
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[7], unpack(held))
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'subject', ARGV[8]) end
else
  local deadline = redis.call('HGET', KEYS[1], 'deadline')
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if (deadline and not tonumber(deadline)) or not epoch or not tonumber(epoch) then
    return {'unreadable', redis.call('HGETALL', KEYS[1])}
  end
  if deadline and tonumber(deadline) < tonumber(ARGV[2]) then return {'expired', redis.call('HGETALL', KEYS[1])} end
  local owner = redis.call('HGET', KEYS[1], 'subject')
  if owner and owner ~= ARGV[8] then return {'forbidden', {}} end
  if not owner and not own(ARGV[1]) then return {'limited', {}} end
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'subject', ARGV[8]) end
  redis.call('HDEL', KEYS[1], 'disconnectedAt', 'claim')
  redis.call('HINCRBY', KEYS[1], 'epoch', 1)
  redis.call('HSET', KEYS[1], unpack(held))
  outcome = 'resumed'
end
index(ARGV[1], ARGV[5], ARGV[6], ARGV[4])
return {outcome, redis.call('HGETALL', KEYS[1])}
`;

/** ARGV: id, epoch, now, deadline, ttl. Marks the session disconnected. */
export const RELEASE = INDEX + `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'node', 'lease', 'claim')
redis.call('HSET', KEYS[1], 'state', 'disconnected', 'disconnectedAt', ARGV[3], 'deadline', ARGV[4])
index(ARGV[1], ARGV[4], ARGV[5], '')
return 1
`;

/** ARGV: id, epoch, field, value ('' removes the field). */
export const SUBSCRIPTION = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], ARGV[3]) else redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
return 1
`;

/**
 * ARGV: id, expectedEpoch, keyPrefix, then 'apart' in the sharded layout. The publish ledger and
 * the replay log go with the session, and it leaves its subject's set; with 'apart' the set is
 * in another slot, and the script returns {1, subject} ('' for none) for the caller to do that.
 */
export const DELETE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
local subject = redis.call('HGET', KEYS[1], 'subject')
if subject and ARGV[4] ~= 'apart' then redis.call('SREM', ARGV[3] .. '~subject:' .. subject, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[4] == 'apart' then return {1, subject or ''} end
return 1
`;

/**
 * ARGV: id, now, claimTtl. Returns nil (nothing to claim), or
 * {outcome, fields}: claimed, or unreadable for a record whose deadline cannot be read (left
 * unclaimed for the caller to report).
 */
export const CLAIM = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return {'unreadable', {}} end
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if kind == 'none' or not deadline then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if kind == 'none' then redis.call('ZREM', KEYS[3], ARGV[1]) end
  return nil
end
if not tonumber(deadline) then return {'unreadable', redis.call('HGETALL', KEYS[1])} end
local now = tonumber(ARGV[2])
if tonumber(deadline) >= now then return nil end
local claim = tonumber(redis.call('HGET', KEYS[1], 'claim'))
if claim ~= nil and claim > now then return nil end
local claimed_until = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'claim', claimed_until)
-- Out of the expired range while the claim holds: a cleanup that keeps failing never fills a
-- page again before its claim lapses, and then it comes back by itself.
redis.call('ZADD', KEYS[2], claimed_until, ARGV[1])
return {'claimed', redis.call('HGETALL', KEYS[1])}
`;

/**
 * KEYS: the deadline index, the lease index, then one session key per lease. ARGV: now,
 * leaseUntil, deadline, ttl, then (id, epoch) per lease. Renews the leases whose epoch still
 * matches and that no cleanup claim holds; returns the others as flat (id, reason) pairs:
 * 'taken' (the epoch moved on) or 'expired' (gone, or claimed by a cleanup, which is honoured).
 */
export const RENEW = `
local lost = {}
local now = tonumber(ARGV[1])
for i = 3, #KEYS do
  local id = ARGV[2 * i - 1]
  local fields = redis.call('HMGET', KEYS[i], 'epoch', 'claim')
  local claim = tonumber(fields[2])
  if not fields[1] then
    lost[#lost + 1] = id
    lost[#lost + 1] = 'expired'
  elseif fields[1] ~= ARGV[2 * i] then
    lost[#lost + 1] = id
    lost[#lost + 1] = 'taken'
  elseif claim ~= nil and claim > now then
    lost[#lost + 1] = id
    lost[#lost + 1] = 'expired'
  else
    redis.call('HDEL', KEYS[i], 'claim')
    redis.call('HSET', KEYS[i], 'lease', ARGV[2], 'deadline', ARGV[3])
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  end
end
return lost
`;

/**
 * KEYS: the deadline index, the lease index. ARGV: now, retention. Returns {sessions, connected}:
 * every session has a deadline; connected ones hold a lease that has not lapsed. Lease entries a
 * retention old (their key expired unclaimed) are dropped on the way.
 */
export const COUNTS = `
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf')}
`;

/** Removes ledger entries from both ledger keys, one by one: unpack of many would overflow the stack. */
const FORGET = `
local function forget(ids)
  for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
  end
end
`;

/**
 * ARGV: id, publishId, now, ttl, maxIds. Reserves a publish id: drops the entries last written
 * `ttl` or more before `now`, then returns {'pending'} or {'done', receipt} for a held id, or
 * records it as pending (evicting the least recently written past `maxIds`) and returns {'new'}.
 * A client without a session has no ledger: {'new'}, nothing written.
 */
export const RESERVE_PUBLISH = FORGET + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'new'} end
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[4])
forget(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', cutoff))
local receipt = redis.call('HGET', KEYS[4], ARGV[2])
if receipt == '' then return {'pending'} end
if receipt then return {'done', receipt} end
local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[5]) + 1
if excess > 0 then forget(redis.call('ZRANGE', KEYS[5], 0, excess - 1)) end
redis.call('HSET', KEYS[4], ARGV[2], '')
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
return {'new'}
`;

/**
 * ARGV: id, publishId, now, ttl, receipt ('' : the publish failed). Completes a pending
 * reservation that is still within its ttl: stores the receipt (its time now) or removes the
 * reservation. Anything else is left alone. Returns 1 if it wrote.
 */
export const COMPLETE_PUBLISH = `
if redis.call('HGET', KEYS[4], ARGV[2]) ~= '' then return 0 end
local at = tonumber(redis.call('ZSCORE', KEYS[5], ARGV[2]))
if not at or at <= tonumber(ARGV[3]) - tonumber(ARGV[4]) then return 0 end
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[4], ARGV[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
  return 1
end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
return 1
`;

/**
 * Reads a replay entry without decoding its JSON (redis.ts writes `{"bytes":N,"id":...` with those
 * two first): its size, and whether it holds `needle`, the JSON text of an id.
 */
const ENTRY = `
local function size(entry) return tonumber(string.match(entry, '^{"bytes":(%d+),')) or 0 end
local function holds(entry, needle)
  local at = string.find(entry, ',', 1, true) + 1
  return string.sub(entry, at, at + #needle + 5) == '"id":' .. needle .. ','
end
`;

/**
 * ARGV: id, maxBytes, ttl, then the entries. Appends them to the log, then evicts from the oldest
 * while the log holds more than maxBytes (an eviction also voids the confirmed id: what followed
 * it is gone). Returns how many it evicted; a client without a session has no log: 0, nothing
 * written.
 */
export const APPEND_REPLAY = ENTRY + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local bytes = tonumber(redis.call('HGET', KEYS[7], 'bytes')) or 0
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[6], ARGV[i])
  bytes = bytes + size(ARGV[i])
end
local evicted = 0
while bytes > tonumber(ARGV[2]) do
  local entry = redis.call('LPOP', KEYS[6])
  if not entry then break end
  bytes = bytes - size(entry)
  evicted = evicted + 1
end
redis.call('HSET', KEYS[7], 'bytes', math.max(bytes, 0))
if evicted > 0 then
  redis.call('HINCRBY', KEYS[7], 'evicted', evicted)
  redis.call('HDEL', KEYS[7], 'confirmed')
end
redis.call('PEXPIRE', KEYS[6], ARGV[3])
redis.call('PEXPIRE', KEYS[7], ARGV[3])
return evicted
`;

/**
 * ARGV: id, then the JSON text of the last event id, if any. Drops the entries up to and
 * including that id's, and returns {rest, evicted, found (1 or 0)}; resets evicted. The id the
 * last take confirmed is found again, with nothing to drop. The lifetime is left as it is: a take
 * writes only into keys that exist.
 */
export const TAKE_REPLAY = ENTRY + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {{}, 0, 0} end
local entries = redis.call('LRANGE', KEYS[6], 0, -1)
local totals = redis.call('HMGET', KEYS[7], 'bytes', 'evicted', 'confirmed')
local last = ARGV[2]
local dropped = 0
local found = last ~= nil and last == totals[3]
if last and not found then
  for i, entry in ipairs(entries) do
    if holds(entry, last) then
      dropped = i
      found = true
      break
    end
  end
end
local rest = {}
for i = dropped + 1, #entries do rest[#rest + 1] = entries[i] end
if dropped > 0 then redis.call('LTRIM', KEYS[6], dropped, -1) end
-- Only into a hash that exists: one created here would have no lifetime.
if redis.call('EXISTS', KEYS[7]) == 1 then
  local bytes = tonumber(totals[1]) or 0
  for i = 1, dropped do bytes = bytes - size(entries[i]) end
  redis.call('HSET', KEYS[7], 'bytes', math.max(bytes, 0), 'evicted', 0)
  if dropped > 0 then redis.call('HSET', KEYS[7], 'confirmed', last) end
end
return {rest, tonumber(totals[2]) or 0, found and 1 or 0}
`;

/** KEYS: session. The record's fields, as a flat field/value array. */
export const GET = `return redis.call('HGETALL', KEYS[1])`;

/** KEYS: the deadline index. ARGV: cursor, count. One ZSCAN step: {nextCursor, {member, score, ...}}. */
export const SCAN_SESSIONS = `return redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])`;

/**
 * KEYS: the nodes' records (a hash of id -> JSON), their times (a sorted set of id by `until`),
 * this node's signals (a list of JSON, oldest first). ARGV: id, record JSON, until. Keeps the
 * record and takes the signals queued for it.
 */
export const ANNOUNCE = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local signals = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
return signals
`;

/** KEYS: the nodes' records and times, as ANNOUNCE. ARGV: now. Drops lapsed nodes; returns the others' records. */
export const NODES = `
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])) do
  redis.call('HDEL', KEYS[1], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
local records = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local record = redis.call('HGET', KEYS[1], id)
  if record then table.insert(records, record) end
end
return records
`;

/**
 * KEYS: the nodes' times, the node's signals. ARGV: id, now, signal JSON, ttl. Queues a signal
 * for a node whose record holds at `now`; returns 1, or 0 (no such node, nothing queued).
 */
export const SIGNAL = `
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held or tonumber(held) < tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`;

/**
 * The sharded layout's subject bound, before CONNECT (see OWN). KEYS: the subject's set. ARGV:
 * id, maxSessions, ttl. Returns 'member' (already counted), 'added', or the members when the set
 * is full, for the caller to prune those whose session is gone (their keys are in other slots).
 */
export const ADMIT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'member'
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return redis.call('SMEMBERS', KEYS[1]) end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'added'
`;

/** KEYS: a set. ARGV: the members to remove, one by one (unpack of many would overflow the stack). */
export const FORGET_MEMBERS = `
for _, member in ipairs(ARGV) do redis.call('SREM', KEYS[1], member) end
return 0
`;

/** KEYS: a session. 1 if it exists. */
export const EXISTS = `return redis.call('EXISTS', KEYS[1])`;

/**
 * KEYS: a deadline index. ARGV: now, limit. The IDs whose deadline is before now, oldest first,
 * as flat (id, deadline) pairs: the sharded layout merges the shards' pages by deadline.
 */
export const EXPIRED = `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
`;

/**
 * The start-up check. KEYS: the layout marker. ARGV: a probe, this node's layout. Writes the
 * layout if no node did (SET NX) and returns {probe, the layout Redis holds}.
 */
export const PROBE = `
redis.call('SET', KEYS[1], ARGV[2], 'NX')
return {ARGV[1], redis.call('GET', KEYS[1])}
`;
