/**
 * The MQTT publish path (1:N): a fixed pool of connections shared by every client. A client
 * always publishes on the same connection (chosen by a hash of its ID), so its messages reach
 * the broker in the order it sent them; the number of publishing connections does not grow with
 * the number of clients. While the broker is unreachable, publishes fail fast with
 * UPSTREAM_UNAVAILABLE; mqtt.js reconnects the pool by itself, with back-off
 * (reconnectWithBackOff), and the pool tells the endpoint's BrokerReachability when its last
 * connection went down and when one is up again. A publish written to the broker whose PUBACK
 * does not come within the publish timeout is OUTCOME_UNKNOWN.
 */
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { GatewayError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { retryDelay } from "../../core/reachability.ts";
import type { BrokerReachability } from "../../core/reachability.ts";
import { redactUrl } from "../../core/redact.ts";
import type { Scheduler, TimerId } from "../../core/scheduler.ts";
import { DEFERRED } from "./puback.ts";

export interface ProducerPoolOptions {
  url: string;
  size: number;
  /** Prefix of the pool's MQTT client IDs; `-{i}` is appended. */
  clientIdPrefix: string;
  qos: 0 | 1;
  /** How long a publish may wait for its PUBACK, in ms. */
  publishTimeout: number;
  connectTimeout: number;
  /** What every connection shares, the broker included (`url` only names it in messages). */
  base: IClientOptions;
  logger: Logger;
  scheduler: Scheduler;
  /** Told when the last connection went down and when one is up again (it logs the change). */
  reachability: BrokerReachability;
}

export class ProducerPool {
  #clients: MqttClient[] = [];
  #options: ProducerPoolOptions;

  constructor(options: ProducerPoolOptions) {
    // `url` only names the broker in messages and log lines: without its credentials.
    this.#options = { ...options, url: redactUrl(options.url) };
  }

  /** Connects the pool; resolves once every connection is up or the connect timeout passed. */
  async start(): Promise<void> {
    const { url, size, clientIdPrefix, base, connectTimeout, logger, scheduler } = this.#options;
    this.#clients = Array.from({ length: size }, (_, i) =>
      mqtt.connect({
        ...base,
        clientId: `${clientIdPrefix}-${i}`,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout,
      }));
    const { reachability } = this.#options;
    let lastError: string | undefined;
    for (const client of this.#clients) {
      reconnectWithBackOff(client);
      client.on("error", (e) => {
        lastError = e.message;
        logger.debug(`[MQTT] Producer ${client.options.clientId}: ${e.message}`);
      });
      client.on("connect", () => reachability.up());
      // One WARN for the outage, however many connections and attempts fail (the reachability
      // logs only a change); the pool counts as down once none of its connections is up.
      client.on("close", () => {
        if (this.#clients.includes(client) && this.connectedCount === 0) {
          reachability.down(lastError ?? "connection closed");
        }
      });
    }
    // A connection not up yet is logged by its error handler above and counted just below; it
    // keeps reconnecting, so start() goes on without it.
    await Promise.all(this.#clients.map((c) => connected(c, connectTimeout, scheduler).catch(() => {})));
    const up = this.connectedCount;
    // The error can come before its close; a broker that takes the connection and never
    // answers closes nothing before the timeout.
    if (up === 0) reachability.down(lastError ?? `no CONNACK within ${connectTimeout} ms`);
    else if (up < size) {
      logger.warn(`[MQTT] ${up} of ${size} producer connections to ${url} are up; retrying`);
    }
  }

  /** Publishes and resolves on the broker's PUBACK (QoS 1) or once written (QoS 0). */
  publish(clientId: string, topic: string, payload: Uint8Array): Promise<void> {
    const client = this.#clients[hash(clientId) % this.#clients.length];
    if (!client?.connected) {
      return Promise.reject(
        new GatewayError("UPSTREAM_UNAVAILABLE", `MQTT broker ${this.#options.url} is unreachable`),
      );
    }
    const { scheduler } = this.#options;
    return new Promise((resolve, reject) => {
      const timer = scheduler.setTimeout(() => {
        // Written to the broker's connection already: it may have arrived, so not "unavailable"
        // (safe to retry) but unknown (a retry may duplicate it).
        reject(
          new GatewayError(
            "OUTCOME_UNKNOWN",
            `sent to ${this.#options.url}, no PUBACK within publish_timeout (${this.#options.publishTimeout} ms); a retry may duplicate it`,
          ),
        );
      }, this.#options.publishTimeout);
      client.publish(topic, payload as Buffer, { qos: this.#options.qos }, (error) => {
        scheduler.clear(timer);
        if (error) reject(new GatewayError("UPSTREAM_UNAVAILABLE", `MQTT publish failed: ${error.message}`));
        else resolve();
      });
    });
  }

  get size(): number {
    return this.#clients.length;
  }

  get connectedCount(): number {
    return this.#clients.filter((c) => c.connected).length;
  }

  /** Waits for in-flight publishes (at most the publish timeout), then closes every connection. */
  async stop(): Promise<void> {
    const { publishTimeout, scheduler } = this.#options;
    // Forgotten first: their closes are a stop, not an outage.
    const clients = this.#clients;
    this.#clients = [];
    await Promise.all(clients.map((c) => endWithin(c, publishTimeout, scheduler)));
  }
}

/**
 * Makes mqtt.js's reconnects back off as every endpoint's do (`retryDelay`: 1 s doubling to
 * 30 s), instead of its fixed `reconnectPeriod`: mqtt.js reads the period when it schedules the
 * next attempt, after each failed one. Its own timer, not the Scheduler: mqtt.js takes no other.
 */
export function reconnectWithBackOff(client: MqttClient): void {
  let attempt = 0;
  client.options.reconnectPeriod = retryDelay(0);
  client.on("reconnect", () => {
    client.options.reconnectPeriod = retryDelay(++attempt);
  });
  client.on("connect", () => {
    attempt = 0;
    client.options.reconnectPeriod = retryDelay(0);
  });
}

/** Resolves when the client has a CONNACK; rejects after `timeout` ms on `scheduler`. */
export function connected(client: MqttClient, timeout: number, scheduler: Scheduler): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      scheduler.clear(timer);
      client.off("connect", onConnect);
      client.off("error", onError);
      if (error) reject(error);
      else resolve();
    };
    const onConnect = () => done();
    // A consumer's deferred PUBACK (see puback.ts) is reported as an error, and can come before
    // the connect event (mqtt.js replays its outgoing store first): not a failed connect.
    const onError = (e: Error) => e !== DEFERRED && done(e);
    const timer = scheduler.setTimeout(() => done(new Error(`no CONNACK within ${timeout} ms`)), timeout);
    client.on("connect", onConnect);
    client.on("error", onError);
  });
}

/**
 * Ends a client gracefully (in-flight messages finish), or by force after `ms`: against a broker
 * that went away, a graceful end can wait forever.
 */
export async function endWithin(client: MqttClient, ms: number, scheduler: Scheduler): Promise<void> {
  let timer: TimerId | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = scheduler.setTimeout(() => {
      client.end(true);
      resolve();
    }, ms);
  });
  // A graceful end that fails has nothing left to flush: the socket is closed by force instead.
  await Promise.race([client.endAsync(false).catch(() => client.end(true)), forced]);
  scheduler.clear(timer!);
}

/** FNV-1a: a stable, cheap spread of client IDs over the pool. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
