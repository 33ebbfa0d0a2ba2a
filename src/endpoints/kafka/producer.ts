/**
 * The Kafka publish path (1:N): one kafkajs producer shared by every client of an endpoint.
 *
 * kafkajs does not keep concurrent sends in order, so one key's messages (one client's, or one
 * binding param value's) go through a lane: while a send of that key is in flight, the next ones
 * queue, and leave together in one request when it returns. Each caller still gets its own
 * offset (the batch's base offset plus its place in the batch).
 */
import type { Buffer } from "node:buffer";
import type { Producer } from "kafkajs";

export interface Ack {
  partition: number;
  offset: string;
}

interface Lane {
  topic: string;
  key: string;
  queue: Array<{ value: Buffer; resolve: (ack: Ack) => void; reject: (error: unknown) => void }>;
  busy: boolean;
}

export class KeyedProducer {
  #lanes = new Map<string, Lane>();

  constructor(readonly producer: Producer, readonly ackTimeout: number) {}

  /** Sends one message with `key` to `topic`; resolves with its partition and offset once acked. */
  send(topic: string, key: string, value: Buffer): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      const laneKey = `${topic}\0${key}`;
      let lane = this.#lanes.get(laneKey);
      if (!lane) this.#lanes.set(laneKey, lane = { topic, key, queue: [], busy: false });
      lane.queue.push({ value, resolve, reject });
      if (!lane.busy) void this.#drain(laneKey, lane);
    });
  }

  async #drain(laneKey: string, lane: Lane): Promise<void> {
    lane.busy = true;
    while (lane.queue.length > 0) {
      const batch = lane.queue.splice(0, lane.queue.length);
      try {
        const [ack] = await this.producer.send({
          topic: lane.topic,
          acks: -1,
          timeout: this.ackTimeout,
          messages: batch.map((m) => ({ key: lane.key, value: m.value })),
        });
        const base = BigInt(ack.baseOffset ?? "0");
        batch.forEach((m, i) =>
          m.resolve({ partition: ack.partition, offset: (base + BigInt(i)).toString() })
        );
      } catch (error) {
        for (const m of batch) m.reject(error);
      }
    }
    lane.busy = false;
    this.#lanes.delete(laneKey);
  }
}
