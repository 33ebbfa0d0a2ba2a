/**
 * The Kafka consume path (1:1): one kafkajs consumer per bound client, in group
 * `engine-{endpoint}-client-{clientId}`, auto-commit off.
 *
 * A message's offset is committed only after the hub wrote it to the client's connection (once
 * per fetched batch). A refused delivery pauses the consumer: nothing more is handed over or
 * committed, and the consumer is taken offline until the hub resumes the client, when a fresh
 * one goes on from the committed offsets.
 */
import type { Admin, Batch, Consumer, Kafka } from "kafkajs";
import type { DeliveryHandler, InboundMessage } from "../../core/endpoint.ts";
import type { Logger } from "../../core/logger.ts";
import { KeyedMutex } from "../../core/mutex.ts";
import type { Scheduler, TimerId } from "../../core/scheduler.ts";
import { SharedPayloads } from "./shared-payloads.ts";
import { withTimeout } from "./timeout.ts";

export interface ClientConsumersOptions {
  /** The endpoint's name, for deliveries and log lines. */
  endpoint: string;
  kafka: Kafka;
  admin: Admin;
  /** The consumer group of a gateway client. */
  groupId(clientId: string): string;
  /** Where a consumer with no committed offset starts (kafkajs's `fromBeginning`). */
  startFrom: "latest" | "earliest";
  /** The consumer group session timeout, in ms. */
  sessionTimeout: number;
  /** Longest a fetch waits for data, in ms: also how long a stop may take. */
  fetchMaxWait: number;
  logger: Logger;
  scheduler: Scheduler;
}

/** One client's consumer. */
export interface ClientConsumer {
  topic: string;
  consumer: Consumer;
  /** Set when a delivery was refused: nothing more is handed over or committed. */
  paused: boolean;
  /** Settled and not yet committed: the highest offset settled, per partition. */
  settled: Map<number, Offset>;
  commitTimer?: TimerId;
  /** Set while a batch is handed over: its settles are committed at its end, with no timer. */
  delivering: boolean;
  /**
   * Started from committed offsets with nothing known here of what was delivered before (a
   * resume on this node after another node had the client): per partition, offsets below the
   * log end at its first fetch may have reached the client, and are flagged redelivered.
   */
  unknownBelow?: Map<number, Offset>;
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

/** The offset after `offset`, as kafkajs takes it. */
function nextOffset(offset: Offset): string {
  return typeof offset === "number" && offset < Number.MAX_SAFE_INTEGER
    ? String(offset + 1)
    : String(BigInt(offset) + 1n);
}

const EMPTY = new Uint8Array(0);
/** How long after a consumer gave up a fresh one starts, in ms. */
const CRASH_RESTART_MS = 2000;

/** The consumers of one endpoint's bound clients, and the per-client lock their lifecycle runs under. */
export class ClientConsumers {
  #options: ClientConsumersOptions;
  #handler?: DeliveryHandler;
  #consumers = new Map<string, ClientConsumer>();
  #locks = new KeyedMutex();
  /** Per client and partition, the highest offset handed over by this node (for `redelivered`). */
  #delivered = new Map<string, Map<number, Offset>>();
  /** How many consumers read each topic: a payload is shared across them only when several do. */
  #readers = new Map<string, number>();
  #payloads = new SharedPayloads();

  constructor(options: ClientConsumersOptions) {
    this.#options = options;
  }

  /** Where deliveries go from now on. */
  deliverTo(handler: DeliveryHandler): void {
    this.#handler = handler;
  }

  /** Runs one lifecycle step of `clientId` after its earlier ones (bind, suspend, restart...). */
  run<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(clientId, fn);
  }

  get(clientId: string): ClientConsumer | undefined {
    return this.#consumers.get(clientId);
  }

  /** Stops hand-overs to `clientId` at once, even from a batch being delivered; `stop` follows. */
  pause(clientId: string): void {
    const state = this.#consumers.get(clientId);
    if (state) state.paused = true;
  }

  /** Clients with a consumer, paused ones included. */
  clientIds(): string[] {
    return [...this.#consumers.keys()];
  }

  get size(): number {
    return this.#consumers.size;
  }

  /**
   * Starts the client's consumer. With `start` (a new binding), it first joins the group, moves
   * to those offsets and commits them, delivering nothing before; so what was produced after the
   * bind is delivered, here or by a consumer on another node. Rejects with what kafkajs threw;
   * a consumer that failed to start is gone and delivers nothing.
   */
  async start(clientId: string, topic: string, start = new Map<number, string>()): Promise<void> {
    const { kafka, sessionTimeout, fetchMaxWait, startFrom } = this.#options;
    const consumer = kafka.consumer({
      groupId: this.#options.groupId(clientId),
      sessionTimeout,
      heartbeatInterval: Math.max(100, Math.floor(sessionTimeout / 10)),
      maxWaitTimeInMs: fetchMaxWait,
      allowAutoTopicCreation: true,
    });
    const state: ClientConsumer = {
      topic,
      consumer,
      paused: false,
      settled: new Map(),
      delivering: false,
      unknownBelow: start.size === 0 && !this.#delivered.has(clientId) ? new Map() : undefined,
    };
    this.#add(clientId, state);
    let release = () => {};
    const positioned = new Promise<void>((resolve) => (release = resolve));
    this.#watch(clientId, state);
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: startFrom === "earliest" });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
          // Fetched before the new binding's position was set: stale once it is, not delivered.
          await positioned;
          await this.#deliverBatch(clientId, state, batch, resolveOffset, () => isRunning() && !isStale());
        },
      });
      // `run` resolves once the consumer joined its group: a new binding takes its position now.
      if (start.size > 0) await this.#position(clientId, consumer, topic, start);
      release();
    } catch (error) {
      // Nothing is delivered from a consumer that failed to start (or to take its position).
      state.paused = true;
      release();
      this.#remove(clientId, state);
      await consumer.disconnect().catch((e) =>
        this.#options.logger.debug(
          `[Kafka] ${this.#options.endpoint}: disconnecting the failed consumer of ${clientId}: ${
            (e as Error).message
          }`,
        )
      );
      throw error;
    }
  }

  /** Forgets what was delivered to a client (it was unbound). */
  forget(clientId: string): void {
    this.#delivered.delete(clientId);
  }

  /** Takes the consumer offline (its offsets stay with the broker) and forgets it. */
  async stop(clientId: string, state: ClientConsumer): Promise<void> {
    state.paused = true;
    this.#remove(clientId, state);
    // What was settled is committed before the consumer leaves its group.
    await this.#commit(clientId, state);
    try {
      await withTimeout(
        state.consumer.disconnect(),
        this.#options.fetchMaxWait + 10_000,
        this.#options.scheduler,
      );
    } catch (error) {
      this.#options.logger.warn(
        `[Kafka] Consumer of ${clientId} did not stop cleanly: ${(error as Error).message}`,
      );
    }
  }

  #add(clientId: string, state: ClientConsumer): void {
    const replaced = this.#consumers.get(clientId);
    if (replaced) this.#remove(clientId, replaced);
    this.#consumers.set(clientId, state);
    this.#readers.set(state.topic, (this.#readers.get(state.topic) ?? 0) + 1);
  }

  #remove(clientId: string, state: ClientConsumer): void {
    if (this.#consumers.get(clientId) !== state) return;
    this.#consumers.delete(clientId);
    const readers = (this.#readers.get(state.topic) ?? 1) - 1;
    if (readers > 0) this.#readers.set(state.topic, readers);
    else this.#readers.delete(state.topic);
  }

  /** The consumer's group events: a rebalance, and kafkajs giving up on it. */
  #watch(clientId: string, state: ClientConsumer): void {
    const { consumer } = state;
    // Another member joining this client's group means another node resumed the client.
    consumer.on(consumer.events.REBALANCING, () =>
      this.#guard(clientId, "reporting the rebalance", () => {
        if (this.#consumers.get(clientId) === state) {
          this.#handler?.consumerDropped?.(clientId, this.#options.endpoint);
        }
      }));
    // kafkajs restarts a consumer after retriable errors by itself; after any other it gives up,
    // and then a fresh consumer takes over from the committed offsets a little later.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (payload.restart || this.#consumers.get(clientId) !== state) return;
      this.#options.logger.warn(
        `[Kafka] Consumer of ${clientId} stopped (${payload.error.message}); restarting`,
      );
      this.#options.scheduler.setTimeout(() => void this.#restart(clientId, state), CRASH_RESTART_MS);
    });
  }

  /**
   * Hands a fetched batch over in order until one is refused, then commits what was written.
   * A refusal pauses the consumer and takes it offline.
   */
  async #deliverBatch(
    clientId: string,
    state: ClientConsumer,
    batch: Batch,
    resolveOffset: (offset: string) => void,
    current: () => boolean,
  ): Promise<void> {
    const { topic } = state;
    const { partition } = batch;
    let delivered = this.#delivered.get(clientId);
    if (!delivered) this.#delivered.set(clientId, delivered = new Map());
    if (state.unknownBelow && !state.unknownBelow.has(partition)) {
      state.unknownBelow.set(partition, toOffset(batch.highWatermark));
    }
    const unknownBelow = state.unknownBelow?.get(partition) ?? -1;
    // Several clients on the topic: each message's payload is prepared once for all of them.
    const shared = (this.#readers.get(topic) ?? 0) > 1 ? this.#payloads : undefined;
    let high = delivered.get(partition) ?? -1;
    const settle = (offset: Offset) => () => this.#settle(clientId, state, partition, offset);
    // The last message written: the fetch position moves past it (kafkajs's resolveOffset sets
    // the position, so once per batch does what once per message did).
    let written: string | undefined;
    // Settles made during the loop (the hub settles at once without acks) are committed below.
    state.delivering = true;
    try {
      for (const message of batch.messages) {
        if (state.paused || !current()) break;
        const meta: Record<string, string | number> = { topic, partition, offset: message.offset };
        if (message.key) meta.key = message.key.toString();
        const offset = toOffset(message.offset);
        // The Buffer is a Uint8Array already: handed over without a copy.
        const value = message.value ?? EMPTY;
        const ok = this.#deliver(clientId, {
          payload: shared ? shared.share(topic, partition, message.offset, value) : value,
          meta,
          redelivered: offset <= high || offset < unknownBelow || undefined,
          settle: settle(offset),
        });
        if (!ok) {
          // Not committed: the broker keeps it and everything after it for the next consumer.
          state.paused = true;
          break;
        }
        if (offset > high) delivered.set(partition, high = offset);
        written = message.offset;
      }
    } finally {
      state.delivering = false;
      // The fetch position moves on; the commit waits for the settles.
      if (written !== undefined) resolveOffset(written);
    }
    await this.#commit(clientId, state);
    if (state.paused) {
      // Offline until the hub resumes it; stopping waits for this batch, so not awaited here.
      this.#options.scheduler.setTimeout(() => void this.#suspendIf(clientId, state), 0);
    }
  }

  /** A message may be let go: its offset is committed soon (together with others settled by then). */
  #settle(clientId: string, state: ClientConsumer, partition: number, offset: Offset): void {
    // Settles come in order per partition (cumulative acks), so the last is the highest.
    state.settled.set(partition, offset);
    if (state.delivering) return;
    state.commitTimer ??= this.#options.scheduler.setTimeout(() => void this.#commit(clientId, state), 0);
  }

  /** Commits what was settled. A failed commit only means those messages come again. */
  async #commit(clientId: string, state: ClientConsumer): Promise<void> {
    if (state.commitTimer !== undefined) this.#options.scheduler.clear(state.commitTimer);
    state.commitTimer = undefined;
    if (state.settled.size === 0) return;
    const offsets = [...state.settled].map(([partition, offset]) => ({
      topic: state.topic,
      partition,
      offset: nextOffset(offset),
    }));
    state.settled.clear();
    await state.consumer.commitOffsets(offsets).catch((e) =>
      this.#options.logger.warn(`[Kafka] Commit for ${clientId} failed; those messages come again: ${e}`)
    );
  }

  /**
   * One hand-over to the hub. An exception is a refusal: kafkajs would otherwise retry the batch
   * at once, with nobody told which client's delivery broke.
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

  /** Runs an event handler of kafkajs's, logging what it throws. */
  #guard(clientId: string, what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#options.logger.error(`[Kafka] ${this.#options.endpoint}: ${what} for ${clientId} failed`, error);
    }
  }

  /** Moves a joined consumer to `start` and commits it, so any consumer of the group goes on from there. */
  async #position(
    clientId: string,
    consumer: Consumer,
    topic: string,
    start: Map<number, string>,
  ): Promise<void> {
    for (const [partition, offset] of start) consumer.seek({ topic, partition, offset });
    const offsets = [...start].map(([partition, offset]) => ({ topic, partition, offset }));
    await consumer.commitOffsets(offsets);
    // kafkajs skips a commit quietly when its consumer is not running (it failed to join).
    const groupId = this.#options.groupId(clientId);
    const [committed] = await this.#options.admin.fetchOffsets({ groupId, topics: [topic] });
    const stored = new Map(committed.partitions.map((p) => [p.partition, p.offset]));
    if (offsets.some((o) => stored.get(o.partition) !== o.offset)) {
      throw new Error(`the starting offsets of ${groupId} did not commit`);
    }
  }

  /** Replaces a crashed consumer, unless it was suspended or replaced meanwhile. */
  #restart(clientId: string, state: ClientConsumer): Promise<void> {
    return this.run(clientId, async () => {
      if (this.#consumers.get(clientId) !== state || state.paused) return;
      await this.stop(clientId, state);
      await this.start(clientId, state.topic).catch((error) =>
        this.#options.logger.error(
          `[Kafka] Restarting the consumer of ${clientId} failed; resume it to retry`,
          error,
        )
      );
    });
  }

  /** Takes a refused consumer offline, unless the hub replaced it meanwhile. */
  #suspendIf(clientId: string, state: ClientConsumer): Promise<void> {
    return this.run(clientId, async () => {
      if (this.#consumers.get(clientId) === state) await this.stop(clientId, state);
    });
  }
}
