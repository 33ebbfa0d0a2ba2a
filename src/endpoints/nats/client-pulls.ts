/**
 * The NATS consume path (1:1): each bound client's pull on its durable consumer, and the
 * per-client lock its lifecycle runs under.
 *
 * A pull hands messages over one at a time, in stream order; a message is acked (the ack's
 * confirmation awaited) only when the hub settles it. A refusal stops the pull. Every (re)start
 * of a pull re-creates the consumer at its ack floor, so what was handed over and not settled
 * comes again first, in order, flagged redelivered: JetStream itself would send it again only
 * after ack_wait, behind newer messages.
 *
 * The endpoint restarts a pull by itself after its consumer went away (deleted, or the server
 * restarted) or after a reconnect, but only onto a consumer it made: one created since by another
 * node (the client resumed there) is left to that node, since two pulls would split the client's
 * messages.
 *
 * About 400 lines, one class: a pull's start, delivery, ack, halt and restart are one state
 * machine over the same `#pulls` entry and the per-client lock; the endpoint (nats-endpoint.ts)
 * and the subject rules (subjects.ts) are apart already.
 */
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type {
  ConsumerInfo,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
} from "@nats-io/jetstream";
import { GatewayError, KeyedMutex } from "../../plugin.ts";
import type { DeliveryHandler, Logger, Scheduler } from "../../plugin.ts";

export interface ClientPullsOptions {
  /** The endpoint's name, for deliveries and log lines. */
  endpoint: string;
  stream: string;
  /** The durable consumer of a gateway client. */
  consumerName(clientId: string): string;
  /** How long the server waits for an ack before handing a message out again, in ms. */
  ackWait: number;
  maxAckPending: number;
  /** A consumer nobody pulls from is deleted by the server after this long, in ms. */
  inactiveThreshold: number;
  /** Longest wait for an ack's confirmation, in ms. */
  ackTimeout: number;
  /** Whether the endpoint's connection is up (a pull is restarted only then). */
  connected(): boolean;
  logger: Logger;
  scheduler: Scheduler;
}

/**
 * Where a pull stands; only a live one hands messages over.
 * - `live`: delivering.
 * - `paused`: a delivery was refused (or threw), or the consumer is another node's: waits for the
 *   hub's resume. A pull paused by a refusal has its messages stopped here; their end is not
 *   a loss (only a live pull's messages ending by themselves are).
 * - `broken`: its consumer went away or could not be pulled from: the endpoint restarts it by
 *   itself (and after a reconnect). A pull that could not be started at all is born broken.
 * - `stopped`: halted here (suspend, unbind, or on the way to a restart): what it still has
 *   buffered is not handed over, and its messages ending is no loss.
 */
type PullState = "live" | "paused" | "broken" | "stopped";

/** One client's pull on its consumer. */
interface Pull {
  subject: string;
  params: Record<string, string>;
  messages?: ConsumerMessages;
  state: PullState;
  /** Stream sequences up to this one may have reached the client before: flagged redelivered. */
  redeliverBelow: number;
  /** Ack confirmations in flight: stopping waits for them, so a restart sees the acks. */
  acks: Set<Promise<void>>;
  /**
   * The description the consumer it pulls from was created with, unique to that creation: one
   * re-created elsewhere has another. (Not the creation time: a restarted server stamps it anew.)
   */
  mark?: string;
}

/** How a pull (re)starts. */
interface StartOptions {
  /** A new binding: a new consumer at the stream's end, whatever one is there. */
  fresh?: boolean;
  /**
   * Started by the endpoint itself (not the hub): only onto a consumer this pull made, and kept
   * being tried while it fails.
   */
  own?: boolean;
}

/** How many messages one pull request asks for. */
const BATCH = 256;
/** How long after a pull broke it is started again, in ms. */
const RETRY_MS = 2000;

const nanos = (ms: number) => ms * 1_000_000;

/** A JetStream "not found" (consumer or stream), as opposed to a failure to ask. */
export const notFound = (error: unknown): boolean =>
  error instanceof Error && /NotFound/.test(error.name) ||
  /not found/i.test(String((error as Error)?.message));

export class ClientPulls {
  #options: ClientPullsOptions;
  #handler?: DeliveryHandler;
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #pulls = new Map<string, Pull>();
  #locks = new KeyedMutex();
  /**
   * Per client, the highest stream sequence handed over by this node: a server that lost its
   * consumer's state (killed before writing it) may hand those out again, and they are flagged.
   */
  #handed = new Map<string, number>();
  /**
   * Per client, the mark of the consumer this node last pulled on. While the stored consumer
   * still has it, no other node has pulled for the client since, so `#handed` says exactly what
   * reached it: the consumer's own `delivered` also counts what was in flight to a pull that
   * stopped (a suspend) and was handed back unseen, which is not "may have arrived".
   */
  #pulledOn = new Map<string, string>();

  constructor(options: ClientPullsOptions) {
    this.#options = options;
  }

  /** The connection's clients and where deliveries go, once the endpoint is connected. */
  attach(js: JetStreamClient, jsm: JetStreamManager, handler: DeliveryHandler): void {
    this.#js = js;
    this.#jsm = jsm;
    this.#handler = handler;
  }

  /** Runs one lifecycle step of `clientId` after its earlier ones. */
  run<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(clientId, fn);
  }

  /** Clients with a pull here, paused and broken ones included. */
  get size(): number {
    return this.#pulls.size;
  }

  clientIds(): string[] {
    return [...this.#pulls.keys()];
  }

  /** Whether the client's pull on `subject` is delivering (bind and resume have nothing to do). */
  isLive(clientId: string, subject: string): boolean {
    const pull = this.#pulls.get(clientId);
    return pull?.state === "live" && pull.subject === subject;
  }

  /** Whether the client has a pull here on `subject`, in whatever state. */
  has(clientId: string, subject: string): boolean {
    return this.#pulls.get(clientId)?.subject === subject;
  }

  /** Stops the client's pull and forgets it (suspend; unbind with `forget`). Call under `run`. */
  async stop(clientId: string, forget = false): Promise<void> {
    const pull = this.#pulls.get(clientId);
    this.#pulls.delete(clientId);
    if (forget) {
      this.#handed.delete(clientId);
      this.#pulledOn.delete(clientId);
    }
    if (pull) await this.#halt(pull);
  }

  /**
   * (Re)starts the client's pull: the consumer re-created at its ack floor, or a new one at the
   * stream's end when there is none, it is on another subject, or `fresh`. Call under `run`.
   * Rejects with UPSTREAM_UNAVAILABLE; an `own` start that failed is tried again later.
   */
  async start(
    clientId: string,
    subject: string,
    params: Record<string, string>,
    options: StartOptions = {},
  ): Promise<void> {
    const old = this.#pulls.get(clientId);
    /** How the old pull stood before it was halted: a broken one stays broken if this start fails. */
    const was = old?.state;
    if (old) await this.#halt(old);
    const name = this.#options.consumerName(clientId);
    try {
      const info = await this.#info(name);
      if (options.own && info && info.config.description !== old?.mark) {
        // Made since by the node the client went to: left to it until the hub resumes it here.
        if (old) old.state = "paused";
        this.#options.logger.warn(
          `[NATS] ${this.#options.endpoint}: ${name} was re-created elsewhere; left to it until ${clientId} resumes here`,
        );
        return;
      }
      let start: number;
      let redeliverBelow = 0;
      if (info && !options.fresh && info.config.filter_subject === subject) {
        // Settles come in delivery order, so everything past the floor is unsettled (or new).
        start = info.ack_floor.consumer_seq > 0
          ? info.ack_floor.stream_seq + 1
          : info.config.opt_start_seq ?? info.delivered.stream_seq + 1;
        const handed = this.#handed.get(clientId) ?? 0;
        redeliverBelow = info.config.description === this.#pulledOn.get(clientId)
          ? handed
          : Math.max(info.delivered.stream_seq, handed);
      } else {
        start = (await this.#manager().streams.info(this.#options.stream)).state.last_seq + 1;
        this.#handed.delete(clientId);
      }
      if (info) await this.#manager().consumers.delete(this.#options.stream, name).catch(ignoreNotFound);
      const mark = `${this.#options.endpoint} gateway consumer ${crypto.randomUUID()}`;
      await this.#manager().consumers.add(this.#options.stream, {
        durable_name: name,
        description: mark,
        filter_subject: subject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
        ack_wait: nanos(this.#options.ackWait),
        max_ack_pending: this.#options.maxAckPending,
        inactive_threshold: nanos(this.#options.inactiveThreshold),
      });
      const pull: Pull = { subject, params, state: "live", redeliverBelow, acks: new Set(), mark };
      this.#pulls.set(clientId, pull);
      this.#pulledOn.set(clientId, mark);
      await this.#consume(clientId, name, pull);
    } catch (error) {
      if (options.own) {
        this.#pulls.set(clientId, { ...brokenPull(subject, params), mark: old?.mark });
        this.#retryLater(clientId);
      } else if (old && this.#pulls.get(clientId) === old) {
        // The hub's next resume tries again; one broken before is still restarted by the endpoint too.
        old.state = was === "broken" ? "broken" : "paused";
      }
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `NATS consumer for ${clientId} failed: ${(error as Error).message}`,
      );
    }
  }

  /** Every pull that is not waiting for the hub starts again (after a reconnect). */
  restartAll(): void {
    for (const [clientId, pull] of this.#pulls) {
      if (pull.state === "paused") continue;
      this.run(clientId, async () => {
        if (this.#pulls.get(clientId) !== pull) return;
        await this.start(clientId, pull.subject, pull.params, { own: true });
      }).catch((e) =>
        this.#options.logger.warn(
          `[NATS] ${this.#options.endpoint}: pulling for ${clientId} again failed: ${(e as Error).message}`,
        )
      );
    }
  }

  /** Tells the hub every pulling client's consumer dropped (it checks who owns each session). */
  reportDropped(): void {
    for (const clientId of this.#pulls.keys()) this.#reportDropped(clientId);
  }

  /** Starts handing the consumer's messages over, one at a time, in order. */
  async #consume(clientId: string, name: string, pull: Pull): Promise<void> {
    const consumer = await this.#client().consumers.get(this.#options.stream, name);
    const messages = await consumer.consume({
      max_messages: Math.min(BATCH, this.#options.maxAckPending),
      // A consumer deleted from under the pull (another node resumed the client) ends it.
      abort_on_missing_resource: true,
      callback: (m) => this.#deliver(clientId, pull, m),
    });
    pull.messages = messages;
    void messages.closed().then((error) => this.#lost(clientId, pull, error));
  }

  #deliver(clientId: string, pull: Pull, m: JsMsg): void {
    if (pull.state !== "live" || this.#pulls.get(clientId) !== pull) {
      // Not for this pull any more: handed back at once (not held until ack_wait, 5 minutes),
      // so it goes to the pull that took over (a request of this one that reached the consumer
      // another node re-created under the same name) or, with none, waits at the ack floor for
      // the next start; it comes before anything newer either way.
      m.nak();
      return;
    }
    const seq = m.info.streamSequence;
    const handed = this.#handed.get(clientId) ?? 0;
    let settled = false;
    let written = false;
    try {
      written = this.#handler?.deliver(clientId, this.#options.endpoint, {
        payload: m.data,
        meta: { subject: m.subject, stream: m.info.stream, seq },
        redelivered: m.redelivered || seq <= pull.redeliverBelow || seq <= handed || undefined,
        settle: () => {
          if (settled) return;
          settled = true;
          this.#ack(pull, m);
        },
      }) ?? false;
    } catch (error) {
      this.#options.logger.error(
        `[NATS] ${this.#options.endpoint}: delivering to ${clientId} failed; kept by the broker until resume`,
        error,
      );
    }
    if (!written) {
      // Handed back at once, as above: refused here may mean the client is on another node now,
      // whose pull should have it without waiting for ack_wait.
      m.nak();
      pull.state = "paused";
      pull.messages?.stop();
    } else if (seq > handed) this.#handed.set(clientId, seq);
  }

  /** Acks and waits for the server's confirmation, so a later start reads an ack floor that has it. */
  #ack(pull: Pull, m: JsMsg): void {
    const { endpoint, logger, ackTimeout } = this.#options;
    const confirmed: Promise<void> = m.ackAck({ timeout: ackTimeout }).then(
      (ok) => {
        if (!ok) logger.debug(`[NATS] ${endpoint}: ack of ${m.subject} #${m.seq} not confirmed`);
      },
      (e) => logger.debug(`[NATS] ${endpoint}: ack of ${m.subject} #${m.seq}: ${e.message}`),
    ).finally(() => pull.acks.delete(confirmed));
    pull.acks.add(confirmed);
  }

  /** Stops pulling; the acks already sent are confirmed first. */
  async #halt(pull: Pull): Promise<void> {
    pull.state = "stopped";
    pull.messages?.stop();
    await Promise.allSettled([...pull.acks]);
  }

  /**
   * The pull ended without being stopped here: its consumer was deleted (another node resumed
   * the client, or an operator), or looked missing for a moment (a server restart). The hub
   * checks who owns the session and suspends the client here if another node does; a pull
   * still here a little later starts again, onto its own consumer or a new one.
   */
  #lost(clientId: string, pull: Pull, error: void | Error): void {
    // Only a live pull ends by itself: a paused one was stopped here (a refused delivery) and
    // waits for the hub's resume, a stopped or broken one is handled already.
    if (pull.state !== "live" || this.#pulls.get(clientId) !== pull) return;
    pull.state = "broken";
    this.#options.logger.warn(
      `[NATS] ${this.#options.endpoint}: the consumer of ${clientId} went away (${
        error?.message ?? "closed"
      })`,
    );
    this.#reportDropped(clientId);
    this.#retryLater(clientId);
  }

  #retryLater(clientId: string): void {
    this.#options.scheduler.setTimeout(() => {
      // While the connection is down the reconnect starts every pull again.
      if (!this.#options.connected()) return;
      this.run(clientId, async () => {
        const pull = this.#pulls.get(clientId);
        if (pull?.state === "broken") await this.start(clientId, pull.subject, pull.params, { own: true });
      }).catch((e) =>
        this.#options.logger.warn(
          `[NATS] ${this.#options.endpoint}: pulling for ${clientId} again failed: ${(e as Error).message}`,
        )
      );
    }, RETRY_MS);
  }

  #reportDropped(clientId: string): void {
    try {
      this.#handler?.consumerDropped?.(clientId, this.#options.endpoint);
    } catch (e) {
      this.#options.logger.error(
        `[NATS] ${this.#options.endpoint}: reporting the dropped consumer of ${clientId} failed`,
        e,
      );
    }
  }

  async #info(name: string): Promise<ConsumerInfo | undefined> {
    try {
      return await this.#manager().consumers.info(this.#options.stream, name);
    } catch (error) {
      if (notFound(error)) return undefined;
      throw error;
    }
  }

  #manager(): JetStreamManager {
    if (!this.#jsm) throw new GatewayError("UPSTREAM_UNAVAILABLE", "the NATS endpoint is not started");
    return this.#jsm;
  }

  #client(): JetStreamClient {
    if (!this.#js) throw new GatewayError("UPSTREAM_UNAVAILABLE", "the NATS endpoint is not started");
    return this.#js;
  }
}

const brokenPull = (subject: string, params: Record<string, string>): Pull => ({
  subject,
  params,
  state: "broken",
  redeliverBelow: 0,
  acks: new Set(),
});

const ignoreNotFound = (error: unknown) => notFound(error) ? undefined : Promise.reject(error);
