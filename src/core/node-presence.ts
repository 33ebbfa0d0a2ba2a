/**
 * This node as the others sharing its store see it (docs/operations.md, Admin API and Drain):
 * its announcement at every lease renewal (SessionStore.announce), which also takes the signals
 * other nodes' admin APIs queued for it, and its drain, which refuses new connections and
 * closes the live ones in waves. Owns whether the node is draining and the announcement under
 * way.
 */
import type { ClientConnection } from "./client-connection.ts";
import type { ConnectionRegistry } from "./connection-registry.ts";
import { CloseCode, GatewayError } from "./errors.ts";
import type { HubMetrics } from "./hub-metrics.ts";
import type { HubOptions } from "./hub-options.ts";
import type { NodeSignal } from "./session.ts";

/** What the presence needs of the hub's options (see HubOptions: `lease`, `node`). */
export type PresenceOptions = Pick<
  HubOptions,
  "store" | "scheduler" | "logger" | "nodeId" | "lease" | "node"
>;

export class NodePresence {
  /** Draining: new connections are refused while the live ones are closed in waves. */
  #draining = false;
  #announcing?: Promise<void>;

  private readonly options: PresenceOptions;
  private readonly connections: ConnectionRegistry<ClientConnection>;
  private readonly metrics: HubMetrics;
  /** Acts on a signal another node sent for a client of this one (Operations.signalled). */
  private readonly signalled: (signal: NodeSignal) => Promise<void>;
  /** The hub's disconnect: the session marked disconnected, its consumers suspended. */
  private readonly disconnect: (conn: ClientConnection) => Promise<void>;
  // Fields assigned by hand, not as parameter properties: Node's type stripping has none.
  constructor(
    options: PresenceOptions,
    connections: ConnectionRegistry<ClientConnection>,
    metrics: HubMetrics,
    signalled: (signal: NodeSignal) => Promise<void>,
    disconnect: (conn: ClientConnection) => Promise<void>,
  ) {
    this.options = options;
    this.connections = connections;
    this.metrics = metrics;
    this.signalled = signalled;
    this.disconnect = disconnect;
  }

  /**
   * Tells the nodes sharing the store that this one is alive (HubOptions.node), until a lease
   * from now, and acts on the signals the admin API sent it meanwhile. Store failures are logged.
   */
  announce(): Promise<void> {
    const { node, store, scheduler, nodeId, lease, logger } = this.options;
    if (!node) return Promise.resolve();
    this.#announcing ??= (async () => {
      const now = scheduler.now();
      const record = {
        id: nodeId,
        ...node,
        connected: this.connections.size,
        draining: this.#draining,
        seenAt: now,
        ...this.metrics.totals(),
      };
      const signals = await store.announce(record, now + lease);
      for (const signal of signals) await this.signalled(signal);
    })().catch((error) =>
      logger.warn(`[Admin] Announcing node ${nodeId} failed: ${GatewayError.from(error).message}`)
    ).finally(() => (this.#announcing = undefined));
    return this.#announcing;
  }

  /** Whether this node is draining (refusing new connections; see `drain`). */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Drains this node: new connections are refused (UPSTREAM_UNAVAILABLE) from now on, and the
   * live ones are closed with 1001 in `waves` waves spread over `duration` ms, the first after
   * one wave's interval, so their clients resume on other nodes without a herd. Resolves once
   * the last wave closed (the caller then shuts down).
   */
  async drain(duration: number, waves: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const { scheduler, logger } = this.options;
    logger.info(`[Server] Draining: ${this.connections.size} connections close over ${duration} ms`);
    void this.announce();
    const interval = duration / waves;
    for (let wave = 0; wave < waves; wave++) {
      await scheduler.sleep(interval);
      const live = this.connections.all();
      // An even share of what is left; the last wave takes the rest.
      const count = Math.round(live.length / (waves - wave));
      const closing = live.slice(0, count);
      for (const conn of closing) conn.closeSink(CloseCode.GOING_AWAY, "server draining");
      await Promise.all(closing.map((conn) => this.disconnect(conn)));
      logger.debug(`[Server] Drain wave ${wave + 1}/${waves}: ${closing.length} connections closed`);
    }
  }
}
