/**
 * The memory endpoint: an in-process topic bus with one durable queue per bound client.
 *
 * It is the reference implementation of the LifecycleBinder contract, so the whole session
 * lifecycle runs with no external service: a suspended client's queue keeps filling, resume
 * drains it in order, unbind drops it. The queue plays the broker's part: a message leaves it
 * only once the hub reports it written to the client's connection.
 */
import type {
  BindableEndpoint,
  DeliveryHandler,
  EndpointHealth,
  InboundMessage,
  OutboundMessage,
  Receipt,
} from "../../core/endpoint.ts";
import { GatewayError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { expandTopic } from "../template.ts";
import { MessageQueue } from "./message-queue.ts";

/**
 * The endpoint's settings. `queueLimit` is required: its default is written once, in the config
 * schema (its definition.ts), whose output the factory passes here. So is the logger: a
 * dropped message or a failed delivery must be reported somewhere.
 */
export interface MemoryEndpointOptions {
  name: string;
  /** Template of the topic a client's publishes go to. Default: the endpoint's name. */
  publishTopic?: string;
  /** Template of the topic a bound client receives from. Default: the endpoint's name. */
  subscribeTopic?: string;
  /** Most messages held for one client; past it the oldest is dropped and logged. */
  queueLimit: number;
  /** Most payload bytes held for one client; past it the oldest are dropped. */
  queueBytes: number;
  /** Most payload bytes held for all clients together; past it a client's oldest are dropped. */
  totalBytes: number;
  logger: Logger;
}

interface Binding {
  topic: string;
  /** Messages not yet settled, oldest first: handed over (the first `sent`) or waiting. */
  queue: MessageQueue<Queued>;
  /** Whether messages are handed to the hub; off while suspended or refused. */
  active: boolean;
  /** How many at the head were handed over on this connection and wait for their settle. */
  sent: number;
  /** How many at the head were handed over to an earlier connection: they go as redelivered. */
  redeliver: number;
  /** Next message sequence, so a settle names what it acknowledges. */
  next: number;
  dropped: number;
  /** Dropped since the last resume report. */
  lost: number;
  /** Payload bytes held. */
  bytes: number;
}

interface Queued {
  sequence: number;
  message: InboundMessage;
}

export class MemoryEndpoint implements BindableEndpoint {
  readonly name: string;
  #options: MemoryEndpointOptions;
  #handler?: DeliveryHandler;
  #bindings = new Map<string, Binding>();
  /** Payload bytes held for every client. */
  #bytes = 0;
  #topics = new Map<string, Set<string>>();

  constructor(options: MemoryEndpointOptions) {
    this.name = options.name;
    this.#options = options;
  }

  start(handler: DeliveryHandler): Promise<void> {
    this.#handler = handler;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    for (const binding of this.#bindings.values()) binding.active = false;
    return Promise.resolve();
  }

  publish(clientId: string, message: OutboundMessage, params: Record<string, string>): Promise<Receipt> {
    if (!this.#handler) {
      return Promise.reject(new GatewayError("UPSTREAM_UNAVAILABLE", `endpoint ${this.name} is not started`));
    }
    const topic = expandTopic(this.#options.publishTopic ?? this.name, clientId, params);
    const inbound: InboundMessage = { payload: message.payload, meta: { topic } };
    for (const subscriber of this.#topics.get(topic) ?? []) {
      const binding = this.#bindings.get(subscriber)!;
      const size = inbound.payload.length;
      const { queueLimit, queueBytes, totalBytes } = this.#options;
      if (size > queueBytes || size > totalBytes) {
        this.#lose(subscriber, binding); // larger than a queue may ever hold: lost for this client
        continue;
      }
      // Bounded in count and bytes, per client and in all: the oldest of this client go first.
      while (
        binding.queue.length > 0 &&
        (binding.queue.length >= queueLimit || binding.bytes + size > queueBytes ||
          this.#bytes + size > totalBytes)
      ) this.#dropOldest(subscriber, binding);
      if (this.#bytes + size > totalBytes) {
        this.#lose(subscriber, binding); // the others hold it all: no room for this client
        continue;
      }
      binding.queue.push({ sequence: binding.next++, message: inbound });
      binding.bytes += size;
      this.#bytes += size;
      this.#drain(subscriber, binding);
    }
    return Promise.resolve({ meta: { topic } });
  }

  bindClient(clientId: string, params: Record<string, string>): Promise<void> {
    const topic = expandTopic(this.#options.subscribeTopic ?? this.name, clientId, params);
    const existing = this.#bindings.get(clientId);
    if (existing && existing.topic === topic) return this.#activate(clientId, existing);
    if (existing) this.#remove(clientId, existing);
    const binding: Binding = {
      topic,
      queue: new MessageQueue<Queued>(),
      active: true,
      sent: 0,
      redeliver: 0,
      next: 1,
      dropped: 0,
      lost: 0,
      bytes: 0,
    };
    this.#bindings.set(clientId, binding);
    let subscribers = this.#topics.get(topic);
    if (!subscribers) this.#topics.set(topic, subscribers = new Set());
    subscribers.add(clientId);
    return Promise.resolve();
  }

  /** Offline; what was handed over but not settled goes again, as redelivered, on resume. */
  suspendClient(clientId: string): Promise<void> {
    const binding = this.#bindings.get(clientId);
    if (binding) {
      binding.active = false;
      binding.redeliver = Math.max(binding.redeliver, binding.sent);
      binding.sent = 0;
    }
    return Promise.resolve();
  }

  resumeClient(clientId: string, params: Record<string, string>): Promise<void> {
    const binding = this.#bindings.get(clientId);
    // After a restart the bus is empty: the binding is made again, as bindClient would.
    if (!binding) return this.bindClient(clientId, params);
    return this.#activate(clientId, binding);
  }

  unbindClient(clientId: string, _params?: Record<string, string>): Promise<void> {
    const binding = this.#bindings.get(clientId);
    if (binding) this.#remove(clientId, binding);
    return Promise.resolve();
  }

  health(): Promise<EndpointHealth> {
    return Promise.resolve({ ok: this.#handler !== undefined });
  }

  bindingCount(): number {
    return this.#bindings.size;
  }

  /** Entries kept per client and topic, by map (see Hub.retained). */
  retained(): Record<string, number> {
    return { bindings: this.#bindings.size, topics: this.#topics.size };
  }

  takeLosses(clientId: string): number {
    const binding = this.#bindings.get(clientId);
    const lost = binding?.lost ?? 0;
    if (binding) binding.lost = 0;
    return lost;
  }

  /** Messages not yet settled for `clientId` (waiting, or handed over and unacknowledged). */
  queued(clientId: string): number {
    return this.#bindings.get(clientId)?.queue.length ?? 0;
  }

  #activate(clientId: string, binding: Binding): Promise<void> {
    binding.active = true;
    this.#drain(clientId, binding);
    return Promise.resolve();
  }

  #remove(clientId: string, binding: Binding): void {
    binding.active = false;
    this.#bytes -= binding.bytes;
    binding.bytes = 0;
    this.#bindings.delete(clientId);
    const subscribers = this.#topics.get(binding.topic);
    subscribers?.delete(clientId);
    if (subscribers?.size === 0) this.#topics.delete(binding.topic);
  }

  /**
   * Hands waiting messages over in order until none is left or the hub refuses one. A message
   * leaves the queue when the hub settles it (at once, or on the client's ack).
   */
  #drain(clientId: string, binding: Binding): void {
    while (binding.active && binding.sent < binding.queue.length) {
      const { sequence, message } = binding.queue.at(binding.sent)!;
      const delivery: InboundMessage = {
        payload: message.payload,
        meta: message.meta,
        redelivered: binding.sent < binding.redeliver || undefined,
        settle: () => this.#settle(clientId, binding, sequence),
      };
      binding.sent++;
      if (!this.#deliver(clientId, delivery)) {
        binding.sent--;
        binding.active = false;
        return;
      }
    }
  }

  /** Acknowledged up to `sequence`: those messages leave the queue. */
  #settle(clientId: string, binding: Binding, sequence: number): void {
    if (this.#bindings.get(clientId) !== binding) return;
    while (binding.sent > 0 && binding.queue.peek()!.sequence <= sequence) {
      this.#shift(binding);
      binding.sent--;
      if (binding.redeliver > 0) binding.redeliver--;
    }
  }

  #shift(binding: Binding): void {
    const size = binding.queue.shift()!.message.payload.length;
    binding.bytes -= size;
    this.#bytes -= size;
  }

  /** The queue is full: its oldest message is dropped, counted for the resume report. */
  #dropOldest(clientId: string, binding: Binding): void {
    this.#shift(binding);
    if (binding.sent > 0) binding.sent--;
    if (binding.redeliver > 0) binding.redeliver--;
    this.#lose(clientId, binding);
  }

  #lose(clientId: string, binding: Binding): void {
    binding.lost++;
    if (binding.dropped++ === 0) {
      this.#options.logger.warn(
        `[Memory] Queue of ${clientId} on ${this.name} is full; dropping its oldest messages`,
      );
    }
  }

  /**
   * One hand-over to the hub. An exception is a refusal: #drain runs inside publish, so a throw
   * would fail this publish and, the message staying at the head, every later one to the topic.
   */
  #deliver(clientId: string, message: InboundMessage): boolean {
    try {
      return this.#handler!.deliver(clientId, this.name, message);
    } catch (error) {
      this.#options.logger.error(
        `[Memory] ${this.name}: delivering to ${clientId} failed; held until it resumes`,
        error,
      );
      return false;
    }
  }
}
