/**
 * The built-in endpoint types, in one list: a new type in the repo is one folder under
 * `src/endpoints/` and one line here. Imported, not found by scanning folders, so a bundler and a
 * single-executable build (`deno compile`, `bun build --compile`) see every type.
 */
import { EndpointRegistry } from "./registry.ts";
import memory from "./memory/definition.ts";
import kafka from "./kafka/definition.ts";
import mqtt from "./mqtt/definition.ts";
import nats from "./nats/definition.ts";

/** The built-in endpoint types, memory first (the embedded default). */
export const builtinEndpointTypes: EndpointRegistry = new EndpointRegistry([memory, kafka, mqtt, nats]);
