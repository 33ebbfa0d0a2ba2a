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
 *
 * Brokers that are down at start or later are the endpoint contract's case (Endpoint.start):
 * start() makes one attempt and resolves; the producer and admin connect again on the scheduler
 * after `retryDelay` until they are up. Later, a failed health check or a connection error that
 * kafkajs reports makes the endpoint ask the cluster at once, and down it goes into the same
 * retries. kafkajs's own connection errors (a line per broker and retry) go to debug: the
 * BrokerReachability logs the outage once and the return once.
 *
 * Under 400 lines, one class: the Endpoint methods and the connection checks they all depend on
 * (`#check`, `#failed`); the consume path is in shared-fetch.ts, the publish lanes in producer.ts,
 * the requests in wire.ts.
 */
import { Buffer } from "node:buffer";
import { Kafka, Partitioners } from "kafkajs";
import type { Admin, KafkaConfig, Producer, SASLOptions } from "kafkajs";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  OutboundMessage,
  Receipt,
} from "../../core/endpoint.ts";
import { GatewayError } from "../../core/errors.ts";
import { redactUrl } from "../../core/redact.ts";
import type { Logger } from "../../core/logger.ts";
import { BrokerReachability, retryDelay } from "../../core/reachability.ts";
import type { Scheduler, TimerId } from "../../core/scheduler.ts";
import { expandTopic } from "../template.ts";
import { KAFKA_LOG_LEVEL, kafkaLogCreator } from "./kafka-log.ts";
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
  /** Longest a fetch waits for data, in ms: also how long a suspend may take. */
  fetchMaxWait: number;
  logger: Logger;
  /** The endpoint's own timeouts run on it (kafkajs's internal timers do not). */
  scheduler: Scheduler;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
/** Longest the welcome waits for the retention check of a resume (see takeLosses), in ms. */
const LOSS_CHECK_MS = 2000;

export class KafkaEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: KafkaEndpointOptions;
  #kafka: Kafka;
  #producer: Producer;
  #admin: Admin;
  #consumers: SharedFetch;
  #publisher: KeyedProducer;
  /** Brokers answering; for /readyz, and the one WARN/INFO of an outage. */
  readonly reachability: BrokerReachability;
  /** The producer and admin connected (once; kafkajs reconnects them on demand after that). */
  #connected = false;
  #stopped = true;
  /** The next attempt while the brokers are down. */
  #retry?: TimerId;
  #attempts = 0;
  /** The attempt in flight, if any: triggers coming meanwhile join it. */
  #checking?: Promise<void>;

  constructor(options: KafkaEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    const logger = options.logger;
    this.reachability = new BrokerReachability({
      component: "Kafka",
      endpoint: options.name,
      // The one place the brokers are put into a log line of the reachability.
      target: `Kafka at ${redactUrl(options.brokers.map((b) => String(b)))}`,
      logger,
      scheduler: options.scheduler,
    });
    const config: KafkaConfig = {
      clientId: `engine-${options.name}-${options.nodeId}`,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectTimeout,
      requestTimeout: options.publishTimeout,
      // Few, quick retries: a publish fails within about its timeout instead of minutes.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
      logLevel: KAFKA_LOG_LEVEL,
      // A connection error is the outage the reachability reports once, not a line per broker,
      // client and retry: it only makes the endpoint check the cluster now.
      logCreator: kafkaLogCreator(logger, options.name, () => options.scheduler.now(), {
        onConnectionError: () => this.#checkNow(),
        quiet: () => !this.reachability.reachable,
      }),
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
      onConnectionError: () => this.#checkNow(),
    });
  }

  /** The consumer group holding a gateway client's offsets. */
  groupId(clientId: string): string {
    return `engine-${this.name}-client-${clientId}`;
  }

  /** Connects the producer and admin: one attempt, then more with back-off (see the module comment). */
  async start(handler: DeliveryHandler): Promise<void> {
    this.#consumers.deliverTo(handler);
    this.#stopped = false;
    this.#attempts = 0;
    await this.#check();
  }

  /**
   * One attempt: connects the producer and admin if they never were, else asks the cluster for
   * its brokers. Up or down, the reachability is told; down, the next attempt is scheduled.
   */
  #check(): Promise<void> {
    this.#checking ??= (async () => {
      try {
        if (this.#connected) {
          await withTimeout(
            this.#admin.describeCluster(),
            this.#options.connectTimeout,
            this.#options.scheduler,
          );
        } else {
          await Promise.all([this.#producer.connect(), this.#admin.connect()]);
          this.#connected = true;
        }
        if (this.#stopped) return;
        this.#attempts = 0;
        this.reachability.up();
      } catch (error) {
        this.#failed(error);
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  /** A connection error was reported while the brokers counted as up: check them now. */
  #checkNow(): void {
    if (this.#stopped || !this.reachability.reachable) return;
    void this.#check();
  }

  /** Reports the brokers down (logged once) and schedules the next attempt, with back-off. */
  #failed(error: unknown): void {
    if (this.#stopped) return;
    this.reachability.down((error as Error).message);
    if (this.#retry !== undefined) return;
    this.#retry = this.#options.scheduler.setTimeout(() => {
      this.#retry = undefined;
      void this.#check();
    }, retryDelay(this.#attempts++));
  }

  /** The producer never connected: kafkajs would refuse anyway ("the producer is disconnected"). */
  #checkConnected(): void {
    if (this.#connected) return;
    throw new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `Kafka endpoint ${this.name}: the brokers are unreachable (${
        this.reachability.reason ?? "connecting"
      }); retrying`,
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== undefined) this.#options.scheduler.clear(this.#retry);
    this.#retry = undefined;
    // What was settled is committed; the committed offsets stay, so clients resume elsewhere.
    await this.#consumers.suspendAll();
    await Promise.allSettled([
      this.#producer.disconnect(),
      this.#admin.disconnect(),
      this.#consumers.close(),
    ]);
    this.#connected = false;
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
    this.#checkConnected();
    const key = (this.#options.keyParam && params[this.#options.keyParam]) || clientId;
    try {
      const { partition, offset } = await this.#publisher.send(topic, key, toBuffer(message.payload));
      return { meta: { topic, partition, offset } };
    } catch (error) {
      if (!(error instanceof GatewayError)) throw this.#unavailable(`publish to ${topic} failed`, error);
      throw new GatewayError(error.code, `publish to ${topic} failed: ${error.message}`, {
        temporary: error.temporary,
        cause: error,
      });
    }
  }

  // Whether a bind or resume has anything to do, and in which order a reading is stopped and
  // started, is the shared fetch's to decide (SharedFetch.bind/resume/suspend/unbind); the
  // endpoint names the topic, refuses while the brokers were never reached, and words the errors.

  async bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
    let started: boolean;
    try {
      started = await this.#consumers.bind(clientId, topic, () => this.#checkConnected());
    } catch (error) {
      throw this.#unavailable(`Kafka consumer for ${clientId} failed`, error);
    }
    if (started) {
      this.#options.logger.info(
        `[Kafka] Client ${clientId} bound to endpoint ${this.name} (consuming ${topic})`,
      );
    }
  }

  suspendClient(clientId: string): Promise<void> {
    return this.#consumers.suspend(clientId);
  }

  async resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
    try {
      await this.#consumers.resume(clientId, topic, () => this.#checkConnected());
    } catch (error) {
      throw this.#unavailable(`Kafka consumer for ${clientId} failed`, error);
    }
  }

  /**
   * What Kafka's retention deleted of the client's messages while it was away (see
   * SharedFetch.takeLost), asked when its session comes back, before the welcome. Brokers down
   * or slow (past LOSS_CHECK_MS): 0, and the fetch after the resume finds the loss and counts it
   * for the next report.
   */
  async takeLosses(clientId: string, params: Record<string, string>): Promise<number> {
    if (!this.#connected || !this.reachability.reachable) return 0;
    let check: Promise<number> | undefined;
    try {
      const topic = this.#topic(this.#options.subscribeTopic, clientId, params);
      check = this.#consumers.takeLost(clientId, topic);
      return await withTimeout(
        check,
        Math.min(LOSS_CHECK_MS, this.#options.connectTimeout),
        this.#options.scheduler,
      );
    } catch (error) {
      // Too slow for this welcome: what it finds goes in the next report.
      check?.then((n) => this.#consumers.keepLost(clientId, n), () => {});
      this.#options.logger.warn(
        `[Kafka] ${this.name}: cannot tell what retention deleted of ${clientId}'s messages (${
          (error as Error).message
        }); its fetch will tell`,
      );
      return 0;
    }
  }

  async unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    try {
      // An unbind after a crash, or twice, finds no group: nothing to do.
      await this.#consumers.unbind(clientId);
    } catch (error) {
      throw this.#unavailable(`cannot delete consumer group of ${clientId}`, error);
    }
  }

  /** Asks the cluster while it counts as up (a failure starts the retries); down, says why. */
  async health(): Promise<EndpointHealth> {
    if (!this.reachability.reachable) {
      const why = this.reachability.reason ?? "connecting";
      return {
        ok: false,
        detail: `brokers unreachable: ${why}; retrying, ${this.#consumers.size} consumers online`,
      };
    }
    try {
      const cluster = await withTimeout(this.#admin.describeCluster(), 3000, this.#options.scheduler);
      return {
        ok: true,
        detail: `${cluster.brokers.length} brokers reachable, ${this.#consumers.size} clients reading`,
      };
    } catch (error) {
      this.#failed(error);
      return { ok: false, detail: `brokers unreachable: ${(error as Error).message}` };
    }
  }

  bindingCount(): number {
    return this.#consumers.size;
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
    return new GatewayError("UPSTREAM_UNAVAILABLE", `${what}: ${(error as Error).message}`, {
      temporary: true,
      cause: error,
    });
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
