/**
 * The live connections of this node, one per client ID, and the per-client lock every lifecycle
 * step of that client runs under (connect, open, bind, disconnect, expiry), so on one node they
 * never interleave. The hub's broadcast looks connections up here (centrifuge's `hub.go`).
 */
import type { ConnectionState } from "./connection.ts";
import { GatewayError } from "./errors.ts";
import { KeyedMutex } from "./mutex.ts";

/** What the registry needs of a connection. */
export interface Registered {
  readonly clientId: string;
  readonly state: ConnectionState;
}

/** A closed or superseded connection acts no more: its session belongs to someone else. */
export function requireLive(conn: Registered): void {
  if (conn.state === "closed") throw new GatewayError("FORBIDDEN", "connection is closed");
}

export class ConnectionRegistry<C extends Registered> {
  #live = new Map<string, C>();
  #locks = new KeyedMutex();

  /** The live connection of `clientId` on this node. */
  get(clientId: string): C | undefined {
    return this.#live.get(clientId);
  }

  /** Makes `conn` its client's live connection; returns the one it took over, if any. */
  add(conn: C): C | undefined {
    const older = this.#live.get(conn.clientId);
    this.#live.set(conn.clientId, conn);
    return older;
  }

  /** Removes `conn` if it is still its client's live connection (a newer one stays). */
  remove(conn: C): void {
    if (this.#live.get(conn.clientId) === conn) this.#live.delete(conn.clientId);
  }

  /** Whether `conn` is its client's live connection here. */
  holds(conn: C): boolean {
    return this.#live.get(conn.clientId) === conn;
  }

  /**
   * Under the client's lock: `conn` is open or pending and still holds the session on this node.
   * Throws otherwise: FORBIDDEN for a closed connection, TAKEN_OVER for a superseded one (its session is someone else's).
   */
  requireOwner(conn: C): void {
    requireLive(conn);
    if (!this.holds(conn)) {
      throw new GatewayError("TAKEN_OVER", "session was taken over by a newer connection");
    }
  }

  /** Runs `fn` under `clientId`'s lock, after every earlier step of that client settled. */
  run<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(clientId, fn);
  }

  /** A snapshot of the live connections. */
  all(): C[] {
    return [...this.#live.values()];
  }

  values(): IterableIterator<C> {
    return this.#live.values();
  }

  /** Live connections. */
  get size(): number {
    return this.#live.size;
  }

  /** Client locks held or waited for. */
  get lockCount(): number {
    return this.#locks.size;
  }
}
