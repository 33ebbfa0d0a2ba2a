/**
 * The key layout of the Redis session store (redis.ts): which keys a client's session lives in,
 * and the marker that records the layout in Redis so two layouts never share data.
 *
 * Two layouts:
 * - single (no `shards`): `{prefix}{clientId}`, with the indexes `{prefix}~deadlines` and
 *   `{prefix}~leases` shared by every session. Every lifecycle script touches a session and the
 *   shared indexes, so it runs on one Redis only (plain or Sentinel-managed), never on a Cluster.
 * - sharded (`shards: N`): each client ID belongs to one of N shards by a stable hash (FNV-1a
 *   32-bit of its UTF-8 bytes, mod N), and every key of a shard carries the hash tag `{shard}`
 *   right after the prefix: `{prefix}{7}{clientId}`, `{prefix}{7}~deadlines`, `{prefix}{7}~leases`.
 *   Redis Cluster puts all of a shard's keys into one slot, so each script still runs on one
 *   node, in one round trip; the shards spread over the cluster's primaries. The same layout on
 *   a single Redis lets a deployment move to a cluster without changing it.
 *
 * The marker `{prefix}~layout` holds the layout's description, written once (SET NX) by the
 * first node; a node configured for another one refuses to start (redis.ts, ping).
 */

/** FNV-1a, 32 bits, of the UTF-8 bytes of `text`: the same on every node, runtime and version. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The shard of a client ID (or of a subject) among `shards`. */
export function shardOf(id: string, shards: number): number {
  return fnv1a32(id) % shards;
}

export class KeyLayout {
  readonly prefix: string;
  readonly shards?: number;

  constructor(prefix: string, shards?: number) {
    this.prefix = prefix;
    this.shards = shards;
  }

  /** The marker key. */
  get marker(): string {
    return `${this.prefix}~layout`;
  }

  /** What the marker holds for this layout, also how messages name it. */
  get description(): string {
    return `shards: ${this.shards ?? "none"}, keyPrefix: ${JSON.stringify(this.prefix)}`;
  }

  /** Every shard's key base: one (the prefix itself) without shards. */
  get bases(): string[] {
    if (this.shards === undefined) return [this.prefix];
    return Array.from({ length: this.shards }, (_, shard) => this.#base(shard));
  }

  /** The key base of `clientId`'s shard: every key of the client and its indexes start with it. */
  baseOf(clientId: string): string {
    return this.shards === undefined ? this.prefix : this.#base(shardOf(clientId, this.shards));
  }

  /** The session hash of `clientId`. */
  key(clientId: string): string {
    return this.baseOf(clientId) + clientId;
  }

  /** The deadline index of a key base. */
  deadlines(base: string): string {
    return `${base}~deadlines`;
  }

  /** The lease index of a key base. */
  leases(base: string): string {
    return `${base}~leases`;
  }

  /** The set of a subject's client IDs: in the subject's own shard, apart from its sessions. */
  subject(subject: string): string {
    const base = this.shards === undefined ? this.prefix : this.#base(shardOf(subject, this.shards));
    return `${base}~subject:${subject}`;
  }

  #base(shard: number): string {
    return `${this.prefix}{${shard}}`;
  }
}
