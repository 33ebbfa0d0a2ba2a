/**
 * The Kafka endpoint (DESIGN.md section 8), on kafkajs.
 *
 * Publishes go through one shared producer (acks from all in-sync replicas), keyed by a binding
 * param or the client ID, so one client's messages land on one partition, in order. A bound
 * client's state is its committed offsets in group `engine-{endpoint}-client-{clientId}`, a group
 * with no members: this node fetches each topic-partition once for all its clients on it and
 * commits each client's progress to its own group, only after its message was settled.
 *
 * A new binding takes the topic's end (`latest`, default) or beginning (`earliest`) as its
 * position and commits it before it is confirmed, so everything produced after the bind is
 * delivered, here or wherever the client resumes. Suspend takes the client off the fetch (the
 * offsets stay with the broker); resume, on any node, goes on from the committed offsets; unbind
 * deletes the group. The shared fetch is in shared-fetch.ts (on wire.ts), the publish lanes in
 * producer.ts.
 */
import { Buffer } from "node:buffer";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Admin, KafkaConfig, LogEntry, Producer, SASLOptions } from "kafkajs";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  OutboundMessage,
  Receipt,
} from "../../core/endpoint.ts";
import { GatewayError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { Scheduler } from "../../core/scheduler.ts";
import { expandTopic } from "../template.ts";
import { KeyedProducer, LANE_LIMIT, TOTAL_LIMIT } from "./producer.ts";
import { SharedFetch } from "./shared-fetch.ts";
import { withTimeout } from "./timeout.ts";
import { KafkaWire } from "./wire.ts";

/**
 * The endpoint's settings. Every tunable is required: its default is written once, in the
 * config schema (its definition.ts), whose output the factory passes here.
 */
export interface KafkaEndpointOptions {
  name: string;
  brokers: string[];
  publishTopic: string;
  subscribeTopic: string;
  /** The binding param whose value keys a client's messages; the client ID if unset. */
  keyParam?: string;
  /** Where a new binding starts reading: at the end of the topic or its beginning. */
  startFrom: "latest" | "earliest";
  ssl: boolean;
  sasl?: SASLOptions;
  /** Distinguishes this node's Kafka client ID. */
  nodeId: string;
  /** Longest wait for a broker connection, in ms. */
  connectTimeout: number;
  /** How long a publish may wait for the broker's ack, in ms. */
  publishTimeout: number;
  /** Unused since clients are no consumer group members (kept so configs that set it stay valid). */
  sessionTimeout: number;
  /** Longest a fetch waits for data, in ms: also how long a suspend may take. */
  fetchMaxWait: number;
  logger: Logger;
  /** The endpoint's own timeouts run on it (kafkajs's internal timers do not). */
  scheduler: Scheduler;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

export class KafkaEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: KafkaEndpointOptions;
  #kafka: Kafka;
  #producer: Producer;
  #admin: Admin;
  #consumers: SharedFetch;
  #publisher: KeyedProducer;

  constructor(options: KafkaEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    const logger = options.logger;
    const config: KafkaConfig = {
      clientId: `engine-${options.name}-${options.nodeId}`,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectTimeout,
      requestTimeout: options.publishTimeout,
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
    this.#publisher = new KeyedProducer(this.#producer, {
      publishTimeout: options.publishTimeout,
      scheduler: options.scheduler,
      laneLimit: LANE_LIMIT,
      totalLimit: TOTAL_LIMIT,
    });
    this.#admin = this.#kafka.admin();
    this.#consumers = new SharedFetch({
      endpoint: options.name,
      wire: new KafkaWire(this.#kafka, options.fetchMaxWait, options.scheduler),
      groupId: (clientId) => this.groupId(clientId),
      startFrom: options.startFrom,
      logger,
      scheduler: options.scheduler,
    });
  }

  /** The consumer group holding a gateway client's offsets. */
  groupId(clientId: string): string {
    return `engine-${this.name}-client-${clientId}`;
  }

  async start(handler: DeliveryHandler): Promise<void> {
    this.#consumers.deliverTo(handler);
    try {
      await Promise.all([this.#producer.connect(), this.#admin.connect()]);
    } catch (error) {
      throw this.#unavailable("cannot connect to the brokers", error);
    }
  }

  async stop(): Promise<void> {
    // What was settled is committed; the committed offsets stay, so clients resume elsewhere.
    await Promise.all(this.#consumers.clientIds().map((id) => this.suspendClient(id)));
    await Promise.allSettled([
      this.#producer.disconnect(),
      this.#admin.disconnect(),
      this.#consumers.close(),
    ]);
  }

  /**
   * Publishes through the shared producer, in order per key. Past publish_timeout a publish is
   * withdrawn if it was still waiting (UPSTREAM_UNAVAILABLE) or OUTCOME_UNKNOWN if it was sent;
   * too many waiting: RATE_LIMITED for one key, UPSTREAM_UNAVAILABLE in all (see KeyedProducer).
   */
  async publish(
    clientId: string,
    message: OutboundMessage,
    params: Record<string, string>,
  ): Promise<Receipt> {
    const topic = this.#topic(this.#options.publishTopic, clientId, params);
    const key = (this.#options.keyParam && params[this.#options.keyParam]) || clientId;
    try {
      const { partition, offset } = await this.#publisher.send(topic, key, toBuffer(message.payload));
      return { meta: { topic, partition, offset } };
    } catch (error) {
      if (!(error instanceof GatewayError)) throw this.#unavailable(`publish to ${topic} failed`, error);
      throw new GatewayError(error.code, `publish to ${topic} failed: ${error.message}`, error.temporary, {
        cause: error,
      });
    }
  }

  bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#consumers.run(clientId, async () => {
      const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
      const existing = this.#consumers.get(clientId);
      if (existing && existing.topic === topic && !existing.paused) return;
      if (existing) await this.#consumers.stop(clientId);
      await this.#startReading(clientId, topic, true);
      this.#options.logger.info(
        `[Kafka] Client ${clientId} bound to endpoint ${this.name} (consuming ${topic})`,
      );
    });
  }

  suspendClient(clientId: string): Promise<void> {
    // Nothing more is handed over from now on, even from a fetch answer being delivered.
    this.#consumers.pause(clientId);
    return this.#consumers.run(clientId, () => this.#consumers.stop(clientId));
  }

  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#consumers.run(clientId, async () => {
      const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
      const existing = this.#consumers.get(clientId);
      if (existing && !existing.paused) return;
      if (existing) await this.#consumers.stop(clientId);
      await this.#startReading(clientId, topic, false);
    });
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    return this.#consumers.run(clientId, async () => {
      await this.#consumers.stop(clientId);
      try {
        // An unbind after a crash, or twice, finds no group: nothing to do.
        await this.#consumers.forget(clientId);
      } catch (error) {
        throw this.#unavailable(`cannot delete consumer group of ${clientId}`, error);
      }
    });
  }

  async health(): Promise<EndpointHealth> {
    try {
      const cluster = await withTimeout(this.#admin.describeCluster(), 3000, this.#options.scheduler);
      return {
        ok: true,
        detail: `${cluster.brokers.length} brokers reachable, ${this.#consumers.size} clients reading`,
      };
    } catch (error) {
      return { ok: false, detail: `brokers unreachable: ${(error as Error).message}` };
    }
  }

  bindingCount(): number {
    return this.#consumers.size;
  }

  /** Starts reading for the client (see SharedFetch.start); UPSTREAM_UNAVAILABLE if it cannot. */
  async #startReading(clientId: string, topic: string, fresh: boolean): Promise<void> {
    try {
      await this.#consumers.start(clientId, topic, fresh);
    } catch (error) {
      throw this.#unavailable(`Kafka consumer for ${clientId} failed`, error);
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

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
