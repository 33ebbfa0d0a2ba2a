/**
 * The Kafka endpoint (DESIGN.md section 8), on kafkajs.
 *
 * Publishes go through one shared producer (acks from all in-sync replicas), keyed by a binding
 * param or the client ID, so one client's messages land on one partition, in order. Each bound
 * client has a consumer of its own in group `engine-{endpoint}-client-{clientId}`, auto-commit
 * off: an offset is committed only after its message was written to the client's connection.
 *
 * A new binding takes the topic's end (`latest`, default) or beginning (`earliest`) as its
 * position before it is confirmed, and commits it as soon as its consumer joined the group, so
 * everything produced after the bind is delivered, however long the group takes to form. Suspend disconnects the consumer (the offsets stay with the broker);
 * resume starts a new one from the committed offsets; unbind disconnects and deletes the group.
 */
import { Buffer } from "node:buffer";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Admin, Consumer, KafkaConfig, LogEntry, Producer, SASLOptions } from "kafkajs";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  InboundMessage,
  OutboundMessage,
  Receipt,
} from "../../core/endpoint.ts";
import { GatewayError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { KeyedMutex } from "../../core/mutex.ts";
import { expandTopic } from "../template.ts";
import { KeyedProducer } from "./producer.ts";

export interface KafkaEndpointOptions {
  name: string;
  brokers: string[];
  publishTopic: string;
  subscribeTopic: string;
  /** The binding param whose value keys a client's messages; the client ID if unset. */
  keyParam?: string;
  /** Where a new binding starts reading: at the end of the topic (default) or its beginning. */
  startFrom?: "latest" | "earliest";
  ssl?: boolean;
  sasl?: SASLOptions;
  /** Distinguishes this node's Kafka client ID. */
  nodeId: string;
  connectTimeout?: number;
  /** How long a publish may wait for the broker's ack, in ms. */
  publishTimeout?: number;
  /** The consumer group session timeout, in ms. */
  sessionTimeout?: number;
  /** Longest a fetch waits for data, in ms: also how long a suspend may take. */
  fetchMaxWait?: number;
  logger: Logger;
}

interface ClientConsumer {
  topic: string;
  consumer: Consumer;
  /** Set when a delivery was refused: nothing more is handed over or committed. */
  paused: boolean;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const EMPTY = new Uint8Array(0);

export class KafkaEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: KafkaEndpointOptions;
  #kafka: Kafka;
  #producer: Producer;
  #admin: Admin;
  #handler?: DeliveryHandler;
  #consumers = new Map<string, ClientConsumer>();
  #publisher: KeyedProducer;
  #locks = new KeyedMutex();

  constructor(options: KafkaEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    const logger = options.logger;
    const config: KafkaConfig = {
      clientId: `engine-${options.name}-${options.nodeId}`,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectTimeout ?? 10_000,
      requestTimeout: options.publishTimeout ?? 10_000,
      // Few, quick retries: a publish fails within about its timeout instead of minutes.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
      logLevel: logLevel.WARN,
      logCreator: () => ({ label, log }: LogEntry) => {
        const text = `[Kafka] ${this.name}: ${log.message}${log.error ? ` (${log.error})` : ""}`;
        if (label === "ERROR") logger.warn(text);
        else logger.debug(text);
      },
    };
    this.#kafka = new Kafka(config);
    this.#producer = this.#kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
    });
    this.#publisher = new KeyedProducer(this.#producer, options.publishTimeout ?? 10_000);
    this.#admin = this.#kafka.admin();
  }

  /** The consumer group of a gateway client. */
  groupId(clientId: string): string {
    return `engine-${this.name}-client-${clientId}`;
  }

  async start(handler: DeliveryHandler): Promise<void> {
    this.#handler = handler;
    try {
      await Promise.all([this.#producer.connect(), this.#admin.connect()]);
    } catch (error) {
      throw this.#unavailable("cannot connect to the brokers", error);
    }
  }

  async stop(): Promise<void> {
    // Consumers leave their groups; the committed offsets stay, so clients resume elsewhere.
    await Promise.all([...this.#consumers.keys()].map((id) => this.suspendClient(id)));
    await Promise.allSettled([this.#producer.disconnect(), this.#admin.disconnect()]);
  }

  /** Publishes through the shared producer, in order per key (see KeyedProducer). */
  async publish(
    clientId: string,
    message: OutboundMessage,
    params: Record<string, string>,
  ): Promise<Receipt> {
    const topic = this.#topic(this.#options.publishTopic, clientId, params);
    const key = (this.#options.keyParam && params[this.#options.keyParam]) || clientId;
    try {
      const sent = this.#publisher.send(topic, key, toBuffer(message.payload));
      const { partition, offset } = await withTimeout(sent, this.#options.publishTimeout ?? 10_000);
      return { meta: { topic, partition, offset } };
    } catch (error) {
      throw this.#unavailable(`publish to ${topic} failed`, error);
    }
  }

  bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
      const existing = this.#consumers.get(clientId);
      if (existing && existing.topic === topic && !existing.paused) return;
      if (existing) await this.#stopConsumer(clientId, existing);
      const start = await this.#startOffsets(this.groupId(clientId), topic);
      await this.#startConsumer(clientId, topic, start);
      this.#options.logger.info(
        `[Kafka] Client ${clientId} bound to endpoint ${this.name} (consuming ${topic})`,
      );
    });
  }

  suspendClient(clientId: string): Promise<void> {
    // Nothing more is handed over from now on, even from a batch already being delivered.
    const current = this.#consumers.get(clientId);
    if (current) current.paused = true;
    return this.#locks.run(clientId, async () => {
      const existing = this.#consumers.get(clientId);
      if (existing) await this.#stopConsumer(clientId, existing);
    });
  }

  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
      const existing = this.#consumers.get(clientId);
      if (existing && !existing.paused) return;
      if (existing) await this.#stopConsumer(clientId, existing);
      await this.#startConsumer(clientId, topic);
    });
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const existing = this.#consumers.get(clientId);
      if (existing) await this.#stopConsumer(clientId, existing);
      try {
        await this.#admin.deleteGroups([this.groupId(clientId)]);
      } catch (error) {
        const codes = (error as { groups?: Array<{ errorCode: number }> }).groups?.map((g) => g.errorCode);
        // Already gone (an unbind after a crash, or twice): nothing to do.
        if (codes?.every((c) => c === GROUP_ID_NOT_FOUND)) return;
        throw this.#unavailable(`cannot delete consumer group of ${clientId}`, error);
      }
    });
  }

  async health(): Promise<EndpointHealth> {
    try {
      const cluster = await withTimeout(this.#admin.describeCluster(), 3000);
      return {
        ok: true,
        detail: `${cluster.brokers.length} brokers reachable, ${this.#consumers.size} consumers online`,
      };
    } catch (error) {
      return { ok: false, detail: `brokers unreachable: ${(error as Error).message}` };
    }
  }

  bindingCount(): number {
    return this.#consumers.size;
  }

  /**
   * Where a new binding starts on each partition its group has no committed offset for: the
   * topic's end (`latest`) or beginning (`earliest`) now, before the bind is confirmed. Creates
   * the topic if it does not exist.
   */
  async #startOffsets(groupId: string, topic: string): Promise<Map<number, string>> {
    try {
      const [committed] = await this.#admin.fetchOffsets({ groupId, topics: [topic] }).catch(
        async (error) => {
          if ((error as { type?: string }).type !== "UNKNOWN_TOPIC_OR_PARTITION") throw error;
          // A topic of its own per client is usual: made on first bind, with the broker's defaults.
          await this.#admin.createTopics({ topics: [{ topic }] });
          return await this.#admin.fetchOffsets({ groupId, topics: [topic] });
        },
      );
      const missing = new Set(committed.partitions.filter((p) => p.offset === "-1").map((p) => p.partition));
      if (missing.size === 0) return new Map();
      const ends = await this.#admin.fetchTopicOffsets(topic);
      return new Map(
        ends.filter((p) => missing.has(p.partition)).map((p) => [
          p.partition,
          this.#options.startFrom === "earliest" ? p.low : p.high,
        ]),
      );
    } catch (error) {
      throw this.#unavailable(`cannot find the starting offsets of ${groupId} on ${topic}`, error);
    }
  }

  /**
   * Starts the client's consumer. With `start` (a new binding), it first joins the group, moves
   * to those offsets and commits them, delivering nothing before; so what was produced after the
   * bind is delivered, here or by a consumer on another node.
   */
  async #startConsumer(clientId: string, topic: string, start = new Map<number, string>()): Promise<void> {
    const consumer = this.#kafka.consumer({
      groupId: this.groupId(clientId),
      sessionTimeout: this.#options.sessionTimeout ?? 30_000,
      heartbeatInterval: Math.max(100, Math.floor((this.#options.sessionTimeout ?? 30_000) / 10)),
      maxWaitTimeInMs: this.#options.fetchMaxWait ?? 500,
      allowAutoTopicCreation: true,
    });
    const state: ClientConsumer = { topic, consumer, paused: false };
    this.#consumers.set(clientId, state);
    let release = () => {};
    const positioned = new Promise<void>((resolve) => (release = resolve));
    // Another member joining this client's group means another node resumed the client.
    consumer.on(consumer.events.REBALANCING, () =>
      this.#guard(clientId, "reporting the rebalance", () => {
        if (this.#consumers.get(clientId) === state) this.#handler?.consumerDropped?.(clientId, this.name);
      }));
    // kafkajs restarts a consumer after retriable errors by itself; after any other it gives up,
    // and then a fresh consumer takes over from the committed offsets a little later.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (payload.restart || this.#consumers.get(clientId) !== state) return;
      this.#options.logger.warn(
        `[Kafka] Consumer of ${clientId} stopped (${payload.error.message}); restarting`,
      );
      setTimeout(() => void this.#restart(clientId, state), CRASH_RESTART_MS);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: this.#options.startFrom === "earliest" });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
          // Fetched before the new binding's position was set: stale once it is, not delivered.
          await positioned;
          let next: string | undefined;
          for (const message of batch.messages) {
            if (state.paused || !isRunning() || isStale()) break;
            const meta: Record<string, string | number> = {
              topic,
              partition: batch.partition,
              offset: message.offset,
            };
            if (message.key) meta.key = message.key.toString();
            // The Buffer is a Uint8Array already: handed over without a copy.
            if (!this.#deliver(clientId, { payload: message.value ?? EMPTY, meta })) {
              // Not committed: the broker keeps it and everything after it for the next consumer.
              state.paused = true;
              break;
            }
            resolveOffset(message.offset);
            next = (BigInt(message.offset) + 1n).toString();
          }
          if (next !== undefined) {
            await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }]).catch((e) =>
              this.#options.logger.warn(
                `[Kafka] Commit for ${clientId} failed; those messages come again: ${e}`,
              )
            );
          }
          if (state.paused) {
            // Offline until the hub resumes it; stopping waits for this batch, so not awaited here.
            setTimeout(() => void this.#suspendIf(clientId, state), 0);
          }
        },
      });
      // `run` resolves once the consumer joined its group: a new binding takes its position now.
      if (start.size > 0) await this.#position(clientId, consumer, topic, start);
      release();
    } catch (error) {
      // Nothing is delivered from a consumer that failed to start (or to take its position).
      state.paused = true;
      release();
      this.#consumers.delete(clientId);
      await consumer.disconnect().catch((e) =>
        this.#options.logger.debug(
          `[Kafka] ${this.name}: disconnecting the failed consumer of ${clientId}: ${(e as Error).message}`,
        )
      );
      throw this.#unavailable(`Kafka consumer for ${clientId} failed`, error);
    }
  }

  /**
   * One hand-over to the hub. An exception is a refusal: kafkajs would otherwise retry the batch
   * at once, with nobody told which client's delivery broke.
   */
  #deliver(clientId: string, message: InboundMessage): boolean {
    try {
      return this.#handler?.deliver(clientId, this.name, message) ?? false;
    } catch (error) {
      this.#options.logger.error(
        `[Kafka] ${this.name}: delivering to ${clientId} failed; kept by the broker until resume`,
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
      this.#options.logger.error(`[Kafka] ${this.name}: ${what} for ${clientId} failed`, error);
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
    const [committed] = await this.#admin.fetchOffsets({ groupId: this.groupId(clientId), topics: [topic] });
    const stored = new Map(committed.partitions.map((p) => [p.partition, p.offset]));
    if (offsets.some((o) => stored.get(o.partition) !== o.offset)) {
      throw new Error(`the starting offsets of ${this.groupId(clientId)} did not commit`);
    }
  }

  /** Replaces a crashed consumer, unless it was suspended or replaced meanwhile. */
  #restart(clientId: string, state: ClientConsumer): Promise<void> {
    return this.#locks.run(clientId, async () => {
      if (this.#consumers.get(clientId) !== state || state.paused) return;
      await this.#stopConsumer(clientId, state);
      await this.#startConsumer(clientId, state.topic).catch((error) =>
        this.#options.logger.error(
          `[Kafka] Restarting the consumer of ${clientId} failed; resume it to retry`,
          error,
        )
      );
    });
  }

  /** Takes a refused consumer offline, unless the hub replaced it meanwhile. */
  #suspendIf(clientId: string, state: ClientConsumer): Promise<void> {
    return this.#locks.run(clientId, async () => {
      if (this.#consumers.get(clientId) === state) await this.#stopConsumer(clientId, state);
    });
  }

  async #stopConsumer(clientId: string, state: ClientConsumer): Promise<void> {
    state.paused = true;
    if (this.#consumers.get(clientId) === state) this.#consumers.delete(clientId);
    try {
      await withTimeout(state.consumer.disconnect(), (this.#options.fetchMaxWait ?? 500) + 10_000);
    } catch (error) {
      this.#options.logger.warn(
        `[Kafka] Consumer of ${clientId} did not stop cleanly: ${(error as Error).message}`,
      );
    }
  }

  #topic(template: string, clientId: string, params: Record<string, string>): string {
    const topic = expandTopic(template, clientId, params);
    if (!TOPIC.test(topic)) {
      throw new GatewayError("BAD_FRAME", `"${topic}" is not a Kafka topic name (A-Z a-z 0-9 . _ -)`);
    }
    return topic;
  }

  #unavailable(what: string, error: unknown): GatewayError {
    if (error instanceof GatewayError) return error;
    return new GatewayError("UPSTREAM_UNAVAILABLE", `${what}: ${(error as Error).message}`, true, {
      cause: error,
    });
  }
}

const GROUP_ID_NOT_FOUND = 69;
/** How long after a consumer gave up a fresh one starts, in ms. */
const CRASH_RESTART_MS = 2000;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
