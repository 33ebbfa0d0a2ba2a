/**
 * The Kafka publish path (1:N): one kafkajs producer shared by every client of an endpoint.
 *
 * kafkajs does not keep concurrent sends in order, so one key's messages (one client's, or one
 * binding param value's) go through a lane: while a send of that key is in flight, the next ones
 * wait, and leave together in one request when it returns. Each caller still gets its own
 * offset (the batch's base offset plus its place in the batch).
 *
 * A publish has `publishTimeout` from the moment it arrives. One still waiting in its lane then
 * is withdrawn: never sent, so the caller may retry it safely (UPSTREAM_UNAVAILABLE). One already
 * handed to kafkajs cannot be called back: the caller learns that it may or may not arrive
 * (OUTCOME_UNKNOWN). Lanes are bounded, so a broker that stops answering costs bounded memory.
 */
import type { Buffer } from "node:buffer";
import type { Producer } from "kafkajs";
import { GatewayError } from "../../core/errors.ts";
import type { Scheduler, TimerId } from "../../core/scheduler.ts";

export interface Ack {
  partition: number;
  offset: string;
}

export interface KeyedProducerOptions {
  /** How long a publish may wait for its ack, in ms, counted from `send`. */
  publishTimeout: number;
  scheduler: Scheduler;
  /** Most publishes waiting in one lane behind its send in flight; past it: RATE_LIMITED. */
  laneLimit: number;
  /** Most publishes held in all lanes, waiting or in flight; past it: UPSTREAM_UNAVAILABLE. */
  totalLimit: number;
}

/** The bounds an endpoint uses: a client far ahead of its broker is told to slow down. */
export const LANE_LIMIT = 1000;
export const TOTAL_LIMIT = 10_000;

interface Pending {
  value: Buffer;
  /** Handed to kafkajs: from then on it cannot be withdrawn. */
  sent: boolean;
  timer: TimerId;
  settle(outcome: { ack: Ack } | { error: unknown }): void;
}

interface Lane {
  topic: string;
  key: string;
  /** Waiting for the send in flight to return. */
  queue: Pending[];
  busy: boolean;
}

export class KeyedProducer {
  #lanes = new Map<string, Lane>();
  /** Publishes waiting or in flight, across lanes. */
  #held = 0;

  readonly producer: Producer;
  readonly options: KeyedProducerOptions;
  constructor(producer: Producer, options: KeyedProducerOptions) {
    this.producer = producer;
    this.options = options;
  }

  /**
   * Sends one message with `key` to `topic`; resolves with its partition and offset once acked.
   * Rejects with RATE_LIMITED or UPSTREAM_UNAVAILABLE at once when a bound is reached, and
   * after `publishTimeout` with UPSTREAM_UNAVAILABLE (withdrawn) or OUTCOME_UNKNOWN (sent).
   * What kafkajs rejects with is passed on as it is.
   */
  send(topic: string, key: string, value: Buffer): Promise<Ack> {
    const { laneLimit, totalLimit } = this.options;
    const laneKey = `${topic}\0${key}`;
    const existing = this.#lanes.get(laneKey);
    if (this.#held >= totalLimit) {
      return Promise.reject(
        new GatewayError(
          "UPSTREAM_UNAVAILABLE",
          `${totalLimit} publishes are waiting for the brokers already`,
        ),
      );
    }
    if (existing && existing.queue.length >= laneLimit) {
      return Promise.reject(
        new GatewayError("RATE_LIMITED", `${laneLimit} publishes with key "${key}" are waiting already`),
      );
    }
    const lane = existing ?? { topic, key, queue: [], busy: false };
    if (!existing) this.#lanes.set(laneKey, lane);
    return new Promise<Ack>((resolve, reject) => {
      this.#held++;
      let done = false;
      const pending: Pending = {
        value,
        sent: false,
        timer: this.options.scheduler.setTimeout(
          () => this.#expire(lane, pending),
          this.options.publishTimeout,
        ),
        settle: (outcome) => {
          if (done) return;
          done = true;
          this.options.scheduler.clear(pending.timer);
          if ("ack" in outcome) resolve(outcome.ack);
          else reject(outcome.error);
        },
      };
      lane.queue.push(pending);
      if (!lane.busy) void this.#drain(laneKey, lane);
    });
  }

  #expire(lane: Lane, pending: Pending): void {
    const ms = this.options.publishTimeout;
    if (pending.sent) {
      // kafkajs may still deliver it (it retries): the caller must not take it for lost.
      pending.settle({
        error: new GatewayError(
          "OUTCOME_UNKNOWN",
          `sent, not confirmed within publish_timeout (${ms} ms); a retry may duplicate it`,
        ),
      });
      return;
    }
    lane.queue.splice(lane.queue.indexOf(pending), 1);
    this.#held--;
    pending.settle({
      error: new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `not sent within publish_timeout (${ms} ms); withdrawn`,
      ),
    });
  }

  async #drain(laneKey: string, lane: Lane): Promise<void> {
    lane.busy = true;
    while (lane.queue.length > 0) {
      const batch = lane.queue.splice(0, lane.queue.length);
      for (const m of batch) m.sent = true;
      try {
        const [ack] = await this.producer.send({
          topic: lane.topic,
          acks: -1,
          timeout: this.options.publishTimeout,
          messages: batch.map((m) => ({ key: lane.key, value: m.value })),
        });
        const base = BigInt(ack.baseOffset ?? "0");
        batch.forEach((m, i) =>
          m.settle({ ack: { partition: ack.partition, offset: (base + BigInt(i)).toString() } })
        );
      } catch (error) {
        for (const m of batch) m.settle({ error });
      }
      this.#held -= batch.length;
    }
    lane.busy = false;
    this.#lanes.delete(laneKey);
  }
}
