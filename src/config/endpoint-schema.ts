/**
 * `endpoints` of config.yaml: one strict entry per registered endpoint type (its definition's keys
 * plus `name`, `type`, `acl`), the definitions' own checks across keys, and the `acl` mapping
 * every entry has.
 */
import * as v from "valibot";
import { closestKey } from "./keys.ts";
import { expected, name, show, strict, text } from "./values.ts";
import type { EndpointRegistry } from "../endpoints/registry.ts";

/** `*`, `subject:<s>`, `role:<r>` (in the `roles` claim), `claim:<name>=<value>`. */
const aclRule = v.pipe(
  v.string(expected('a rule: "*", "subject:<s>", "role:<r>" or "claim:<name>=<value>"')),
  v.regex(
    /^(\*|subject:.+|role:.+|claim:[^=]+=.*)$/,
    expected('a rule: "*", "subject:<s>", "role:<r>" or "claim:<name>=<value>"'),
  ),
);

/**
 * Who may publish to and subscribe to an endpoint, and with which binding params: a param named
 * here must be one of the values of the named claim (`room: rooms` = the token's `rooms` claim).
 * Without an acl an endpoint is open to every client the gateway admits.
 */
export const AclSchema = v.optional(strict({
  publish: v.optional(v.array(aclRule, expected("a list of rules"))),
  subscribe: v.optional(v.array(aclRule, expected("a list of rules"))),
  params: v.optional(v.record(v.string(), text("a claim name"), expected("a mapping of param: claim"))),
}));

/** Who may publish and subscribe to an endpoint, and with which params (src/policy/auth.ts). */
export type AclConfig = v.InferOutput<typeof AclSchema>;

/**
 * An endpoint entry as the engine gets it: `name`, `type`, `acl` (every type has them) and its
 * type's options with every default filled in (EndpointDefinition.options).
 */
export type EndpointConfig = { name: string; type: string; acl?: AclConfig; [key: string]: unknown };

/** One entry of `endpoints`, of any registered type: the definition's keys plus the core ones, strict. */
export function endpointSchema(registry: EndpointRegistry): v.GenericSchema<unknown, EndpointConfig> {
  const types = registry.types;
  const options = registry.definitions.map((d) =>
    strict({ name, type: v.literal(d.type), ...d.options, acl: AclSchema })
  );
  const list = types.length === 1
    ? `"${types[0]}"`
    : `${types.slice(0, -1).map((t) => `"${t}"`).join(", ")} or "${types.at(-1)}"`;
  const entry = v.variant("type", options, (issue) => {
    const close = typeof issue.input === "string" && issue.path ? closestKey(issue.input, types) : undefined;
    return `expected an endpoint of type ${list}, got ${show(issue.input)}${
      close ? ` (did you mean "${close}"?)` : ""
    }`;
  });
  return entry as unknown as v.GenericSchema<unknown, EndpointConfig>;
}

/** Problems of the definitions' own checks across one entry's keys (EndpointDefinition.check). */
export function definitionChecks(registry: EndpointRegistry) {
  return v.rawCheck<EndpointConfig[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    dataset.value.forEach((entry, index) => {
      for (const { key, message } of registry.get(entry.type)?.check?.(entry) ?? []) {
        addIssue({
          message,
          path: [
            { type: "array", origin: "value", input: dataset.value, key: index, value: entry },
            { type: "object", origin: "value", input: entry, key, value: entry[key] },
          ],
        });
      }
    });
  });
}
