/**
 * A client's bindings to endpoints: bind (on subscribe, or on a first publish), unbind, suspend
 * every consumer when the connection goes, resume them when one opens (permissions checked
 * again). Every change is fenced: under the client's lock, by a connection that still holds
 * the session here, after an epoch-checked store write. Owns the binds under way and the
 * consumers that failed to resume; the bindings themselves are the connection's record.
 */
import type { ClientConnection } from "./client-connection.ts";
import type { ConnectionRegistry } from "./connection-registry.ts";
import { requireLive } from "./connection-registry.ts";
import type { Endpoint } from "./endpoint.ts";
import { isBindable } from "./endpoint.ts";
import type { EndpointSet } from "./endpoint-set.ts";
import { GatewayError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Policy } from "./policy.ts";
import type { Scheduler } from "./scheduler.ts";
import type { SessionStore, Subscription } from "./session.ts";

export interface BindingOptions {
  store: SessionStore;
  scheduler: Scheduler;
  policy: Policy;
  logger: Logger;
}

interface PendingBind {
  params: Record<string, string>;
  done: Promise<void>;
}

export class Bindings {
  /** Binds under way per connection, so publishes that arrive meanwhile keep their order behind them. */
  #binding = new WeakMap<ClientConnection, Map<string, PendingBind>>();
  /** Bound endpoints whose consumer failed to resume at open: a `subscribe` tries again. */
  #unresumed = new WeakMap<ClientConnection, Set<string>>();

  private readonly options: BindingOptions;
  private readonly endpoints: EndpointSet;
  private readonly connections: ConnectionRegistry<ClientConnection>;
  constructor(
    options: BindingOptions,
    endpoints: EndpointSet,
    connections: ConnectionRegistry<ClientConnection>,
  ) {
    this.options = options;
    this.endpoints = endpoints;
    this.connections = connections;
  }

  /** Connection.subscribe: binds, or resumes a consumer that failed to at open. */
  async subscribe(conn: ClientConnection, name: string, params: Record<string, string>): Promise<void> {
    requireLive(conn);
    const endpoint = this.endpoints.get(name);
    this.options.policy.checkSubscribe(conn.clientId, name, params, conn.principal);
    if (!isBindable(endpoint)) {
      throw new GatewayError("BAD_FRAME", `endpoint "${name}" does not deliver to clients`);
    }
    const bound = conn.bound.get(name);
    if (bound && sameParams(bound, params)) {
      if (this.#unresumed.get(conn)?.has(name)) await this.#resume(conn, name);
      return;
    }
    // Other params are judged under the client's lock, as the bind is: an unsubscribe the client
    // sent just before (its frames are handled concurrently) has unbound by then.
    await this.#bind(conn, name, params, true);
  }

  /** The first publish binds the client (it then hears the endpoint), if it may subscribe. */
  async bindOnFirstPublish(conn: ClientConnection, endpoint: Endpoint): Promise<void> {
    const name = endpoint.name;
    if (isBindable(endpoint) && !conn.bound.has(name) && this.#allowed(conn, name, {})) {
      await this.#bind(conn, name, {});
    }
  }

  /**
   * Unbinds now, fenced like a bind: under the client's lock, only if this connection is still
   * the live one here, and only after an epoch-checked store write shows it still owns the
   * session (another node may have taken it over); then the broker state goes, then the record.
   * A stale connection's unsubscribe fails with TAKEN_OVER and touches nothing.
   */
  async unsubscribe(conn: ClientConnection, name: string): Promise<void> {
    requireLive(conn);
    this.endpoints.get(name);
    await this.connections.run(conn.clientId, async () => {
      this.connections.requireOwner(conn);
      const params = conn.bound.get(name);
      const endpoint = this.endpoints.bindable(name);
      if (!params || !endpoint) return;
      const subscription = { endpoint: name, params, boundAt: this.options.scheduler.now() };
      await this.#setSubscription(conn, name, subscription);
      await endpoint.unbindClient(conn.clientId, params);
      conn.recordUnbound(name);
      this.#unresumed.get(conn)?.delete(name);
      await this.#setSubscription(conn, name, undefined);
      this.options.logger.info(
        `[Binding] Removed endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
    });
  }

  /**
   * A connection opens (under the client's lock): every bound consumer it carries resumes, the
   * others and those in `restart` are suspended first; a binding no longer allowed goes, broker
   * state included. Returns what failed.
   */
  async resumeOnOpen(conn: ClientConnection, restart: ReadonlySet<string>): Promise<GatewayError[]> {
    const failures: GatewayError[] = [];
    for (const [name, params] of [...conn.bound]) {
      const endpoint = this.endpoints.bindable(name);
      if (!endpoint) continue;
      try {
        // Permissions are checked again: one revoked while away does not come back with the
        // session. The binding goes, broker state included.
        if (!this.#allowed(conn, name, params)) {
          await this.#setSubscription(conn, name, undefined);
          await endpoint.unbindClient(conn.clientId, params);
          conn.recordUnbound(name);
          failures.push(
            new GatewayError("FORBIDDEN", `no longer allowed to subscribe to "${name}"; unbound`),
          );
          continue;
        }
        // What this connection does not carry stays queued with its broker.
        if (!conn.carries(name) || restart.has(name)) await endpoint.suspendClient(conn.clientId);
        if (conn.carries(name)) await endpoint.resumeClient(conn.clientId, params);
      } catch (error) {
        const e = GatewayError.from(error, "UPSTREAM_UNAVAILABLE");
        this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e);
        if (conn.carries(name)) this.#unresumedOf(conn).add(name);
        failures.push(e);
      }
    }
    return failures;
  }

  /** A consumer refused for back-pressure or the in-flight bound takes deliveries again. */
  resume(conn: ClientConnection, name: string): void {
    this.endpoints.bindable(name)?.resumeClient(conn.clientId, conn.bound.get(name) ?? {}).catch((e) =>
      this.options.logger.error(`[Session] Resume of ${conn.clientId} on ${name} failed`, e)
    );
  }

  /** Takes every consumer of the connection offline; the brokers queue. Failures are logged. */
  async suspendAll(conn: ClientConnection): Promise<void> {
    for (const name of conn.bound.keys()) {
      const endpoint = this.endpoints.bindable(name);
      if (!endpoint) continue;
      try {
        await endpoint.suspendClient(conn.clientId);
      } catch (error) {
        this.options.logger.error(`[Session] Suspend of ${conn.clientId} on ${name} failed`, error);
      }
    }
  }

  /** Resumes a bound endpoint's consumer that failed to at open (its broker was down). */
  #resume(conn: ClientConnection, name: string): Promise<void> {
    return this.connections.run(conn.clientId, async () => {
      this.connections.requireOwner(conn);
      const params = conn.bound.get(name);
      const endpoint = this.endpoints.bindable(name);
      const unresumed = this.#unresumed.get(conn);
      if (!unresumed?.has(name) || !params || !endpoint) return;
      try {
        await endpoint.resumeClient(conn.clientId, params);
      } catch (error) {
        throw GatewayError.from(error, "UPSTREAM_UNAVAILABLE");
      }
      unresumed.delete(name);
    });
  }

  /**
   * Binds once per client-endpoint pair; concurrent callers with the same params share the same
   * bind. One with other params waits for the bind under way, then is judged against its result:
   * with `exact` (a subscribe) a binding with other params is a BAD_FRAME; otherwise (a first
   * publish) any binding will do.
   */
  async #bind(
    conn: ClientConnection,
    name: string,
    params: Record<string, string>,
    exact = false,
  ): Promise<void> {
    let binding = this.#binding.get(conn);
    const pending = binding?.get(name);
    if (pending && sameParams(pending.params, params)) return await pending.done;
    if (pending) {
      // That bind's error is its own caller's to answer; this one is judged by what it left bound.
      await pending.done.catch(() => {});
      if (this.#boundAlready(conn, name, params, exact)) return;
      return await this.#bind(conn, name, params, exact);
    }
    const bind = this.connections.run(conn.clientId, async () => {
      this.connections.requireOwner(conn);
      if (this.#boundAlready(conn, name, params, exact)) return;
      const endpoint = this.endpoints.bindable(name);
      if (!endpoint) return;
      // Debug, not info: the endpoint logs the bind it made at info ("[MQTT] Client ... bound"),
      // and a second console line per bind cost more than the rest of the hub's bind work.
      this.options.logger.debug(
        `[Binding] Creating endpoint binding: client=${conn.clientId} endpoint=${name}`,
      );
      // Recorded before binding (an epoch-checked write, so only the session's owner gets past
      // it): a crash in between leaves a record whose (idempotent) unbind cleans up; the other
      // order would leak broker resources nothing knows about.
      await this.#setSubscription(conn, name, {
        endpoint: name,
        params,
        boundAt: this.options.scheduler.now(),
      });
      await endpoint.bindClient(conn.clientId, params);
      conn.recordBound(name, params);
    }).finally(() => {
      const binds = this.#binding.get(conn);
      if (binds?.get(name)?.done === bind) binds.delete(name);
    });
    if (!binding) this.#binding.set(conn, binding = new Map());
    binding.set(name, { params, done: bind });
    return await bind;
  }

  /** Whether `conn` is bound to `name` already; with `exact`, other params are a BAD_FRAME. */
  #boundAlready(
    conn: ClientConnection,
    name: string,
    params: Record<string, string>,
    exact: boolean,
  ): boolean {
    const bound = conn.bound.get(name);
    if (bound && exact && !sameParams(bound, params)) {
      throw new GatewayError("BAD_FRAME", `already bound to "${name}" with other params; unsubscribe first`);
    }
    return bound !== undefined;
  }

  async #setSubscription(
    conn: ClientConnection,
    name: string,
    subscription: Subscription | undefined,
  ): Promise<void> {
    if (!await this.options.store.setSubscription(conn.clientId, conn.epoch, name, subscription)) {
      throw new GatewayError("TAKEN_OVER", "session was taken over by a newer connection");
    }
  }

  /** Whether the connection's principal may subscribe to `name` with `params`. */
  #allowed(conn: ClientConnection, name: string, params: Record<string, string>): boolean {
    try {
      this.options.policy.checkSubscribe(conn.clientId, name, params, conn.principal);
      return true;
    } catch {
      return false;
    }
  }

  #unresumedOf(conn: ClientConnection): Set<string> {
    let set = this.#unresumed.get(conn);
    if (!set) this.#unresumed.set(conn, set = new Set());
    return set;
  }
}

function sameParams(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
