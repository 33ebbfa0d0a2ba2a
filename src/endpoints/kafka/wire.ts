/**
 * The Kafka requests the shared consume path makes, on kafkajs's low-level cluster: the one place
 * that reaches into kafkajs internals (its private `createCluster`, its fetch `Batch`), so a
 * kafkajs upgrade or another client changes this file only.
 *
 * Three kafkajs clusters, so a few connections per broker whatever the number of clients: one for
 * the long-polling main fetch, one for the brief join fetch (see shared-fetch.ts), one for
 * everything else (metadata, list offsets, offset commit and fetch, delete groups). A broker
 * answers the requests of one connection in order, so a request behind a fetch waiting for data
 * would wait as long as the fetch.
 *
 * Offsets are committed as a "simple consumer" does (generation -1, no member id): Kafka stores
 * them for a group that has no members, which these groups never have.
 *
 * Near 370 lines, kept whole on purpose: it is the one file that knows kafkajs's internals, so
 * an upgrade is checked against this file alone.
 */
import type { Kafka, KafkaMessage } from "kafkajs";
import type { Scheduler } from "../../core/scheduler.ts";
// kafkajs's own fetch batch: drops what lies before the fetch offset, control records and aborted
// transactions' records, and knows where the next fetch starts.
import Batch from "kafkajs/src/consumer/batch.js";

/** What one partition of a fetch answered. */
export interface FetchedPartition {
  topic: string;
  partition: number;
  /** The offset the fetch asked from: messages start at or after it. */
  fetchedOffset: string;
  highWatermark: string;
  /** Records to deliver, in offset order. */
  messages: KafkaMessage[];
  /** The offset after the last one this answer covered (delivered or filtered out). */
  next: string;
}

/** A partition's leader. */
export interface PartitionLeader {
  partition: number;
  leader: number;
}

/** A fetch refused because the offset is not in the log (deleted by retention, or a topic made again). */
/** A committed offset and the metadata string committed with it. */
export interface Committed {
  offset: string;
  metadata: string | null;
}

export class OffsetOutOfRange extends Error {
  readonly topic: string;
  readonly partition: number;
  constructor(topic: string, partition: number) {
    super(`offset out of range on ${topic}/${partition}`);
    this.topic = topic;
    this.partition = partition;
  }
}

// The parts of kafkajs's Cluster and Broker used here (kafkajs types neither).
interface WireBroker {
  fetch(request: unknown): Promise<{ responses: Array<{ topicName: string; partitions: RawPartition[] }> }>;
  metadata(topics: string[]): Promise<{
    topicMetadata: Array<
      { topic: string; partitionMetadata: Array<{ partitionId: number; leader: number }> }
    >;
  }>;
  listOffsets(request: unknown): Promise<{
    responses: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
  }>;
  offsetCommit(request: unknown): Promise<{
    responses: Array<{ topic: string; partitions: Array<{ partition: number; errorCode: number }> }>;
  }>;
  offsetFetch(request: unknown): Promise<{
    responses: Array<
      { topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null }> }
    >;
  }>;
  deleteGroups(groupIds: string[]): Promise<{ results: Array<{ groupId: string; errorCode: number }> }>;
  createTopics(request: unknown): Promise<unknown>;
}
interface WireCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  findBroker(options: { nodeId: string }): Promise<WireBroker>;
  findControllerBroker(): Promise<WireBroker>;
  findGroupCoordinator(options: { groupId: string }): Promise<WireBroker>;
  refreshMetadata(): Promise<void>;
  brokerPool: { findConnectedBroker(): Promise<WireBroker> };
}
interface RawPartition {
  partition: number;
  highWatermark: string;
  messages: KafkaMessage[];
  abortedTransactions: unknown[];
}
interface RawBatch {
  messages: KafkaMessage[];
  lastOffset(): string;
}

const READ_COMMITTED = 1;
const LATEST = "-1";
const EARLIEST = "-2";
/** Kafka error codes handled here. */
const TOPIC_ALREADY_EXISTS = 36;
const GROUP_ID_NOT_FOUND = 69;
/** DeleteGroups of a group that has members (someone else's consumer: the gateway has none). */
const NON_EMPTY_GROUP = 68;
/** GROUP_LOAD_IN_PROGRESS, GROUP_COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR_FOR_GROUP. */
const COORDINATOR_NOT_READY = [14, 15, 16];
/** How long a group request keeps trying a coordinator that is not ready, in ms. */
const COORDINATOR_PATIENCE_MS = 15_000;
/** Per partition and per fetch answer (kafkajs's consumer defaults). */
const PARTITION_MAX_BYTES = 1024 * 1024;
const FETCH_MAX_BYTES = 10 * 1024 * 1024;

function createCluster(kafka: Kafka): WireCluster {
  // kafkajs keeps its cluster factory behind a symbol; its consumer, producer and admin use it.
  const owner = kafka as unknown as Record<symbol, (options: object) => WireCluster>;
  const key = Object.getOwnPropertySymbols(owner).find((s) =>
    s.description === "private:Kafka:createCluster"
  );
  if (!key) throw new Error("this kafkajs has no private:Kafka:createCluster (kafkajs 2.x expected)");
  return owner[key]({ allowAutoTopicCreation: false, maxInFlightRequests: null });
}

export class KafkaWire {
  #fetcher: WireCluster;
  #joiner: WireCluster;
  #control: WireCluster;
  #connecting?: Promise<void>;
  /** Each group's coordinator, found once (forgotten when a request to it fails). */
  #coordinators = new Map<string, WireBroker>();

  readonly fetchMaxWait: number;
  readonly scheduler: Scheduler;
  constructor(kafka: Kafka, fetchMaxWait: number, scheduler: Scheduler) {
    this.fetchMaxWait = fetchMaxWait;
    this.scheduler = scheduler;
    this.#fetcher = createCluster(kafka);
    this.#joiner = createCluster(kafka);
    this.#control = createCluster(kafka);
  }

  /** Connects both clusters (once; again after a failure). */
  connect(): Promise<void> {
    const clusters = [this.#fetcher, this.#joiner, this.#control];
    if (clusters.every((c) => c.isConnected())) return Promise.resolve();
    // Connected with the cluster's brokers known (the metadata of no topic: see partitions).
    const connect = async (cluster: WireCluster) => {
      await cluster.connect();
      await cluster.refreshMetadata();
    };
    this.#connecting ??= Promise.all(clusters.map(connect)).then(() => {})
      .finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async disconnect(): Promise<void> {
    this.#coordinators.clear();
    await Promise.allSettled([this.#fetcher, this.#joiner, this.#control].map((c) => c.disconnect()));
  }

  /** The partitions of `topic` and their leaders; throws kafkajs's error for a missing topic. */
  async partitions(topic: string): Promise<PartitionLeader[]> {
    await this.connect();
    // Asked of one broker for this topic alone: kafkajs's own refresh asks for every topic it was
    // ever told about, which grows with the clients' topics.
    const broker = await this.#control.brokerPool.findConnectedBroker();
    const { topicMetadata } = await broker.metadata([topic]);
    const found = topicMetadata.find((t) => t.topic === topic);
    if (!found || found.partitionMetadata.length === 0) {
      throw new Error(`topic ${topic} has no partitions yet`);
    }
    return found.partitionMetadata.map((p) => ({ partition: p.partitionId, leader: p.leader }));
  }

  /** Creates `topic` with the broker's defaults; one that exists already is fine. */
  async createTopic(topic: string): Promise<void> {
    await this.connect();
    const controller = await this.#control.findControllerBroker();
    await controller.createTopics({ topics: [{ topic }], timeout: 5000 }).catch((error) => {
      if ((error as { code?: number }).code !== TOPIC_ALREADY_EXISTS) throw error;
    });
  }

  /**
   * One fetch from broker `nodeId` on the main or the join connection, waiting up to `wait` ms
   * for data. Throws OffsetOutOfRange for a partition whose offset is not in the log, else
   * kafkajs's error (for the whole answer).
   */
  async fetch(
    nodeId: number,
    wants: Array<{ topic: string; partition: number; offset: string }>,
    lane: "main" | "join",
    wait: number,
  ) {
    await this.connect();
    const cluster = lane === "main" ? this.#fetcher : this.#joiner;
    const broker = await cluster.findBroker({ nodeId: String(nodeId) });
    const byTopic = new Map<string, Array<{ partition: number; fetchOffset: string; maxBytes: number }>>();
    for (const w of wants) {
      const list = byTopic.get(w.topic) ?? [];
      list.push({ partition: w.partition, fetchOffset: w.offset, maxBytes: PARTITION_MAX_BYTES });
      byTopic.set(w.topic, list);
    }
    const asked = new Map(wants.map((w) => [`${w.topic}\0${w.partition}`, w.offset]));
    let answer;
    try {
      answer = await broker.fetch({
        replicaId: -1,
        isolationLevel: READ_COMMITTED,
        maxWaitTime: wait,
        minBytes: 1,
        maxBytes: FETCH_MAX_BYTES,
        topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
      });
    } catch (error) {
      const e = error as { name?: string; topic?: string; partition?: number };
      if (e.name === "KafkaJSOffsetOutOfRange") throw new OffsetOutOfRange(e.topic!, e.partition!);
      throw error;
    }
    const out: FetchedPartition[] = [];
    for (const { topicName: topic, partitions } of answer.responses) {
      for (const raw of partitions) {
        const fetchedOffset = asked.get(`${topic}\0${raw.partition}`)!;
        const batch = new Batch(topic, fetchedOffset, raw) as RawBatch;
        const next = BigInt(batch.lastOffset()) + 1n;
        out.push({
          topic,
          partition: raw.partition,
          fetchedOffset,
          highWatermark: raw.highWatermark,
          messages: batch.messages,
          next: String(next > BigInt(fetchedOffset) ? next : BigInt(fetchedOffset)),
        });
      }
    }
    return out;
  }

  /** Each partition's first (`earliest`) or next (`latest`) offset. */
  async offsets(
    topic: string,
    partitions: number[],
    which: "earliest" | "latest",
  ): Promise<Map<number, string>> {
    await this.connect();
    const leaders = await this.partitions(topic);
    const out = new Map<number, string>();
    const byLeader = new Map<number, number[]>();
    for (const p of leaders.filter((l) => partitions.includes(l.partition))) {
      byLeader.set(p.leader, [...(byLeader.get(p.leader) ?? []), p.partition]);
    }
    for (const [nodeId, parts] of byLeader) {
      const broker = await this.#control.findBroker({ nodeId: String(nodeId) });
      const timestamp = which === "earliest" ? EARLIEST : LATEST;
      const { responses } = await broker.listOffsets({
        replicaId: -1,
        isolationLevel: READ_COMMITTED,
        topics: [{ topic, partitions: parts.map((partition) => ({ partition, timestamp })) }],
      });
      for (const r of responses) for (const p of r.partitions) out.set(p.partition, p.offset);
    }
    return out;
  }

  /** The group's committed offsets on `topic`'s partitions: "-1" where it has none. */
  async committed(groupId: string, topic: string, partitions: number[]): Promise<Map<number, string>> {
    const marked = await this.committedMarked(groupId, topic, partitions);
    return new Map([...marked].map(([p, c]) => [p, c.offset]));
  }

  /** The group's committed offsets with the metadata committed with each ("-1" and null: none). */
  committedMarked(groupId: string, topic: string, partitions: number[]): Promise<Map<number, Committed>> {
    return this.#atCoordinator(groupId, async (coordinator) => {
      const { responses } = await coordinator.offsetFetch({
        groupId,
        topics: [{ topic, partitions: partitions.map((partition) => ({ partition })) }],
      });
      const out = new Map<number, Committed>(partitions.map((p) => [p, { offset: "-1", metadata: null }]));
      for (const r of responses) {
        for (const p of r.partitions) {
          out.set(p.partition, { offset: p.offset, metadata: p.metadata || null });
        }
      }
      return out;
    });
  }

  /**
   * Commits the next offsets to read, per partition, for a group with no members, each with the
   * metadata `mark` gives it (none by default).
   */
  commit(
    groupId: string,
    topic: string,
    offsets: Map<number, string>,
    mark: (partition: number) => string | null = () => null,
  ): Promise<void> {
    return this.#atCoordinator(groupId, async (coordinator) => {
      await coordinator.offsetCommit({
        groupId,
        groupGenerationId: -1,
        memberId: "",
        topics: [{
          topic,
          partitions: [...offsets].map(([partition, offset]) => ({
            partition,
            offset,
            metadata: mark(partition),
          })),
        }],
      });
    });
  }

  /** Deletes a group with its offsets; true if it existed. NON_EMPTY_GROUP and others throw. */
  deleteGroup(groupId: string): Promise<boolean> {
    return this.#atCoordinator(groupId, async (coordinator) => {
      try {
        const { results } = await coordinator.deleteGroups([groupId]);
        const code = results.find((r) => r.groupId === groupId)?.errorCode ?? 0;
        if (code === GROUP_ID_NOT_FOUND) return false;
        if (code !== 0) {
          const why = code === NON_EMPTY_GROUP ? "it has members (NON_EMPTY_GROUP)" : `error code ${code}`;
          throw Object.assign(new Error(`delete group ${groupId}: ${why}`), {
            retriable: COORDINATOR_NOT_READY.includes(code),
          });
        }
        return true;
      } catch (error) {
        // kafkajs throws for some codes, with the per-group results attached.
        const groups = (error as { groups?: Array<{ errorCode: number }> }).groups;
        if (groups?.every((g) => g.errorCode === GROUP_ID_NOT_FOUND)) return false;
        throw error;
      }
    });
  }

  /**
   * Runs `fn` on the group's coordinator. A retriable failure (the coordinator moved, or is not
   * ready yet: a freshly started broker answers NOT_COORDINATOR for a few seconds while it loads
   * its offsets topic; a connection lost) forgets it and tries again with a fresh look-up, a
   * little later each time, for about COORDINATOR_PATIENCE_MS.
   */
  async #atCoordinator<T>(groupId: string, fn: (coordinator: WireBroker) => Promise<T>): Promise<T> {
    await this.connect();
    let waited = 0;
    for (let attempt = 1;; attempt++) {
      try {
        const coordinator = this.#coordinators.get(groupId) ??
          await this.#control.findGroupCoordinator({ groupId });
        const result = await fn(coordinator);
        this.#coordinators.set(groupId, coordinator);
        // Bounded: a coordinator per group is one broker object of a few, kept only as a shortcut.
        if (this.#coordinators.size > 100_000) this.#coordinators.clear();
        return result;
      } catch (error) {
        this.#coordinators.delete(groupId);
        if (!retriable(error) || waited >= COORDINATOR_PATIENCE_MS) throw error;
        const pause = Math.min(1000, 50 * 2 ** attempt);
        await this.scheduler.sleep(pause);
        waited += pause;
      }
    }
  }
}

/** Errors after which another try at a freshly found coordinator may succeed. */
function retriable(error: unknown): boolean {
  const e = error as { retriable?: boolean; type?: string; name?: string };
  return e.retriable === true || e.type === "NOT_COORDINATOR" || e.type === "NOT_COORDINATOR_FOR_GROUP" ||
    e.name === "KafkaJSConnectionError" || e.name === "KafkaJSConnectionClosedError";
}
