/**
 * What an endpoint type is to the gateway: a definition with its type name, the keys of its config
 * entry (valibot schemas, defaults written there and nowhere else) and a factory. The config
 * schema and the engine are assembled from the registered definitions (registry.ts), so adding a
 * type touches no core file: one folder under `src/endpoints/` whose `definition.ts`
 * default-exports a definition and its line in builtins.ts, or a module named in
 * `endpoint_modules:` of config.yaml, or one passed to `createEngine({ endpointTypes })`.
 */
import type * as v from "valibot";
import type { Endpoint } from "../core/endpoint.ts";
import type { Logger } from "../core/logger.ts";
import type { Scheduler } from "../core/scheduler.ts";

/** What the engine gives every endpoint it makes. */
export interface EndpointContext {
  logger: Logger;
  /** This node's ID: a resource named per node (a producer's client ID) includes it. */
  nodeId: string;
  /** The session reconnection window, in ms: brokers keep client state at least this long. */
  reconnectionWindow: number;
  /** The engine's clock: every timeout of an endpoint runs on it. */
  scheduler: Scheduler;
}

/** Keys every endpoint entry has, owned by the gateway: a definition's `options` cannot name them. */
export const CORE_KEYS = ["name", "type", "acl"] as const;

/** The config entry of an endpoint as its factory gets it: `name` and `type`, and its options' output. */
export type EndpointEntry<TOptions extends v.ObjectEntries> =
  & { name: string; type: string }
  & v.InferOutput<v.ObjectSchema<TOptions, undefined>>;

/** An endpoint type. */
export interface EndpointDefinition<TOptions extends v.ObjectEntries = v.ObjectEntries> {
  /** The `type:` of its config entries: 1-32 characters of `a-z 0-9 _ -`, unique among the registered types. */
  readonly type: string;
  /**
   * The keys of its config entry besides `name`, `type` and `acl`, each a valibot schema whose
   * output the factory gets (`v.optional(schema, default)` for a default: the one place it is
   * written). The entry is strict: an unknown key is refused with the closest known one. Build
   * values with src/config/values.ts so problems read like the rest of the config's.
   */
  readonly options: TOptions;
  /** Checks across keys of one entry, after each key passed its own: one problem line per string (`key: message`). */
  check?(entry: EndpointEntry<TOptions>): Array<{ key: string; message: string }>;
  /** The endpoint an entry describes, not started yet (the engine starts it). */
  create(entry: EndpointEntry<TOptions>, ctx: EndpointContext): Endpoint;
}

/**
 * Types a definition: `options` is checked and the factory's `entry` typed from it.
 *
 * @example
 * export default defineEndpoint({
 *   type: "echo",
 *   options: { prefix: v.optional(text("a prefix"), "echo: ") },
 *   create: (entry, ctx) => new EchoEndpoint(entry.name, entry.prefix, ctx.logger),
 * });
 */
export function defineEndpoint<const TOptions extends v.ObjectEntries>(
  definition: EndpointDefinition<TOptions>,
): EndpointDefinition<TOptions> {
  return definition;
}
