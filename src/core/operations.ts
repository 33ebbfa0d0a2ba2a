/**
 * What an operator does to one client through the admin API (docs/operations.md): look at its
 * connection, disconnect it, end its session, write a message to it. A client live on another
 * node sharing the store is signalled there (SessionStore.signal); that node acts on the signal
 * at its next announcement (`signalled`, called by NodePresence). Holds no state of its own: the
 * connections are the registry's, the bindings the Bindings', the end of a session the Expiry's.
 */
import type { Bindings } from "./bindings.ts";
import type { ClientConnection } from "./client-connection.ts";
import type { ConnectionRegistry } from "./connection-registry.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import { CloseCode } from "./errors.ts";
import type { Expiry } from "./expiry.ts";
import type { HubOptions } from "./hub-options.ts";
import { toBase64 } from "./payload.ts";
import type { PreparedPayload } from "./payload.ts";
import type { Publisher } from "./publisher.ts";
import { heldAt } from "./session.ts";
import type { NodeSignal, Session } from "./session.ts";

/** What the operations need of the hub's options (see HubOptions: `claimTtl`). */
export type OperationOptions = Pick<HubOptions, "store" | "scheduler" | "logger" | "nodeId" | "claimTtl">;

/** The collaborators an operation hands off to. */
export interface Operated {
  bindings: Bindings;
  expiry: Expiry<ClientConnection>;
  publisher: Publisher<ClientConnection>;
  /** The hub's disconnect: the session marked disconnected, its consumers suspended. */
  disconnect: (conn: ClientConnection) => Promise<void>;
  /** Closes a connection's books on this node, touching neither its session nor its consumers. */
  forget: (conn: ClientConnection) => void;
  /** The payload made ready for delivery (prepared once per payload). */
  prepare: (payload: Uint8Array) => PreparedPayload;
}

/** A connection as the admin API shows it. */
export interface ConnectionInfo {
  transport: string;
  acks: boolean;
  state: string;
  endpoints?: string[];
  inFlight: Record<string, number>;
}

export class Operations {
  private readonly options: OperationOptions;
  private readonly endpoints: EndpointSet;
  private readonly connections: ConnectionRegistry<ClientConnection>;
  private readonly to: Operated;
  // Fields assigned by hand, not as parameter properties: Node's type stripping has none.
  constructor(
    options: OperationOptions,
    endpoints: EndpointSet,
    connections: ConnectionRegistry<ClientConnection>,
    to: Operated,
  ) {
    this.options = options;
    this.endpoints = endpoints;
    this.connections = connections;
    this.to = to;
  }

  /** The live connection of `clientId` on this node, as the admin API shows it; undefined if none. */
  connectionInfo(clientId: string): ConnectionInfo | undefined {
    const conn = this.connections.get(clientId);
    if (!conn) return undefined;
    return {
      transport: conn.transport,
      acks: conn.acks,
      state: conn.state,
      ...conn.endpoints ? { endpoints: [...conn.endpoints] } : {},
      inFlight: conn.inFlight(),
    };
  }

  /**
   * The admin API disconnects a client: its connection closes (4000) and its session stays for
   * the window, so the client may resume. A client live on another node is signalled there.
   * Resolves what was done.
   */
  async disconnectClient(
    clientId: string,
  ): Promise<"disconnected" | "signalled" | "not connected" | "no session"> {
    const conn = this.connections.get(clientId);
    if (conn) {
      conn.closeSink(CloseCode.DISCONNECTED, "disconnected by an operator");
      await this.to.disconnect(conn);
      this.options.logger.info(`[Session] Client ${clientId} disconnected by an operator`);
      return "disconnected";
    }
    return await this.#elsewhere(clientId, { type: "disconnect", clientId }) ?? "not connected";
  }

  /**
   * The admin API ends a session: its connection here closes (4404), everything is unbound at
   * the brokers and the session deleted. A session live on another node is signalled there.
   */
  endSession(clientId: string): Promise<"ended" | "signalled" | "no session" | "failed"> {
    return this.connections.run(clientId, async () => {
      const conn = this.connections.get(clientId);
      if (conn) {
        this.to.forget(conn);
        conn.closeSink(CloseCode.SESSION_ENDED, "session ended by an operator");
        await this.to.bindings.suspendAll(conn);
      } else {
        const signalled = await this.#elsewhere(clientId, { type: "end", clientId });
        if (signalled) return signalled;
      }
      const { store, scheduler, claimTtl } = this.options;
      const session = await store.get(clientId);
      if (!session) return "no session";
      // Ended as an expired session is: marked past its deadline (compare-and-set on its epoch, so
      // a client that came back meanwhile wins), then claimed, so the cleanup worker and a
      // reconnecting client (which then gets a fresh session) never unbind it at the same time.
      const now = scheduler.now();
      const past: Session = {
        ...session,
        state: "disconnected",
        disconnectedAt: session.disconnectedAt ?? now,
        reconnectionDeadline: now - 1,
      };
      delete past.nodeId;
      delete past.leaseUntil;
      // One already past its deadline is not written: a write would void a cleanup's claim.
      const expired = session.reconnectionDeadline !== undefined && session.reconnectionDeadline < now;
      const claimed = (expired || await store.update(past, session.epoch)) &&
        await store.claimExpired(clientId, now, claimTtl);
      if (!claimed) return "failed";
      const ended = await this.to.expiry.end(claimed);
      this.to.publisher.forget(clientId);
      this.options.logger.info(
        `[Session] Session of ${clientId} ${ended ? "ended" : "not ended"} by an operator`,
      );
      return ended ? "ended" : "failed";
    });
  }

  /**
   * The admin API writes a message to a client's live connection, as if `endpoint` delivered it
   * (nothing goes through a broker; a client away misses it). A client live on another node is
   * signalled there. Throws UNKNOWN_ENDPOINT.
   */
  async deliverTo(
    clientId: string,
    endpoint: string,
    payload: Uint8Array,
  ): Promise<"delivered" | "not written" | "signalled" | "not connected" | "no session"> {
    this.endpoints.get(endpoint);
    const conn = this.connections.get(clientId);
    if (conn) return conn.deliver(endpoint, { payload }, this.to.prepare) ? "delivered" : "not written";
    const signal = {
      type: "deliver",
      clientId,
      endpoint,
      data: toBase64(payload),
      encoding: "base64",
    } as const;
    return await this.#elsewhere(clientId, signal) ?? "not connected";
  }

  /** A signal from another node's admin API, for a client of this one. */
  async signalled(signal: NodeSignal): Promise<void> {
    const { logger } = this.options;
    logger.info(`[Admin] Signal ${signal.type} for client ${signal.clientId} from another node`);
    if (signal.type === "disconnect") await this.disconnectClient(signal.clientId);
    else if (signal.type === "end") await this.endSession(signal.clientId);
    else {
      const payload = signal.encoding === "base64"
        ? Uint8Array.from(atob(signal.data), (c) => c.charCodeAt(0))
        : new TextEncoder().encode(signal.data);
      await this.deliverTo(signal.clientId, signal.endpoint, payload);
    }
  }

  /** Signals the node holding `clientId`'s live connection, if another holds it. */
  async #elsewhere(clientId: string, signal: NodeSignal): Promise<"signalled" | "no session" | undefined> {
    const { store, scheduler, nodeId } = this.options;
    const session = await store.get(clientId);
    if (!session) return "no session";
    const now = scheduler.now();
    if (!heldAt(session, now) || session.nodeId === undefined || session.nodeId === nodeId) return undefined;
    return await store.signal(session.nodeId, signal, now) ? "signalled" : undefined;
  }
}
