/**
 * The NATS JetStream endpoint, on @nats-io/transport-node and @nats-io/jetstream: one NATS
 * connection per endpoint carries publishes and every client's consumer.
 *
 * Publishes go to a subject (template) and resolve on the JetStream ack. Each bound client has a
 * durable pull consumer `engine-{endpoint}-client-{clientId}` (the ID escaped to consumer-name
 * characters, subjects.ts) with explicit acks, filtered on its subscribe subject: a message is
 * acked only when the hub settles it (after the write, or the client's ack). Suspend stops
 * pulling; whatever was handed over and not settled stays pending with the server.
 *
 * JetStream would hand pending messages out again only when their ack_wait runs out, after newer
 * ones: so resume (and a bind that finds the consumer) re-creates the consumer at its ack floor,
 * and the queue comes again in stream order, the part that may have been seen flagged
 * redelivered. That also works on a node that never saw the client, and ends a pull another node
 * still has on the consumer (takeover). Unbind deletes the consumer.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type {
  ConsumerInfo,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
} from "@nats-io/jetstream";
import { GatewayError, KeyedMutex } from "../../plugin.ts";
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  Logger,
  OutboundMessage,
  Receipt,
  Scheduler,
} from "../../plugin.ts";
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

/** One client's pull on its consumer. */
interface Pull {
  subject: string;
  params: Record<string, string>;
  messages?: ConsumerMessages;
  /** A delivery was refused (or threw): nothing more is handed over until resume. */
  paused: boolean;
  /** Stopped here: what the pull still has buffered is not handed over. */
  stopped: boolean;
  /** Stream sequences up to this one may have reached the client before: flagged redelivered. */
  redeliverBelow: number;
  /** Ack confirmations in flight: a suspend waits for them, so a resume sees the acks. */
  acks: Set<Promise<void>>;
}

/** How many messages one pull request asks for. */
const BATCH = 256;
/** How long after a consumer was lost from under a live pull it is pulled again, in ms. */
const REPULL_MS = 2000;

const nanos = (ms: number) => ms * 1_000_000;

const notFound = (error: unknown) =>
  error instanceof Error && /NotFound/.test(error.name) ||
  /not found/i.test(String((error as Error)?.message));

export class NatsEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: NatsEndpointOptions;
  #handler?: DeliveryHandler;
  #nc?: NatsConnection;
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #up = false;
  #pulls = new Map<string, Pull>();
  #locks = new KeyedMutex();

  constructor(options: NatsEndpointOptions) {
    this.name = options.name;
    this.#options = options;
  }

  /** The durable consumer of a gateway client. */
  consumerName(clientId: string): string {
    return `engine-${this.name}-client-${consumerNamePart(clientId)}`;
  }

  /** Connects, checks JetStream, and finds (or creates) the stream. */
  async start(handler: DeliveryHandler): Promise<void> {
    this.#handler = handler;
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
        `cannot connect to NATS at ${servers.join(", ")}: ${(error as Error).message}`,
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
        `NATS at ${servers.join(", ")} has no JetStream: ${(error as Error).message}`,
      );
    }
    this.#js = jetstream(nc, { timeout: publishTimeout });
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
    await Promise.all([...this.#pulls.keys()].map((id) => this.suspendClient(id)));
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
    return this.#locks.run(clientId, async () => {
      const subject = expandSubject(this.#options.subscribeSubject, clientId, params);
      const pull = this.#pulls.get(clientId);
      if (pull && !pull.paused && pull.subject === subject) return;
      await this.#resume(clientId, subject, params, !(pull && pull.subject === subject));
      this.#options.logger.info(
        `[NATS] Client ${clientId} bound to endpoint ${this.name} (consumer ${
          this.consumerName(clientId)
        } on ${subject})`,
      );
    });
  }

  /** Stops pulling and forgets the client here: the server holds all there is. */
  suspendClient(clientId: string): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const pull = this.#pulls.get(clientId);
      this.#pulls.delete(clientId);
      if (pull) await this.#halt(pull);
    });
  }

  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const subject = expandSubject(this.#options.subscribeSubject, clientId, params);
      const pull = this.#pulls.get(clientId);
      if (pull && !pull.paused && pull.subject === subject) return;
      await this.#resume(clientId, subject, params);
    });
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    return this.#locks.run(clientId, async () => {
      const pull = this.#pulls.get(clientId);
      this.#pulls.delete(clientId);
      if (pull) await this.#halt(pull);
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
    const server = this.#nc?.getServer() ?? this.#options.servers.join(", ");
    return Promise.resolve({
      ok: this.#up,
      detail: `${
        this.#up ? "connected to" : "not connected to"
      } ${server}, ${this.#pulls.size} consumers pulling`,
    });
  }

  bindingCount(): number {
    return this.#pulls.size;
  }

  /**
   * Pulls for the client again from its consumer's ack floor (re-created there), or from a new
   * consumer at the stream's end when it has none, one on another subject, or `fresh`.
   */
  async #resume(
    clientId: string,
    subject: string,
    params: Record<string, string>,
    fresh = false,
  ): Promise<void> {
    const old = this.#pulls.get(clientId);
    this.#pulls.delete(clientId);
    if (old) await this.#halt(old);
    const name = this.consumerName(clientId);
    const info = await this.#info(name);
    let start: number;
    let redeliverBelow = 0;
    if (info && !fresh && info.config.filter_subject === subject) {
      // Acks are in delivery order, so everything past the floor is unsettled (or new).
      start = info.ack_floor.consumer_seq > 0
        ? info.ack_floor.stream_seq + 1
        : info.config.opt_start_seq ?? info.delivered.stream_seq + 1;
      redeliverBelow = info.delivered.stream_seq;
    } else start = await this.#streamEnd();
    await this.#api(`re-creating the NATS consumer of ${clientId}`, async (jsm) => {
      if (info) {
        await jsm.consumers.delete(this.#options.stream, name).catch((e) =>
          notFound(e) ? false : Promise.reject(e)
        );
      }
      await jsm.consumers.add(this.#options.stream, {
        durable_name: name,
        filter_subject: subject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
        ack_wait: nanos(this.#options.ackWait),
        max_ack_pending: this.#options.maxAckPending,
        inactive_threshold: nanos(this.#options.inactiveThreshold),
      });
    });
    const pull: Pull = { subject, params, paused: false, stopped: false, redeliverBelow, acks: new Set() };
    this.#pulls.set(clientId, pull);
    try {
      await this.#pull(clientId, name, pull);
    } catch (error) {
      if (this.#pulls.get(clientId) === pull) this.#pulls.delete(clientId);
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS consumer for ${clientId} failed: ${(error as Error).message}`,
      );
    }
  }

  /** Starts handing the consumer's messages over, one at a time, in order. */
  async #pull(clientId: string, name: string, pull: Pull): Promise<void> {
    const consumer = await this.#client().consumers.get(this.#options.stream, name);
    const messages = await consumer.consume({
      max_messages: Math.min(BATCH, this.#options.maxAckPending),
      // A consumer deleted from under the pull (another node resumed the client) ends it.
      abort_on_missing_resource: true,
      callback: (m) => this.#onMessage(clientId, pull, m),
    });
    pull.messages = messages;
    void messages.closed().then((error) => this.#lost(clientId, pull, error));
  }

  #onMessage(clientId: string, pull: Pull, m: JsMsg): void {
    // Not acked: it stays pending, and the next resume starts at the ack floor.
    if (pull.paused || pull.stopped || this.#pulls.get(clientId) !== pull) return;
    const seq = m.info.streamSequence;
    let settled = false;
    let written = false;
    try {
      written = this.#handler?.deliver(clientId, this.name, {
        payload: m.data,
        meta: { subject: m.subject, stream: m.info.stream, seq },
        redelivered: m.redelivered || seq <= pull.redeliverBelow || undefined,
        settle: () => {
          if (settled) return;
          settled = true;
          this.#ack(pull, m);
        },
      }) ?? false;
    } catch (error) {
      this.#options.logger.error(
        `[NATS] ${this.name}: delivering to ${clientId} failed; kept by the broker until resume`,
        error,
      );
    }
    if (!written) {
      pull.paused = true;
      pull.messages?.stop();
    }
  }

  /** Acks and waits for the server's confirmation, so a later resume reads an ack floor that has it. */
  #ack(pull: Pull, m: JsMsg): void {
    const confirmed: Promise<void> = m.ackAck({ timeout: this.#options.publishTimeout }).then(
      (ok) => {
        if (!ok) {
          this.#options.logger.debug(`[NATS] ${this.name}: ack of ${m.subject} #${m.seq} not confirmed`);
        }
      },
      (e) => this.#options.logger.debug(`[NATS] ${this.name}: ack of ${m.subject} #${m.seq}: ${e.message}`),
    ).finally(() => pull.acks.delete(confirmed));
    pull.acks.add(confirmed);
  }

  /** Stops pulling; the acks already sent are confirmed first. */
  async #halt(pull: Pull): Promise<void> {
    pull.stopped = true;
    pull.messages?.stop();
    await Promise.allSettled([...pull.acks]);
  }

  /**
   * The pull ended without being stopped here: its consumer was deleted (another node resumed
   * the client, or an operator). The hub checks who owns the session and suspends the client
   * here if another node does. A little later, a pull still here starts again only if the
   * consumer is still missing (an operator deleted it): one that exists was re-created by the
   * node the client went to, and taking it back would split the client's messages.
   */
  #lost(clientId: string, pull: Pull, error: void | Error): void {
    if (pull.stopped || this.#pulls.get(clientId) !== pull) return;
    pull.paused = true;
    this.#options.logger.warn(
      `[NATS] ${this.name}: the consumer of ${clientId} went away (${error?.message ?? "closed"})`,
    );
    try {
      this.#handler?.consumerDropped?.(clientId, this.name);
    } catch (e) {
      this.#options.logger.error(
        `[NATS] ${this.name}: reporting the dropped consumer of ${clientId} failed`,
        e,
      );
    }
    this.#options.scheduler.setTimeout(async () => {
      if (this.#pulls.get(clientId) !== pull) return;
      const name = this.consumerName(clientId);
      try {
        if (await this.#info(name)) {
          this.#options.logger.warn(
            `[NATS] ${this.name}: ${name} was re-created elsewhere; left to it until ${clientId} resumes here`,
          );
          return;
        }
        await this.resumeClient(clientId, pull.params);
      } catch (e) {
        this.#options.logger.warn(
          `[NATS] ${this.name}: pulling for ${clientId} again failed: ${(e as Error).message}`,
        );
      }
    }, REPULL_MS);
  }

  /** Connection status: a drop is reported for every pulling client (the hub checks ownership). */
  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        this.#up = false;
        this.#options.logger.warn(`[NATS] Endpoint ${this.name} lost its connection; reconnecting`);
        for (const clientId of this.#pulls.keys()) this.#handler?.consumerDropped?.(clientId, this.name);
      } else if (status.type === "reconnect") {
        this.#up = true;
        this.#options.logger.info(`[NATS] Endpoint ${this.name} reconnected to ${nc.getServer()}`);
      }
    }
  }

  async #info(name: string): Promise<ConsumerInfo | undefined> {
    try {
      return await this.#manager().consumers.info(this.#options.stream, name);
    } catch (error) {
      if (notFound(error)) return undefined;
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS consumer ${name}: ${(error as Error).message}`);
    }
  }

  /** The sequence the next message of the stream will get: where a new binding starts. */
  async #streamEnd(): Promise<number> {
    return await this.#api("reading the stream's end", async (jsm) => {
      const info = await jsm.streams.info(this.#options.stream);
      return info.state.last_seq + 1;
    });
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

  async #api<T>(what: string, fn: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#manager());
    } catch (error) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `${what} failed: ${(error as Error).message}`);
    }
  }

  #manager(): JetStreamManager {
    if (!this.#jsm) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS endpoint ${this.name} is not started`);
    }
    return this.#jsm;
  }

  #client(): JetStreamClient {
    if (!this.#js) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `NATS endpoint ${this.name} is not started`);
    }
    return this.#js;
  }
}
