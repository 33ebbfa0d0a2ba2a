/**
 * Valibot schemas of the multiplexed WebSocket protocol's client frames (DESIGN.md section 7),
 * and the problems they report, worded for the person who wrote the frame.
 */
import * as v from "valibot";
import type { ClientFrame } from "../core/protocol.ts";

const NAME_MAX = 128;
const ID_MAX = 256;
const PARAM_KEY_MAX = 64;

const name = v.pipe(v.string(), v.minLength(1), v.maxLength(NAME_MAX));
const id = v.pipe(v.string(), v.minLength(1), v.maxLength(ID_MAX));

export const ClientFrameSchema = v.variant("type", [
  v.strictObject({ type: v.literal("publish"), endpoint: name, data: v.unknown(), id: v.optional(id) }),
  v.strictObject({
    type: v.literal("subscribe"),
    endpoint: name,
    params: v.optional(v.record(v.pipe(v.string(), v.maxLength(PARAM_KEY_MAX)), v.string())),
    id: v.optional(id),
  }),
  v.strictObject({ type: v.literal("unsubscribe"), endpoint: name, id: v.optional(id) }),
  v.strictObject({ type: v.literal("ack"), endpoint: name, id }),
  v.strictObject({ type: v.literal("ping") }),
  v.strictObject({ type: v.literal("leave") }),
]);

/** Each frame type's keys, the required ones first: what the problems below are worded from. */
const KEYS: Record<ClientFrame["type"], { required: string[]; optional: string[] }> = {
  publish: { required: ["endpoint", "data"], optional: ["id"] },
  subscribe: { required: ["endpoint"], optional: ["params", "id"] },
  unsubscribe: { required: ["endpoint"], optional: ["id"] },
  ack: { required: ["endpoint", "id"], optional: [] },
  ping: { required: [], optional: [] },
  leave: { required: [], optional: [] },
};

/**
 * Validates a parsed JSON value as a client frame; returns the frame, or one problem in words and
 * the frame's `id` when it had a usable one (so the error frame can name the request it answers).
 */
export function validateFrame(value: unknown): { frame: ClientFrame } | { problem: string; id?: string } {
  const result = v.safeParse(ClientFrameSchema, value);
  if (result.success) return { frame: result.output as ClientFrame };
  return { problem: problemOf(value), id: idOf(value) };
}

/** The frame's `id` if it is one the protocol accepts, else none. */
function idOf(value: unknown): string | undefined {
  const id = isObject(value) ? value.id : undefined;
  return typeof id === "string" && id.length > 0 && id.length <= ID_MAX ? id : undefined;
}

function problemOf(value: unknown): string {
  if (!isObject(value)) return `a frame is a JSON object with a "type"; got ${kindOf(value)}`;
  const type = value.type;
  const types = Object.keys(KEYS);
  if (typeof type !== "string" || !types.includes(type)) {
    return `"type" must be one of ${list(types, "or")}; got ${
      type === undefined ? "no type" : JSON.stringify(type)
    }`;
  }
  const keys = KEYS[type as ClientFrame["type"]];
  const allowed = [...keys.required, ...keys.optional];
  const takes = allowed.length ? `${type} takes ${list(allowed, "and")}` : `${type} takes nothing else`;
  const unknown = Object.keys(value).filter((key) => key !== "type" && !allowed.includes(key));
  if (unknown.length) return `${takes}; got ${list(unknown.map(quoteKey), "and")}`;
  const missing = keys.required.filter((key) => !(key in value));
  if (missing.length) return `${takes}; ${list(missing, "and")} missing`;
  if (!isName(value.endpoint)) {
    return `"endpoint" must be an endpoint name (a string of 1-${NAME_MAX} characters); got ${
      kindOf(value.endpoint)
    }`;
  }
  if ("id" in value && idOf(value) === undefined) {
    return `"id" must be a string of 1-${ID_MAX} characters; got ${kindOf(value.id)}`;
  }
  if ("params" in value) {
    const params = value.params;
    if (!isObject(params)) return `"params" must be an object of strings; got ${kindOf(params)}`;
    for (const [key, param] of Object.entries(params)) {
      if (key.length > PARAM_KEY_MAX) {
        return `params key ${quoteKey(key)} is over ${PARAM_KEY_MAX} characters`;
      }
      if (typeof param !== "string") return `params.${key} must be a string; got ${kindOf(param)}`;
    }
  }
  return "the frame does not match the protocol";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isName(value: unknown): boolean {
  return typeof value === "string" && value.length > 0 && value.length <= NAME_MAX;
}

/** A short description of a value for a problem: its type, and a string's length rather than its text. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return value.length ? `a string of ${value.length} characters` : "an empty string";
  }
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/** A key as the problem quotes it: cut short, so a problem stays one readable line. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 32 ? `${key.slice(0, 32)}...` : key);
}

function list(items: string[], word: string): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} ${word} ${items.at(-1)}`;
}
