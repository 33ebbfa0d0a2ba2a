/**
 * The Kafka consume path: one fetch per topic-partition and node, shared by the clients bound to
 * it, and no consumer group members at all (DESIGN.md section 8).
 *
 * A client's state is its committed offsets in its own group `engine-{endpoint}-client-{clientId}`
 * (committed as a simple consumer does: see wire.ts). Binding reads them (a new binding takes the
 * topic's end or beginning and commits it first), so a bind costs a few requests and never waits
 * for a group to form; a resume on any node reads them again. Each partition is fetched from the
 * lowest next offset of its clients, and each client is handed only what lies at or after its own
 * position, in offset order. A message's offset is committed only once the hub settled it
 * (cumulative per partition). A refused delivery pauses the client: nothing more is handed over,
 * what was settled is committed, and the client leaves the fetch until the hub resumes it, when it
 * goes on from its committed offsets.
 *
 * Near 650 lines, one class on purpose: the fetch loops and the clients' readers are one state
 * machine. A fetch asks each partition from the lowest position of its readers and hands each
 * reader what lies at or after its own; a reader's settle, pause or stop changes what the next
 * fetch asks for. Both sides read and write `#readers`, `#feeds` and the delivered offsets under
 * the same per-client lock, so a split would give that state two writers. The Kafka requests are
 * in wire.ts, the lifecycle decisions in kafka-endpoint.ts.
 */
import type { KafkaMessage } from "kafkajs";
import type { DeliveryHandler, InboundMessage } from "../../core/endpoint.ts";
import type { Logger } from "../../core/logger.ts";
import { KeyedMutex } from "../../core/mutex.ts";
import type { Scheduler, TimerId } from "../../core/scheduler.ts";
import type { FetchedPartition, KafkaWire } from "./wire.ts";
import { OffsetOutOfRange } from "./wire.ts";
import { isConnectionError } from "./kafka-log.ts";
import { skipDeleted } from "./retention.ts";

export interface SharedFetchOptions {
  /** The endpoint's name, for deliveries and log lines. */
  endpoint: string;
  wire: KafkaWire;
  /** The group holding a gateway client's offsets. */
  groupId(clientId: string): string;
  /** Where a new binding starts on a partition its group has no offset for. */
  startFrom: "latest" | "earliest";
  logger: Logger;
  scheduler: Scheduler;
  /**
   * A fetch failed for want of a broker connection: the endpoint's BrokerReachability reports
   * the outage (once), so the fetch only says so at debug.
   */
  onConnectionError?: () => void;
}

/**
 * A Kafka offset (a 64-bit integer) as a number while it is exact as one, else a bigint: parsed
 * without a BigInt per message, and numbers and bigints compare exactly with each other.
 */
type Offset = number | bigint;

function toOffset(text: string): Offset {
  const n = Number(text);
  return n <= Number.MAX_SAFE_INTEGER ? n : BigInt(text);
}

function plusOne(offset: Offset): Offset {
  return typeof offset === "number" && offset < Number.MAX_SAFE_INTEGER ? offset + 1 : BigInt(offset) + 1n;
}

/** One bound client on this node. */
interface Reader {
  clientId: string;
  topic: string;
  /** Set when a delivery was refused or the client is being taken offline: nothing more is handed over. */
  paused: boolean;
  /**
   * Off the fetch, what was settled committed: a later settle is not committed (after an unbind
   * it would make the deleted group again), so that message comes again on resume.
   */
  stopped: boolean;
  /** Per partition, the next offset to hand over. */
  positions: Map<number, Offset>;
  /** Settled and not yet committed: the next offset to commit, per partition. */
  settled: Map<number, Offset>;
  /** What the broker holds for the client, per partition, and when it was last committed. */
  committed: Map<number, Offset>;
  committedAt: number;
  /** Committed as every offset's metadata while this node reads for the client (see `start`). */
  mark: string;
  commitTimer?: TimerId;
  /** The commit in flight (one at a time per client; settles meanwhile go in the next). */
  committing: Promise<void>;
  /** Set while a fetch answer is handed over: its settles are committed at its end, with no timer. */
  delivering: boolean;
  /**
   * Positions read from committed offsets with nothing known here of what was delivered before
   * (a resume after another node had the client, or the first here): per partition, offsets
   * below the log end at its first fetch may have reached the client, and are flagged redelivered.
   */
  unknownBelow?: Map<number, Offset>;
}

/** One topic-partition fetched on this node, and the clients reading it. */
interface Feed {
  topic: string;
  partition: number;
  leader: number;
  readers: Set<Reader>;
  /**
   * Whether the main fetch has asked for this partition since a client joined it. Until then the
   * join fetch serves it, so a bind or resume does not wait for the main fetch's long poll.
   */
  inMain: boolean;
}

/**
 * The main fetch asks for every fed partition of a broker and long-polls up to fetch_max_wait;
 * the join fetch, on a connection of its own, asks only for partitions a client just joined and
 * polls briefly, until the main fetch takes them. Both may hold one partition at once: a client
 * takes from an answer only what starts at its own position, so nothing is handed over twice.
 */
type Lane = "main" | "join";
/** The join fetch's longest poll, in ms. */
const JOIN_WAIT_MS = 100;
/**
 * A member-less group's offsets expire offsets.retention.minutes (7 days by default) after their
 * last commit, even while its client is bound and idle: a client's offsets are committed again
 * when they are a day old (looked at hourly).
 */
const RECOMMIT_AFTER_MS = 24 * 3600_000;
const RECOMMIT_CHECK_MS = 3600_000;

/** A partition to fetch, from where. */
interface Want {
  topic: string;
  partition: number;
  offset: string;
  feed: Feed;
}

const EMPTY = new Uint8Array(0);
/** Pause after a failed fetch before the next, in ms. */
const RETRY_MS = 1000;
/** Look-ups of a client's topic before a bind gives up (a topic just made may not be in metadata yet). */
const TOPIC_ATTEMPTS = 8;

export class SharedFetch {
  #options: SharedFetchOptions;
  #handler?: DeliveryHandler;
  #readers = new Map<string, Reader>();
  #feeds = new Map<string, Feed>();
  /** A fetch loop per lane and broker that leads a fed partition; woken when its feeds change. */
  #loops = new Map<string, { wake: () => void }>();
  #locks = new KeyedMutex();
  /** Per client and partition, the highest offset handed over by this node (for `redelivered`). */
  #delivered = new Map<string, Map<number, Offset>>();
  #closed = false;
  /** Brokers whose last fetch failed (not for want of a connection): warned about once. */
  #failing = new Set<number>();
  #recommitTimer?: TimerId;
  /**
   * Per client, messages that retention deleted before this node could hand them over, found at
   * a fetch (OFFSET_OUT_OF_RANGE) rather than at the resume: reported by the next `takeLost`.
   */
  #lost = new Map<string, number>();
  /** Per client, the mark this node committed at its last start for it (see `start`). */
  #marks = new Map<string, string>();
  /** This fetch's own prefix of marks (unique per process), and its starts so far. */
  #instance = crypto.randomUUID().slice(0, 8);
  #starts = 0;

  constructor(options: SharedFetchOptions) {
    this.#options = options;
  }

  /** Where deliveries go from now on. */
  deliverTo(handler: DeliveryHandler): void {
    this.#handler = handler;
  }

  /**
   * Binds the client to `topic`: a new binding (see `#start`, `fresh`). Nothing to do while it
   * reads `topic` here, unpaused; else `canStart` is asked (it throws to refuse), what the client
   * read here before stops, and the new reading starts. Resolves whether a reading started;
   * rejects with `canStart`'s error or the Kafka error. Every lifecycle step of a client runs
   * after its earlier ones.
   */
  bind(clientId: string, topic: string, canStart: () => void): Promise<boolean> {
    return this.#run(clientId, () => this.#restart(clientId, topic, true, canStart));
  }

  /** Resumes the client from its committed offsets: as `bind`, with nothing to do while it reads here at all. */
  resume(clientId: string, topic: string, canStart: () => void): Promise<boolean> {
    return this.#run(clientId, () => this.#restart(clientId, topic, false, canStart));
  }

  /**
   * Takes the client off the fetch: nothing more is handed over from now on, even from a fetch
   * answer being delivered; what was settled is committed, its offsets stay with the broker.
   */
  suspend(clientId: string): Promise<void> {
    const reader = this.#readers.get(clientId);
    if (reader) reader.paused = true;
    return this.#run(clientId, () => this.#stop(clientId));
  }

  /** Suspends every client reading here (the endpoint stops). */
  async suspendAll(): Promise<void> {
    await Promise.all([...this.#readers.keys()].map((id) => this.suspend(id)));
  }

  /** Takes the client off the fetch and deletes its group; rejects with the Kafka error. */
  unbind(clientId: string): Promise<void> {
    return this.#run(clientId, async () => {
      await this.#stop(clientId);
      await this.#forget(clientId);
    });
  }

  #run<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(clientId, fn);
  }

  /** A bind or resume under the lock: see `bind`. */
  async #restart(clientId: string, topic: string, fresh: boolean, canStart: () => void): Promise<boolean> {
    const existing = this.#readers.get(clientId);
    if (existing && !existing.paused && (!fresh || existing.topic === topic)) return false;
    canStart();
    if (existing) await this.#stop(clientId);
    await this.#start(clientId, topic, fresh);
    return true;
  }

  get size(): number {
    return this.#readers.size;
  }

  /**
   * Starts reading `topic` for the client from its committed offsets. `fresh` (a new binding):
   * partitions with no committed offset take the topic's end (or beginning) and that is committed
   * before this resolves, so what is produced from now on is delivered, here or on any node that
   * resumes the client. On a resume they do the same (the group was lost: nothing better is known).
   * Every start commits the positions with a mark of this node's (the offsets' metadata), which
   * its later commits for the client carry too: at the next start here, another mark means
   * another node read for the client meanwhile (and may have delivered what was not committed),
   * so what this node knows it delivered no longer says what the client had, and everything in
   * the topic at the first fetch is flagged `redelivered`.
   * Creates the topic if it does not exist. Rejects with the Kafka error; nothing is delivered then.
   */
  async #start(clientId: string, topic: string, fresh: boolean): Promise<void> {
    const { wire, groupId, startFrom } = this.#options;
    this.#closed = false;
    const group = groupId(clientId);
    const leaders = await this.#partitions(topic);
    const partitions = leaders.map((l) => l.partition);
    const marked = await wire.committedMarked(group, topic, partitions);
    const committed = new Map([...marked].map(([p, c]) => [p, c.offset]));
    // What this node knows it delivered holds only if no other node read for the client since
    // this one last started to: each start commits a mark of its own with the offsets.
    const mine = this.#marks.get(clientId);
    const current = mine !== undefined && [...marked.values()].every((c) => c.metadata === mine);
    if (!current) this.#delivered.delete(clientId);
    const missing = partitions.filter((p) => committed.get(p) === "-1");
    if (missing.length > 0) {
      const start = await wire.offsets(topic, missing, startFrom);
      for (const [p, o] of start) committed.set(p, o);
    }
    const mark = `${this.#instance}.${++this.#starts}`;
    await wire.commit(group, topic, committed, () => mark);
    this.#marks.set(clientId, mark);
    const positions = new Map([...committed].map(([p, o]) => [p, toOffset(o)]));
    const reader: Reader = {
      clientId,
      topic,
      paused: false,
      stopped: false,
      positions,
      settled: new Map(),
      committed: new Map(positions),
      committedAt: this.#options.scheduler.now(),
      mark,
      committing: Promise.resolve(),
      delivering: false,
      // Positions all from committed offsets (a resume, or a bind whose group was left behind).
      unknownBelow: (!fresh || missing.length === 0) && !this.#delivered.has(clientId)
        ? new Map()
        : undefined,
    };
    this.#readers.set(clientId, reader);
    this.#recommitTimer ??= this.#options.scheduler.setInterval(() => this.#recommit(), RECOMMIT_CHECK_MS);
    for (const { partition, leader } of leaders) {
      const feed = this.#feed(topic, partition, leader);
      feed.readers.add(reader);
      feed.inMain = false;
    }
    for (const leader of new Set(leaders.map((l) => l.leader))) {
      this.#loop(leader, "main");
      this.#loop(leader, "join");
    }
  }

  /** Takes the client off the fetch and commits what was settled; its offsets stay with the broker. */
  async #stop(clientId: string): Promise<void> {
    const reader = this.#readers.get(clientId);
    if (!reader) return;
    reader.paused = true;
    reader.stopped = true;
    this.#readers.delete(clientId);
    for (const feed of this.#feeds.values()) {
      if (feed.readers.delete(reader) && feed.readers.size === 0) {
        this.#feeds.delete(`${feed.topic}\0${feed.partition}`);
      }
    }
    await this.#commit(reader);
  }

  /**
   * What retention deleted of the client's messages while it was away, for the resume report
   * (under the client's lock, before its resume), counted once. Reading on this node, only
   * what its fetch found deleted since the last call; else also what lies between its committed
   * offsets and the logs' start, which becomes its position (see retention.ts). Rejects with the
   * Kafka error (nothing moved then).
   */
  takeLost(clientId: string, topic: string): Promise<number> {
    return this.#run(clientId, () => this.#takeLost(clientId, topic));
  }

  async #takeLost(clientId: string, topic: string): Promise<number> {
    const pending = this.#lost.get(clientId) ?? 0;
    this.#lost.delete(clientId);
    if (this.#readers.has(clientId)) return pending;
    const { wire, groupId, logger, endpoint } = this.#options;
    try {
      return pending + await skipDeleted(wire, groupId(clientId), topic, { logger, endpoint, clientId });
    } catch (error) {
      this.keepLost(clientId, pending); // for the next report
      throw error;
    }
  }

  /** Losses found too late for the report they were asked for: in the next one. */
  keepLost(clientId: string, count: number): void {
    if (count > 0) this.#lost.set(clientId, (this.#lost.get(clientId) ?? 0) + count);
  }

  /** Forgets what was delivered to a client and deletes its group (it was unbound). */
  async #forget(clientId: string): Promise<void> {
    this.#delivered.delete(clientId);
    this.#lost.delete(clientId);
    this.#marks.delete(clientId);
    await this.#options.wire.deleteGroup(this.#options.groupId(clientId));
  }

  /** Stops every fetch loop (after every client was stopped) and closes the connections. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#recommitTimer !== undefined) this.#options.scheduler.clear(this.#recommitTimer);
    this.#recommitTimer = undefined;
    for (const loop of this.#loops.values()) loop.wake();
    await this.#options.wire.disconnect();
  }

  /** The topic's partitions, creating the topic when it does not exist (a topic per client is usual). */
  async #partitions(topic: string) {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#options.wire.partitions(topic);
      } catch (error) {
        if (attempt === TOPIC_ATTEMPTS) throw error;
        if ((error as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION" || attempt === 1) {
          await this.#options.wire.createTopic(topic).catch((e) =>
            this.#options.logger.debug(
              `[Kafka] ${this.#options.endpoint}: creating ${topic}: ${(e as Error).message}`,
            )
          );
        }
        await this.#options.scheduler.sleep(50 * attempt);
      }
    }
  }

  #feed(topic: string, partition: number, leader: number): Feed {
    const key = `${topic}\0${partition}`;
    let feed = this.#feeds.get(key);
    if (!feed) this.#feeds.set(key, feed = { topic, partition, leader, readers: new Set(), inMain: false });
    return feed;
  }

  /** Makes sure broker `nodeId` has a fetch loop in `lane`, and wakes it (its feeds changed). */
  #loop(nodeId: number, lane: Lane): void {
    const key = `${lane}:${nodeId}`;
    const running = this.#loops.get(key);
    if (running) return running.wake();
    let wake = () => {};
    const loop = { wake: () => wake() };
    this.#loops.set(key, loop);
    void (async () => {
      try {
        while (!this.#closed) {
          const wants = this.#wants(nodeId, lane);
          if (wants.length === 0) {
            // Nothing to fetch from this broker: parked until a bind or resume wakes it.
            await new Promise<void>((resolve) => (wake = resolve));
            wake = () => {};
            continue;
          }
          await this.#fetchOnce(nodeId, lane, wants);
        }
      } finally {
        this.#loops.delete(key);
      }
    })();
  }

  /**
   * Per partition led by `nodeId` with a client reading (in the join lane: only those the main
   * fetch has not asked for since a client joined), the lowest next offset of its readers.
   */
  #wants(nodeId: number, lane: Lane): Want[] {
    const wants: Want[] = [];
    for (const feed of this.#feeds.values()) {
      if (feed.leader !== nodeId || (lane === "join" && feed.inMain)) continue;
      let low: Offset | undefined;
      for (const reader of feed.readers) {
        const position = reader.positions.get(feed.partition);
        if (reader.paused || position === undefined) continue;
        if (low === undefined || position < low) low = position;
      }
      if (low !== undefined) {
        wants.push({ topic: feed.topic, partition: feed.partition, offset: String(low), feed });
        if (lane === "main") feed.inMain = true;
      }
    }
    return wants;
  }

  async #fetchOnce(nodeId: number, lane: Lane, wants: Want[]): Promise<void> {
    let answers: FetchedPartition[];
    try {
      const wait = lane === "main"
        ? this.#options.wire.fetchMaxWait
        : Math.min(JOIN_WAIT_MS, this.#options.wire.fetchMaxWait);
      answers = await this.#options.wire.fetch(nodeId, wants, lane, wait);
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof OffsetOutOfRange) return await this.#outOfRange(error.topic, error.partition);
      const line = `[Kafka] ${this.#options.endpoint}: fetch from broker ${nodeId} failed (${
        (error as Error).message
      }); retrying`;
      if (isConnectionError(error)) {
        this.#options.onConnectionError?.();
        this.#options.logger.debug(line);
      } else if (this.#failing.has(nodeId)) {
        this.#options.logger.debug(line);
      } else {
        // Once per broker until a fetch from it works again: not a line every retry.
        this.#failing.add(nodeId);
        this.#options.logger.warn(line);
      }
      await this.#options.scheduler.sleep(RETRY_MS);
      await this.#relead(wants.map((w) => w.feed));
      return;
    }
    this.#failing.delete(nodeId);
    for (const answer of answers) {
      const feed = this.#feeds.get(`${answer.topic}\0${answer.partition}`);
      if (!feed) continue;
      const fetched = toOffset(answer.fetchedOffset);
      const next = toOffset(answer.next);
      const messages = answer.messages.map((m) => ({ message: m, offset: toOffset(m.offset) }));
      for (const reader of [...feed.readers]) this.#handOver(reader, answer, fetched, next, messages);
    }
  }

  /**
   * Hands one fetched answer to one reader, in order, from its own position on, until one is
   * refused. A reader whose position lies before the fetched offset (it joined while the fetch
   * was out) gets nothing from this answer: the next fetch starts at its position.
   */
  #handOver(
    reader: Reader,
    answer: FetchedPartition,
    fetched: Offset,
    next: Offset,
    messages: Array<{ message: KafkaMessage; offset: Offset }>,
  ): void {
    const { topic, partition } = answer;
    const position = reader.positions.get(partition);
    if (reader.paused || position === undefined || position < fetched || position >= next) return;
    let delivered = this.#delivered.get(reader.clientId);
    if (!delivered) this.#delivered.set(reader.clientId, delivered = new Map());
    if (reader.unknownBelow && !reader.unknownBelow.has(partition)) {
      reader.unknownBelow.set(partition, toOffset(answer.highWatermark));
    }
    const unknownBelow = reader.unknownBelow?.get(partition) ?? -1;
    let high = delivered.get(partition) ?? -1;
    reader.delivering = true;
    try {
      for (const { message, offset } of messages) {
        if (offset < position) continue;
        const meta: Record<string, string | number> = { topic, partition, offset: message.offset };
        if (message.key) meta.key = message.key.toString();
        // One payload object for every client of this node: the hub prepares it once for all.
        const ok = this.#deliver(reader.clientId, {
          payload: message.value ?? EMPTY,
          meta,
          redelivered: offset <= high || offset < unknownBelow || undefined,
          settle: () => this.#settle(reader, partition, plusOne(offset)),
        });
        if (!ok) {
          // Not committed: the broker keeps it and everything after it for the resume.
          reader.paused = true;
          break;
        }
        if (offset > high) delivered.set(partition, high = offset);
        reader.positions.set(partition, plusOne(offset));
      }
      if (!reader.paused) reader.positions.set(partition, next);
    } finally {
      reader.delivering = false;
    }
    if (reader.settled.size > 0) void this.#commit(reader);
    if (reader.paused) {
      // Off the fetch until the hub resumes it (the lock orders this after the step running now).
      this.#options.scheduler.setTimeout(
        () =>
          void this.#run(reader.clientId, async () => {
            if (this.#readers.get(reader.clientId) === reader) await this.#stop(reader.clientId);
          }),
        0,
      );
    }
  }

  /** A message may be let go: its offset is committed soon (together with others settled by then). */
  #settle(reader: Reader, partition: number, next: Offset): void {
    if (reader.stopped) return;
    // Settles come in order per partition (cumulative acks), so the last is the highest.
    reader.settled.set(partition, next);
    if (reader.delivering) return;
    reader.commitTimer ??= this.#options.scheduler.setTimeout(() => void this.#commit(reader), 0);
  }

  /** Commits what was settled, after the commit in flight. A failed commit only means those come again. */
  #commit(reader: Reader): Promise<void> {
    if (reader.commitTimer !== undefined) this.#options.scheduler.clear(reader.commitTimer);
    reader.commitTimer = undefined;
    reader.committing = reader.committing.then(async () => {
      if (reader.settled.size === 0) return;
      const settled = new Map(reader.settled);
      reader.settled.clear();
      const offsets = new Map([...settled].map(([p, o]) => [p, String(o)]));
      try {
        await this.#options.wire.commit(
          this.#options.groupId(reader.clientId),
          reader.topic,
          offsets,
          () => reader.mark,
        );
        for (const [p, o] of settled) reader.committed.set(p, o);
        reader.committedAt = this.#options.scheduler.now();
      } catch (e) {
        const line = `[Kafka] Commit for ${reader.clientId} failed; those messages come again: ${
          (e as Error).message
        }`;
        // Without a broker, every client's commit fails: the reachability's one WARN says it.
        if (!isConnectionError(e)) return this.#options.logger.warn(line);
        this.#options.onConnectionError?.();
        this.#options.logger.debug(line);
      }
    });
    return reader.committing;
  }

  /** Commits again the offsets of clients that committed nothing for a day (see RECOMMIT_AFTER_MS). */
  #recommit(): void {
    const now = this.#options.scheduler.now();
    for (const reader of this.#readers.values()) {
      if (reader.paused || now - reader.committedAt < RECOMMIT_AFTER_MS) continue;
      for (const [p, o] of reader.committed) if (!reader.settled.has(p)) reader.settled.set(p, o);
      void this.#commit(reader);
    }
  }

  /**
   * One hand-over to the hub. An exception is a refusal: the client stops there and comes back
   * from its committed offsets on resume.
   */
  #deliver(clientId: string, message: InboundMessage): boolean {
    try {
      return this.#handler?.deliver(clientId, this.#options.endpoint, message) ?? false;
    } catch (error) {
      this.#options.logger.error(
        `[Kafka] ${this.#options.endpoint}: delivering to ${clientId} failed; kept by the broker until resume`,
        error,
      );
      return false;
    }
  }

  /** Leaders may have moved (a failed fetch): looks them up again and moves the feeds to their loops. */
  async #relead(feeds: Feed[]): Promise<void> {
    for (const topic of new Set(feeds.map((f) => f.topic))) {
      try {
        const leaders = await this.#options.wire.partitions(topic);
        for (const { partition, leader } of leaders) {
          const feed = this.#feeds.get(`${topic}\0${partition}`);
          if (feed && feed.leader !== leader) {
            feed.leader = leader;
            feed.inMain = false;
            this.#loop(leader, "main");
            this.#loop(leader, "join");
          }
        }
      } catch (error) {
        this.#options.logger.debug(
          `[Kafka] ${this.#options.endpoint}: metadata of ${topic}: ${(error as Error).message}`,
        );
      }
    }
  }

  /**
   * A partition's fetch offset is not in the log: positions before the log's start move to it
   * (those messages are gone), positions past its end to the end (the topic was made again).
   */
  async #outOfRange(topic: string, partition: number): Promise<void> {
    const { wire, logger, endpoint } = this.#options;
    try {
      const [low, high] = await Promise.all([
        wire.offsets(topic, [partition], "earliest"),
        wire.offsets(topic, [partition], "latest"),
      ]);
      const first = toOffset(low.get(partition)!);
      const end = toOffset(high.get(partition)!);
      for (const reader of this.#feeds.get(`${topic}\0${partition}`)?.readers ?? []) {
        const position = reader.positions.get(partition);
        if (position === undefined) continue;
        const moved = position < first ? first : position > end ? end : position;
        if (moved !== position) {
          const deleted = position < first ? BigInt(first) - BigInt(position) : 0n;
          logger.warn(
            `[Kafka] ${endpoint}: ${reader.clientId}'s offset ${position} on ${topic}/${partition} is not in the log; going on from ${moved}${
              deleted > 0n ? ` (${deleted} messages deleted by retention: in its next resume report)` : ""
            }`,
          );
          this.keepLost(reader.clientId, Number(deleted));
          reader.positions.set(partition, moved);
        }
      }
    } catch (error) {
      logger.warn(`[Kafka] ${endpoint}: offsets of ${topic}/${partition}: ${(error as Error).message}`);
      await this.#options.scheduler.sleep(RETRY_MS);
    }
  }
}
