/**
 * What the endpoint contract (endpoint-contract.ts) is given and runs with: the harness a plugin
 * author writes for their broker, the recording DeliveryHandler that stands in for the hub, and
 * the waiting and type-checking aids the built-in endpoints' own tests use too. Exported with
 * the contract (`mediation-engine/conformance`).
 */
import assert from "node:assert/strict";
import type { BindableEndpoint, DeliveryHandler, InboundMessage } from "../core/endpoint.ts";
import type { Logger } from "../core/logger.ts";

export interface ContractHarness {
  /**
   * A new, unstarted endpoint instance on the same broker (called again to model a restart),
   * logging to `logger` when one is given.
   */
  make(logger?: Logger): BindableEndpoint;
  /** Publishes `text` to `clientId`'s subscription from outside the gateway. */
  inject(clientId: string, text: string): Promise<void>;
  /** Whether the broker keeps a client's queue across an endpoint restart. */
  durable: boolean;
  /** Binding params for the client (topic templates). */
  params?: Record<string, string>;
  /** Client IDs unique to this run, so reruns never see each other's broker state. */
  clientId(label: string): string;
  close?(): Promise<void>;
  /**
   * A new, unstarted endpoint like `make`'s but for a broker address nothing listens on (e.g. a
   * free port), logging to `logger`. Without it the broker-down test checks nothing.
   */
  unreachable?(logger: Logger): BindableEndpoint;
}

/** A handler that records deliveries and can refuse them like a backed-up socket. */
export class RecordingHandler implements DeliveryHandler {
  received = new Map<string, string[]>();
  refusing = new Set<string>();
  /** Payloads whose next delivery throws (once each), like a hub with a bug. */
  throwOnce = new Set<string>();
  /** Payloads whose delivery threw. */
  thrown: string[] = [];
  /** Called after each accepted delivery, with how many that client has had. */
  onDelivered?: (clientId: string, count: number) => void;
  /** Clients with end-to-end acks: their messages are settled only by `ack`, as a hub would. */
  acking = new Set<string>();
  /** Unsettled deliveries of acking clients, in order. */
  pending = new Map<string, Array<() => void>>();
  /** Payloads that came flagged redelivered. */
  redelivered = new Map<string, string[]>();

  deliver(clientId: string, _endpoint: string, message: InboundMessage): boolean {
    if (this.refusing.has(clientId)) return false;
    const text = new TextDecoder().decode(message.payload);
    if (this.throwOnce.delete(text)) {
      this.thrown.push(text);
      throw new Error(`deliver broke on ${text}`);
    }
    const list = this.received.get(clientId) ?? [];
    list.push(text);
    this.received.set(clientId, list);
    if (message.redelivered) {
      this.redelivered.set(clientId, [...(this.redelivered.get(clientId) ?? []), text]);
    }
    if (this.acking.has(clientId)) {
      this.pending.set(clientId, [...(this.pending.get(clientId) ?? []), () => message.settle?.()]);
    } else message.settle?.();
    this.onDelivered?.(clientId, list.length);
    return true;
  }

  /** The client acknowledges its first `count` pending deliveries (settled in order). */
  ack(clientId: string, count: number): void {
    const pending = this.pending.get(clientId) ?? [];
    for (const settle of pending.splice(0, count)) settle();
  }

  of(clientId: string): string[] {
    return this.received.get(clientId) ?? [];
  }
}

/** The keys of `T` that may be left out. */
export type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];

/** `true` only when `A` and `B` are the same type: `const check: Same<A, B> = true` fails to compile otherwise. */
export type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** Waits for real broker I/O until `check` holds (not a timing assertion: it fails only on timeout). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
