/**
 * A set of endpoint types by name, and the checks a definition passes to join one. The built-in
 * types are listed in builtins.ts; types from outside the repo come from `endpoint_modules:` in
 * config.yaml (config/load.ts) or `createEngine({ endpointTypes })`.
 */
import type { Endpoint } from "../core/endpoint.ts";
import { CORE_KEYS } from "./definition.ts";
import type { EndpointContext, EndpointDefinition } from "./definition.ts";

// deno-lint-ignore no-explicit-any
type AnyDefinition = EndpointDefinition<any>;

const TYPE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** Why `value` is not an endpoint definition, or undefined when it is one. */
export function definitionProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "not an endpoint definition (an object)";
  const d = value as Partial<EndpointDefinition>;
  if (typeof d.type !== "string" || !TYPE_NAME.test(d.type)) {
    return `type: expected 1-32 characters of a-z 0-9 _ - (a letter first), got ${JSON.stringify(d.type)}`;
  }
  if (typeof d.create !== "function") return `${d.type}: create is not a function`;
  if (typeof d.options !== "object" || d.options === null) return `${d.type}: options is not a mapping`;
  const taken = CORE_KEYS.filter((key) => key in d.options!);
  if (taken.length) return `${d.type}: options may not name ${taken.join(", ")} (every endpoint has them)`;
  for (const [key, schema] of Object.entries(d.options)) {
    if (typeof (schema as { "~run"?: unknown })?.["~run"] !== "function") {
      return `${d.type}: options.${key} is not a valibot schema`;
    }
  }
  return undefined;
}

/** A set of endpoint types by name. */
export class EndpointRegistry {
  readonly #types = new Map<string, AnyDefinition>();

  constructor(definitions: Iterable<AnyDefinition> = []) {
    for (const d of definitions) this.register(d);
  }

  /** Adds a type. Throws for a malformed definition or a type name already taken. */
  register(definition: AnyDefinition): this {
    const problem = definitionProblem(definition);
    if (problem) throw new Error(`endpoint type ${problem}`);
    if (this.#types.has(definition.type)) {
      throw new Error(`endpoint type "${definition.type}" is registered twice`);
    }
    this.#types.set(definition.type, definition);
    return this;
  }

  /** A registry with these types and `extra` ones. */
  with(extra: Iterable<AnyDefinition>): EndpointRegistry {
    return new EndpointRegistry([...this.#types.values(), ...extra]);
  }

  get(type: string): AnyDefinition | undefined {
    return this.#types.get(type);
  }

  /** The registered definitions, built-in ones first, each group in the order registered. */
  get definitions(): AnyDefinition[] {
    return [...this.#types.values()];
  }

  get types(): string[] {
    return [...this.#types.keys()];
  }

  /** The endpoint a config entry (the config schema's output) describes, not started yet. */
  create(entry: { name: string; type: string }, ctx: EndpointContext): Endpoint {
    const definition = this.#types.get(entry.type);
    if (!definition) throw new Error(`no endpoint type "${entry.type}" is registered`);
    return definition.create(entry, ctx);
  }
}
