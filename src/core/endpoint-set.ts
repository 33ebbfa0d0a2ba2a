/**
 * The configured endpoints by name: the one place that answers UNKNOWN_ENDPOINT, and the one
 * place that tells an endpoint with per-client resources (a LifecycleBinder) from one without.
 */
import { isBindable } from "./endpoint.ts";
import type { BindableEndpoint, Endpoint } from "./endpoint.ts";
import { GatewayError } from "./errors.ts";

export class EndpointSet {
  readonly #byName: ReadonlyMap<string, Endpoint>;

  constructor(endpoints: Iterable<Endpoint>) {
    this.#byName = new Map([...endpoints].map((e) => [e.name, e]));
  }

  /**
   * The endpoint named `name`; throws UNKNOWN_ENDPOINT (the one place that says so).
   *
   * @example
   * const chat = endpoints.get("chat"); // throws GatewayError("UNKNOWN_ENDPOINT") if not configured
   */
  get(name: string): Endpoint {
    const endpoint = this.#byName.get(name);
    if (!endpoint) throw new GatewayError("UNKNOWN_ENDPOINT", `no endpoint named "${name}"`);
    return endpoint;
  }

  /** The endpoint named `name`, or undefined (for a session record naming one since removed). */
  find(name: string): Endpoint | undefined {
    return this.#byName.get(name);
  }

  /** The endpoint named `name` if it exists and keeps per-client resources, else undefined. */
  bindable(name: string): BindableEndpoint | undefined {
    const endpoint = this.#byName.get(name);
    return endpoint && isBindable(endpoint) ? endpoint : undefined;
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Names of the configured endpoints, in configuration order. */
  get names(): string[] {
    return [...this.#byName.keys()];
  }

  /** The endpoints, in configuration order. */
  values(): IterableIterator<Endpoint> {
    return this.#byName.values();
  }

  [Symbol.iterator](): IterableIterator<Endpoint> {
    return this.#byName.values();
  }
}
