/**
 * The MQTT endpoint (DESIGN.md section 8), "hybrid": publishes go through a shared producer pool
 * (1:N); each bound client has a dedicated consumer connection (1:1) with client ID
 * `engine-{endpoint}-client-{clientId}`, `clean: false` and QoS 1, so the broker holds a
 * persistent session that queues the client's messages while it is away.
 *
 * A message is PUBACKed only after the hub wrote it to the client's live connection. When the
 * hub refuses one (client gone, socket backed up), the consumer goes offline without acking:
 * the broker keeps that message and everything after it, and redelivers them in order when
 * `resumeClient` reconnects.
 *
 * A broker that is down (at start or later) is the endpoint contract's case (Endpoint.start):
 * the producer pool reports it to the endpoint's BrokerReachability, every connection reconnects
 * with back-off, and binds and resumes meanwhile fail at once with UPSTREAM_UNAVAILABLE.
 *
 * About 400 lines, one class: the producer pool, client options and PUBACK batching are in files
 * of their own. What is left is each client's consumer connection (connect, subscribe, go offline,
 * close) under the per-client lock: every Endpoint method and the connection's event handlers
 * change the same `#consumers` entry.
 */
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
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
import { KeyedMutex } from "../../core/mutex.ts";
import { BrokerReachability } from "../../core/reachability.ts";
import type { Scheduler } from "../../core/scheduler.ts";
import { expandTopic } from "../template.ts";

/** One warning per process when mqtt.js's socket cannot be corked (see corkPubacks). */
let uncorkableLogged = false;
import { brokerOptions, NO_LOG } from "./client-options.ts";
import { connected, endWithin, ProducerPool, reconnectWithBackOff } from "./producer-pool.ts";
import { checkMqttInternals, corkPubacks, DEFERRED, MQTT_JS_TESTED, sendPuback } from "./puback.ts";
import type { PubackBatch } from "./puback.ts";

/**
 * The endpoint's settings. Every tunable is required: its default is written once, in the
 * config schema (its definition.ts), whose output the factory passes here.
 */
export interface MqttEndpointOptions {
  name: string;
  url: string;
  publishTopic: string;
  subscribeTopic: string;
  qos: 0 | 1;
  producerPoolSize: number;
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  /** The reconnection window in ms: the broker keeps a consumer's session at least this long. */
  sessionExpiry: number;
  /** Longest wait for a CONNACK, in ms. */
  connectTimeout: number;
  /** Longest wait for a publish's PUBACK, in ms. */
  publishTimeout: number;
  /** Distinguishes this node's producer client IDs from other nodes'. */
  nodeId: string;
  logger: Logger;
  /** The endpoint's own timeouts run on it (mqtt.js's internal timers do not). */
  scheduler: Scheduler;
}

interface Consumer {
  topic: string;
  client?: MqttClient;
  /** The PUBACKs held for this turn of the event loop (see corkPubacks): flushed before any close. */
  pubacks?: PubackBatch;
  /** Set when a delivery was refused: nothing more is handed over until resume. */
  paused: boolean;
}

/** Extra session lifetime beyond the window, so the cleanup worker (not the broker) ends it. */
const EXPIRY_MARGIN_S = 300;

export class MqttEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: MqttEndpointOptions;
  #pool: ProducerPool;
  #handler?: DeliveryHandler;
  #consumers = new Map<string, Consumer>();
  #locks = new KeyedMutex();
  /** The options every connection shares, the broker URL parsed: built once, used per bind. */
  #base: IClientOptions;
  /** Up while a producer connection is; for /readyz, and the one WARN/INFO of an outage. */
  readonly reachability: BrokerReachability;

  constructor(options: MqttEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    this.reachability = new BrokerReachability({
      component: "MQTT",
      endpoint: options.name,
      // The one place the broker's URL is put into a log line of the reachability.
      target: `broker ${redactUrl(String(options.url))}`,
      logger: options.logger,
      scheduler: options.scheduler,
    });
    const { url, protocolVersion, username, password } = options;
    this.#base = {
      ...brokerOptions(url),
      protocolVersion,
      username,
      password,
      keepalive: 30,
      reconnectOnConnackError: true,
      log: NO_LOG,
    };
    this.#pool = new ProducerPool({
      url: options.url,
      size: options.producerPoolSize,
      clientIdPrefix: `engine-${options.name}-producer-${options.nodeId}`,
      qos: options.qos,
      publishTimeout: options.publishTimeout,
      connectTimeout: options.connectTimeout,
      base: this.#base,
      logger: options.logger,
      scheduler: options.scheduler,
      reachability: this.reachability,
    });
  }

  /** The consumer's MQTT client ID for a gateway client. */
  consumerId(clientId: string): string {
    return `engine-${this.name}-client-${clientId}`;
  }

  async start(handler: DeliveryHandler): Promise<void> {
    checkMqttInternals();
    this.#handler = handler;
    await this.#pool.start();
  }

  async stop(): Promise<void> {
    // Consumers go offline without ending their broker sessions: clients resume elsewhere.
    await Promise.all([...this.#consumers.keys()].map((id) => this.suspendClient(id)));
    this.#consumers.clear();
    await this.#pool.stop();
  }

  async publish(
    clientId: string,
    message: OutboundMessage,
    params: Record<string, string>,
  ): Promise<Receipt> {
    const topic = expandTopic(this.#options.publishTopic, clientId, params);
    await this.#pool.publish(clientId, topic, message.payload);
    return { meta: { topic } };
  }

  bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      this.#checkReachable();
      const topic = expandTopic(this.#options.subscribeTopic, clientId, params);
      const existing = this.#consumers.get(clientId);
      if (existing?.client && existing.topic === topic && !existing.paused) return;
      if (existing) await this.#close(existing);
      await this.#connect(clientId, { topic, paused: false }, true);
      this.#options.logger.info(
        `[MQTT] Client ${clientId} bound to endpoint ${this.name} (subscribed to ${topic})`,
      );
    });
  }

  /** Offline and forgotten here: the broker holds all there is, and resume may be on another node. */
  suspendClient(clientId: string): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const consumer = this.#consumers.get(clientId);
      this.#consumers.delete(clientId);
      if (consumer) await this.#close(consumer);
    });
  }

  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const topic = expandTopic(this.#options.subscribeTopic, clientId, params);
      const consumer = this.#consumers.get(clientId);
      if (consumer?.client && !consumer.paused) return;
      this.#checkReachable();
      if (consumer) await this.#close(consumer);
      await this.#connect(clientId, { topic, paused: false }, false);
    });
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const consumer = this.#consumers.get(clientId);
      this.#consumers.delete(clientId);
      if (consumer) await this.#close(consumer);
      // A clean start with no expiry makes the broker discard the persistent session now.
      const client = mqtt.connect({
        ...this.#base,
        clientId: this.consumerId(clientId),
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: this.#options.connectTimeout,
        properties: this.#options.protocolVersion === 4 ? undefined : { sessionExpiryInterval: 0 },
      });
      client.on(
        "error",
        (e) =>
          this.#options.logger.debug(`[MQTT] ${this.name}: ending the session of ${clientId}: ${e.message}`),
      );
      try {
        await connected(client, this.#options.connectTimeout, this.#options.scheduler);
      } catch (error) {
        throw new GatewayError(
          "UPSTREAM_UNAVAILABLE",
          `cannot end MQTT session of ${clientId}: ${(error as Error).message}`,
        );
      } finally {
        await endWithin(client, this.#options.connectTimeout, this.#options.scheduler);
      }
    });
  }

  health(): Promise<EndpointHealth> {
    const up = this.#pool.connectedCount;
    const why = this.reachability.reason;
    return Promise.resolve({
      ok: up > 0,
      detail: `${
        why ? `broker unreachable (${why}), retrying; ` : ""
      }${up}/${this.#pool.size} producer connections up, ${this.consumerCount} consumers online`,
    });
  }

  bindingCount(): number {
    return this.#consumers.size;
  }

  /** Entries kept per client, by map (see Hub.retained): none for a client suspended or unbound. */
  retained(): Record<string, number> {
    return { consumers: this.#consumers.size, locks: this.#locks.size };
  }

  /** Publish connections (the pool's size, whatever the number of clients). */
  get producerCount(): number {
    return this.#pool.size;
  }

  /** Publish connections currently connected to the broker. */
  get producersUp(): number {
    return this.#pool.connectedCount;
  }

  /** Consumer connections currently open. */
  get consumerCount(): number {
    let n = 0;
    for (const c of this.#consumers.values()) if (c.client) n++;
    return n;
  }

  /**
   * Opens the client's consumer with its persistent session. Handlers are attached before
   * connecting: a persistent session delivers its queue right after CONNACK.
   */
  async #connect(clientId: string, consumer: Consumer, subscribe: boolean): Promise<void> {
    const { qos, protocolVersion, sessionExpiry, connectTimeout, scheduler } = this.#options;
    const client = mqtt.connect({
      ...this.#base,
      clientId: this.consumerId(clientId),
      clean: false,
      manualConnect: true,
      reconnectPeriod: 1000,
      connectTimeout,
      properties: protocolVersion === 4
        ? undefined
        : { sessionExpiryInterval: Math.ceil(sessionExpiry / 1000) + EXPIRY_MARGIN_S },
      customHandleAcks: (topic, payload, packet, ack) => {
        // Not acked means the broker keeps it; the socket and everything after it wait for resume.
        if (consumer.paused || consumer.client !== client) return;
        let deferred = false;
        let settled = false;
        const settle = () => {
          if (settled) return;
          settled = true;
          if (!deferred) return ack(0);
          // Acknowledged by the client later: the PUBACK goes out now, on this connection only
          // (after a reconnect the broker resends what this one never acknowledged).
          if (consumer.client === client && client.connected) {
            // Batched too: one cumulative client ack settles many messages at once.
            consumer.pubacks?.hold();
            sendPuback(client, packet.messageId);
          }
        };
        try {
          const written = this.#handler?.deliver(clientId, this.name, {
            payload,
            meta: { topic },
            // The broker sets DUP on a message it sent before without getting its PUBACK.
            redelivered: packet.dup || undefined,
            settle,
          }) ?? false;
          if (written) {
            // Settled later (a client with acks): mqtt.js handles no further packet until this
            // callback is called, so it is released now without a PUBACK (see DEFERRED).
            if (!settled) {
              deferred = true;
              ack(DEFERRED);
            }
            return;
          }
        } catch (error) {
          // Thrown inside mqtt.js's packet handling, it would end the process: taken as a refusal.
          this.#options.logger.error(
            `[MQTT] ${this.name}: delivering to ${clientId} failed; kept by the broker until resume`,
            error,
          );
        }
        consumer.paused = true;
        void this.#close(consumer, false);
      },
    });
    reconnectWithBackOff(client);
    consumer.client = client;
    consumer.pubacks = corkPubacks(client, () => {
      if (uncorkableLogged) return;
      uncorkableLogged = true;
      this.#options.logger.warn(
        `[MQTT] ${this.name}: mqtt.js's client.stream has no cork(): PUBACKs are written one by one ` +
          `(slower, still correct); mqtt ${MQTT_JS_TESTED} is the version this gateway was tested with`,
      );
    });
    this.#consumers.set(clientId, consumer);
    client.on("error", (e) => {
      if (e !== DEFERRED) {
        this.#options.logger.debug(`[MQTT] ${this.name}: consumer of ${clientId}: ${e.message}`);
      }
    });
    let first = true;
    let up = false;
    client.on("close", () =>
      this.#guard(clientId, "reporting the dropped consumer", () => {
        // Reported once per drop of a live connection, not per failed reconnect attempt.
        if (!up || consumer.client !== client) return;
        up = false;
        this.#handler?.consumerDropped?.(clientId, this.name);
      }));
    client.on("connect", (connack) =>
      this.#guard(clientId, "handling the connect", () => {
        up = true;
        const subscribing = subscribe && first;
        first = false;
        // A broker that lost the session (restart without persistence) needs the subscription again.
        if (!connack.sessionPresent && !subscribing) {
          client.subscribe(consumer.topic, { qos }, (e) => {
            if (e) this.#options.logger.error(`[MQTT] Resubscribing ${clientId} failed`, e);
          });
        }
      }));
    client.connect();
    try {
      await connected(client, connectTimeout, scheduler);
      if (subscribe) await client.subscribeAsync(consumer.topic, { qos });
    } catch (error) {
      void this.#close(consumer);
      // A consumer that never came up is no binding (bindingCount, /metrics); a newer one stays.
      if (this.#consumers.get(clientId) === consumer) this.#consumers.delete(clientId);
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `MQTT consumer for ${clientId} failed: ${(error as Error).message}`,
      );
    }
  }

  /** While the broker is down a bind waits for no CONNACK: it is refused at once, temporarily. */
  #checkReachable(): void {
    if (this.reachability.state !== "down") return;
    throw new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `MQTT endpoint ${this.name}: the broker is unreachable (${this.reachability.reason}); retrying`,
    );
  }

  /** Runs an event handler of mqtt.js's: an exception thrown there would end the process. */
  #guard(clientId: string, what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#options.logger.error(`[MQTT] ${this.name}: ${what} for ${clientId} failed`, error);
    }
  }

  /** Takes the consumer offline without touching its broker session. */
  #close(consumer: Consumer, unpause = true): Promise<void> {
    const client = consumer.client;
    consumer.pubacks?.flush();
    consumer.client = undefined;
    consumer.pubacks = undefined;
    if (unpause) consumer.paused = false;
    if (!client) return Promise.resolve();
    if (!client.connected) {
      client.end(true);
      return Promise.resolve();
    }
    // Gracefully, so the PUBACKs written last reach the broker (a forced end can drop them, and
    // the broker would send those messages again); by force if the broker does not answer.
    // Unacknowledged messages stay with the broker either way: the session is persistent.
    return endWithin(client, FLUSH_MS, this.#options.scheduler);
  }
}

/** How long a consumer going offline may take to flush its last PUBACKs, in ms. */
const FLUSH_MS = 1000;
