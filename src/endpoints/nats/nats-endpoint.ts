/**
 * The NATS JetStream endpoint, on @nats-io/transport-node and @nats-io/jetstream: one NATS
 * connection per endpoint carries publishes and every client's consumer.
 *
 * Publishes go to a subject (template) and resolve on the JetStream ack. Each bound client has a
 * durable pull consumer `engine-{endpoint}-client-{clientId}` (the ID escaped to consumer-name
 * characters, subjects.ts) with explicit acks, filtered on its subscribe subject: a message is
 * acked only when the hub settles it (after the write, or the client's ack). A new binding
 * starts at the stream's end; suspend stops pulling, and whatever was handed over and not
 * settled stays pending with the server; resume re-creates the consumer at its ack floor, so that
 * comes again first, in order, flagged redelivered (client-pulls.ts), on any node; unbind
 * deletes the consumer. The stream is looked up at start, and created when missing.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { GatewayError, redactUrl } from "../../plugin.ts";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  Logger,
  OutboundMessage,
  Receipt,
  Scheduler,
} from "../../plugin.ts";
import { ClientPulls, notFound } from "./client-pulls.ts";
import { consumerNamePart, expandSubject, streamSubjects } from "./subjects.ts";

/**
 * The endpoint's settings. Every tunable is required: its default is written once, in its
 * definition.ts, whose output the factory passes here.
 */
export interface NatsEndpointOptions {
  name: string;
  /** `host:port` or `nats://host:port` URLs of one cluster. */
  servers: string[];
  /** The JetStream stream publishes land in and consumers read from. */
  stream: string;
  /** Create the stream when it does not exist (with `streamSubjects`); else a missing one stops start-up. */
  createStream: boolean;
  /** Subjects of a created stream; derived from the two templates when unset. */
  streamSubjects?: string[];
  publishSubject: string;
  subscribeSubject: string;
  username?: string;
  password?: string;
  token?: string;
  /** Longest wait for the connection and for a JetStream API request, in ms. */
  connectTimeout: number;
  /** Longest wait for a publish's JetStream ack (and a settle's ack confirmation), in ms. */
  publishTimeout: number;
  /** How long the server waits for an ack before handing a message out again, in ms. */
  ackWait: number;
  /** Messages handed over and not acked per client, at most (the server's max_ack_pending). */
  maxAckPending: number;
  /** A consumer nobody pulls from is deleted by the server after this long, in ms (a safety net). */
  inactiveThreshold: number;
  /** Distinguishes this node's connection name. */
  nodeId: string;
  logger: Logger;
  scheduler: Scheduler;
}

export class NatsEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: NatsEndpointOptions;
  #nc?: NatsConnection;
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #up = false;
  #pulls: ClientPulls;

  constructor(options: NatsEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    this.#pulls = new ClientPulls({
      endpoint: options.name,
      stream: options.stream,
      consumerName: (clientId) => this.consumerName(clientId),
      ackWait: options.ackWait,
      maxAckPending: options.maxAckPending,
      inactiveThreshold: options.inactiveThreshold,
      ackTimeout: options.publishTimeout,
      connected: () => this.#up,
      logger: options.logger,
      scheduler: options.scheduler,
    });
  }

  /** The durable consumer of a gateway client. */
  consumerName(clientId: string): string {
    return `engine-${this.name}-client-${consumerNamePart(clientId)}`;
  }

  /** Connects, checks JetStream, and finds (or creates) the stream. */
  async start(handler: DeliveryHandler): Promise<void> {
    const { servers, username, password, token, connectTimeout, publishTimeout, logger } = this.#options;
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        user: username,
        pass: password,
        token,
        name: `engine-${this.name}-${this.#options.nodeId}`,
        timeout: connectTimeout,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
      });
    } catch (error) {
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `cannot connect to NATS at ${redactUrl(servers)}: ${(error as Error).message}`,
      );
    }
    this.#nc = nc;
    this.#up = true;
    void this.#watch(nc);
    try {
      this.#jsm = await jetstreamManager(nc, { timeout: connectTimeout });
    } catch (error) {
      await nc.close();
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS at ${redactUrl(servers)} has no JetStream: ${(error as Error).message}`,
      );
    }
    this.#js = jetstream(nc, { timeout: publishTimeout });
    this.#pulls.attach(this.#js, this.#jsm, handler);
    try {
      await this.#ensureStream();
    } catch (error) {
      await nc.close();
      throw error;
    }
    logger.info(
      `[NATS] Endpoint ${this.name} connected to ${nc.getServer()} (stream ${this.#options.stream})`,
    );
  }

  /** Takes every consumer offline (their state stays with the server) and closes the connection. */
  async stop(): Promise<void> {
    await Promise.all(this.#pulls.clientIds().map((id) => this.suspendClient(id)));
    const nc = this.#nc;
    this.#nc = undefined;
    this.#up = false;
    await nc?.close();
  }

  async publish(
    clientId: string,
    message: OutboundMessage,
    params: Record<string, string>,
  ): Promise<Receipt> {
    const subject = expandSubject(this.#options.publishSubject, clientId, params);
    const js = this.#js;
    if (!js || !this.#up) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS endpoint ${this.name} is not connected`);
    }
    try {
      const ack = await js.publish(subject, message.payload, { timeout: this.#options.publishTimeout });
      return { meta: { subject, stream: ack.stream, seq: ack.seq } };
    } catch (error) {
      const e = error as Error;
      // No ack in time, or the connection went with the publish on it: it may have been stored.
      if (e.name === "TimeoutError" || /closed|disconnect/i.test(e.message)) {
        throw new GatewayError(
          "OUTCOME_UNKNOWN",
          `NATS publish to ${subject} not acknowledged: ${e.message}`,
        );
      }
      // No responder on the subject: nats.js says "jetstream is not enabled" for that.
      const why = e.name === "JetStreamNotEnabled" || e.name === "NoRespondersError"
        ? "no stream captures this subject (or JetStream is off)"
        : e.message;
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS publish to ${subject} refused: ${why}`);
    }
  }

  /**
   * A new binding starts at the stream's end. A consumer left from an earlier binding (an unbind
   * that failed) is replaced; a pull of this binding here already is kept (bind twice).
   */
  bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#pulls.run(clientId, async () => {
      const subject = expandSubject(this.#options.subscribeSubject, clientId, params);
      if (this.#pulls.isLive(clientId, subject)) return;
      await this.#pulls.start(clientId, subject, params, { fresh: !this.#pulls.has(clientId, subject) });
      this.#options.logger.info(
        `[NATS] Client ${clientId} bound to endpoint ${this.name} (consumer ${
          this.consumerName(clientId)
        } on ${subject})`,
      );
    });
  }

  /** Stops pulling and forgets the client here: the server holds all there is. */
  suspendClient(clientId: string): Promise<void> {
    return this.#pulls.run(clientId, () => this.#pulls.stop(clientId));
  }

  /** Pulls again from the consumer's ack floor: what was not settled comes first, flagged. */
  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#pulls.run(clientId, async () => {
      const subject = expandSubject(this.#options.subscribeSubject, clientId, params);
      if (this.#pulls.isLive(clientId, subject)) return;
      await this.#pulls.start(clientId, subject, params);
    });
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    return this.#pulls.run(clientId, async () => {
      await this.#pulls.stop(clientId, true);
      try {
        await this.#manager().consumers.delete(this.#options.stream, this.consumerName(clientId));
      } catch (error) {
        if (notFound(error)) return;
        throw new GatewayError(
          "UPSTREAM_UNAVAILABLE",
          `cannot delete the NATS consumer of ${clientId}: ${(error as Error).message}`,
        );
      }
    });
  }

  health(): Promise<EndpointHealth> {
    const server = this.#nc?.getServer() ?? redactUrl(this.#options.servers);
    return Promise.resolve({
      ok: this.#up,
      detail: `${
        this.#up ? "connected to" : "not connected to"
      } ${server}, ${this.#pulls.size} consumers bound`,
    });
  }

  bindingCount(): number {
    return this.#pulls.size;
  }

  /**
   * Connection status: a drop is reported for every pulling client (the hub checks ownership).
   * After a reconnect every pull starts again from its ack floor: what the server sent into the
   * dropped connection would otherwise come only after ack_wait, behind newer messages.
   */
  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        this.#up = false;
        this.#options.logger.warn(`[NATS] Endpoint ${this.name} lost its connection; reconnecting`);
        this.#pulls.reportDropped();
      } else if (status.type === "reconnect") {
        this.#up = true;
        this.#options.logger.info(`[NATS] Endpoint ${this.name} reconnected to ${nc.getServer()}`);
        this.#pulls.restartAll();
      }
    }
  }

  async #ensureStream(): Promise<void> {
    const { stream, createStream, publishSubject, subscribeSubject, logger } = this.#options;
    const jsm = this.#manager();
    try {
      const info = await jsm.streams.info(stream);
      logger.info(`[NATS] Using the stream ${stream} (subjects ${info.config.subjects?.join(", ")})`);
      return;
    } catch (error) {
      if (!notFound(error)) {
        throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS stream ${stream}: ${(error as Error).message}`);
      }
    }
    if (!createStream) {
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS stream ${stream} does not exist (create_stream is false)`,
      );
    }
    const subjects = this.#options.streamSubjects ?? streamSubjects([publishSubject, subscribeSubject]);
    try {
      await jsm.streams.add({ name: stream, subjects });
    } catch (error) {
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `cannot create the NATS stream ${stream} with subjects ${subjects.join(", ")}: ${
          (error as Error).message
        }`,
      );
    }
    logger.info(`[NATS] Created the stream ${stream} (subjects ${subjects.join(", ")})`);
  }

  #manager(): JetStreamManager {
    if (!this.#jsm) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS endpoint ${this.name} is not started`);
    }
    return this.#jsm;
  }
}
