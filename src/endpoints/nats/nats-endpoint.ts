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
 *
 * A server that is down at start or later is the endpoint contract's case (Endpoint.start):
 * start() makes one attempt and resolves; the connection (and the stream look-up) is tried again
 * on the scheduler after `retryDelay`, and once connected nats.js reconnects by itself with the
 * same back-off. The BrokerReachability logs the outage once and the return once.
 *
 * Under 400 lines, one class: the Endpoint methods, plus the connection and stream look-up they
 * all wait on (`#connect`, `#watch`, `#ensureStream`); each client's pull is in client-pulls.ts.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { BrokerReachability, GatewayError, redactUrl, retryDelay } from "../../plugin.ts";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  Logger,
  OutboundMessage,
  Receipt,
  Scheduler,
  TimerId,
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
  /** Connected and the stream found; for /readyz, and the one WARN/INFO of an outage. */
  readonly reachability: BrokerReachability;
  #handler?: DeliveryHandler;
  /** The next connect attempt while the server has not answered yet. */
  #retry?: TimerId;
  #attempts = 0;
  /** Reconnect attempts of the current outage (nats.js's own, once connected). */
  #reconnects = 0;
  #stopped = true;

  constructor(options: NatsEndpointOptions) {
    this.name = options.name;
    this.#options = options;
    this.reachability = new BrokerReachability({
      component: "NATS",
      endpoint: options.name,
      // The one place the servers are put into a log line of the reachability.
      target: `NATS at ${redactUrl(options.servers.map((s) => String(s)))}`,
      logger: options.logger,
      scheduler: options.scheduler,
    });
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

  /**
   * Connects, checks JetStream, and finds (or creates) the stream: one attempt, then more on the
   * scheduler with back-off while the server does not answer (see the module comment). Rejects
   * only when a server that answered lacks the stream and `create_stream` is false.
   */
  async start(handler: DeliveryHandler): Promise<void> {
    this.#handler = handler;
    this.#stopped = false;
    this.#attempts = 0;
    const error = await this.#connect();
    if (error && !error.temporary) throw error;
    if (error) this.#retryLater(error);
  }

  /** One attempt to connect and set up; what failed, or nothing. */
  async #connect(): Promise<GatewayError | undefined> {
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
        // The contract's back-off. nats.js asks for the delay on every turn of its dial loop,
        // waits included, so it is counted by dials (#watch counts "reconnecting"), per outage.
        reconnectDelayHandler: () => retryDelay(this.#reconnects - 1),
      });
    } catch (error) {
      return new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `cannot connect to NATS at ${redactUrl(servers)}: ${(error as Error).message}`,
      );
    }
    try {
      this.#jsm = await jetstreamManager(nc, { timeout: connectTimeout });
      this.#js = jetstream(nc, { timeout: publishTimeout });
      this.#pulls.attach(this.#js, this.#jsm, this.#handler!);
      await this.#ensureStream();
    } catch (error) {
      // The setup's own error is what this attempt reports; a close that fails too adds nothing.
      await nc.close().catch(() => {});
      if (error instanceof GatewayError) return error;
      return new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS at ${redactUrl(servers)} has no JetStream: ${(error as Error).message}`,
      );
    }
    if (this.#stopped) {
      // Stopped while this attempt was setting up: nothing may stay open.
      await nc.close().catch(() => {});
      return undefined;
    }
    this.#nc = nc;
    this.#up = true;
    void this.#watch(nc);
    this.reachability.up();
    logger.info(
      `[NATS] Endpoint ${this.name} connected to ${nc.getServer()} (stream ${this.#options.stream})`,
    );
    return undefined;
  }

  /** Reports the server down (once) and tries again after the next back-off delay. */
  #retryLater(error: GatewayError): void {
    if (this.#stopped) return;
    this.reachability.down(error.message);
    this.#retry = this.#options.scheduler.setTimeout(() => {
      this.#retry = undefined;
      void this.#connect().then((e) => {
        if (e) this.#retryLater(e);
      });
    }, retryDelay(this.#attempts++));
  }

  /** Takes every consumer offline (their state stays with the server) and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== undefined) this.#options.scheduler.clear(this.#retry);
    this.#retry = undefined;
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
      this.#checkConnected();
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
      this.#checkConnected();
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
    const why = this.reachability.reason;
    return Promise.resolve({
      ok: this.#up,
      detail: `${this.#up ? "connected to" : "not connected to"} ${server}${
        why ? ` (${why}), retrying` : ""
      }, ${this.#pulls.size} consumers bound`,
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
      if (status.type === "reconnecting") {
        this.#reconnects++;
      } else if (status.type === "disconnect") {
        this.#up = false;
        this.reachability.down("lost its connection");
        this.#pulls.reportDropped();
      } else if (status.type === "reconnect") {
        this.#up = true;
        this.#reconnects = 0;
        this.reachability.up();
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
      // Not temporary: no retry makes it; start() stops on it (later attempts just go on trying).
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS stream ${stream} does not exist (create_stream is false)`,
        { temporary: false },
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

  /** While the server is away a bind is refused at once, temporarily. */
  #checkConnected(): void {
    if (this.#up) return;
    throw new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `NATS endpoint ${this.name} is not connected${
        this.reachability.reason ? ` (${this.reachability.reason})` : ""
      }; retrying`,
    );
  }

  #manager(): JetStreamManager {
    if (!this.#jsm) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS endpoint ${this.name} is not started`);
    }
    return this.#jsm;
  }
}
