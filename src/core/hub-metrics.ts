/**
 * The hub's metrics: messages in and out per endpoint, errors answered by code, and the gauges
 * of live connections (by transport) and bindings (by endpoint). Every known series is there
 * from the first scrape on, at 0 (src/core/metrics.ts).
 */
import type { ConnectionRegistry, Registered } from "./connection-registry.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import { ERROR_CODES } from "./errors.ts";
import type { Counter, CounterSeries, Metrics } from "./metrics.ts";

/** The transports of the built-in entrypoints (Connection.transport): mediation_connections' labels. */
const TRANSPORTS = ["ws", "ws-raw", "sse"];

export class HubMetrics {
  /** Per endpoint name: the series are kept, as these are bumped per message. */
  readonly messagesIn: (endpoint: string) => CounterSeries;
  readonly messagesOut: (endpoint: string) => CounterSeries;
  readonly errors: Counter;
  readonly #in: Counter;
  readonly #out: Counter;
  readonly #endpoints: EndpointSet;

  constructor(
    m: Metrics,
    endpoints: EndpointSet,
    connections: ConnectionRegistry<Registered & { transport: string }>,
  ) {
    this.#endpoints = endpoints;
    this.#in = m.counter("mediation_messages_in_total", "Messages published by clients");
    this.#out = m.counter("mediation_messages_out_total", "Messages delivered to clients");
    this.messagesIn = this.#in.by("endpoint");
    this.messagesOut = this.#out.by("endpoint");
    this.errors = m.counter("mediation_errors_total", "Errors answered to clients, by code");
    for (const e of endpoints) {
      this.messagesIn(e.name);
      this.messagesOut(e.name);
    }
    for (const code of ERROR_CODES) this.errors.series({ code });
    m.gauge("mediation_connections", "Live client connections on this node", () => {
      const counts = new Map<string, number>(TRANSPORTS.map((t) => [t, 0]));
      for (const c of connections.values()) counts.set(c.transport, (counts.get(c.transport) ?? 0) + 1);
      return [...counts].map(([transport, value]) => ({ labels: { transport }, value }));
    });
    m.gauge(
      "mediation_bindings",
      "Client bindings held by this node, per endpoint",
      () => [...endpoints].map((e) => ({ labels: { endpoint: e.name }, value: e.bindingCount?.() ?? 0 })),
    );
  }

  /** Messages in and out so far (every endpoint), and bindings per endpoint: what the node announces. */
  totals(): { messagesIn: number; messagesOut: number; bindings: Record<string, number> } {
    const sum = (c: Counter) => [...c.values.values()].reduce((total, { value }) => total + value, 0);
    const bindings: Record<string, number> = {};
    for (const e of this.#endpoints) bindings[e.name] = e.bindingCount?.() ?? 0;
    return { messagesIn: sum(this.#in), messagesOut: sum(this.#out), bindings };
  }
}
