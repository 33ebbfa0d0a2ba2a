/**
 * The fuzz suite's oracle: what the gateway must answer to each hostile frame (fuzz-frames.ts
 * makes them), from the wire protocol alone (docs/wire-protocol.md).
 *
 * The oracle is written against the protocol, not imported from src/: a frame over the size
 * limit is TOO_LARGE, text that is not JSON or is nested too deep is BAD_FRAME, a frame that is not
 * exactly one of the five client frames (strict: no extra keys, right types, lengths) is BAD_FRAME,
 * with the frame's id when the frame is a JSON object whose `id` is itself valid (a string of 1-256
 * characters) and without one otherwise; a valid frame that fails (unknown endpoint,
 * payload too large, params other than the binding's, a publish its binding cannot route, an ack
 * the connection cannot take) gets its error with its id, and one that works its receipt (or
 * pong). Frames whose answer depends on what the gateway was doing (an unsubscribe of a bound
 * endpoint, which changes later answers; an ack that could name a real delivery; a success without
 * an id, which is not answered) are never generated, so every frame gets exactly one answer that is
 * known in advance.
 *
 * Two lenient readings of the gateway's validation are part of the protocol here (they are safe):
 * `params` keys `__proto__`, `constructor` and `prototype` are dropped unread, and an array is
 * taken as params by its indices (`[]` is `{}`).
 */

export interface FuzzLimits {
  /** `policy.max_message_bytes`: the largest payload; a frame may be 1 KiB more. */
  maxMessageBytes: number;
  /** `policy.max_json_depth`: the deepest a frame's `data` may be nested. */
  maxJsonDepth: number;
}

/** The envelope a frame may add to a full-size payload (docs: "a WebSocket frame may be 1 KiB more"). */
export const ENVELOPE_BYTES = 1024;

/** What the attacker's connection is bound to before the fuzzing starts (and stays bound to). */
export interface AttackerContext {
  clientId: string;
  /** Opened with `ack=1`. */
  acks: boolean;
  /** Endpoint name to binding params, for every endpoint the connection is bound to. */
  bound: Record<string, Record<string, string>>;
  /** Every endpoint the gateway has. */
  endpoints: readonly string[];
}

export type Answer =
  | { type: "pong" }
  | { type: "receipt"; id: string }
  | { type: "error"; code: string; id?: string };

export interface FuzzFrame {
  /** Which generator made it (for the per-kind figures). */
  kind: string;
  /** What is sent: a text frame, or a binary one. */
  wire: string | Uint8Array;
  /** The one answer the gateway must send. */
  answer: Answer;
  /** A publish that goes through: the endpoint and the JSON text of the `data` it delivers. */
  delivery?: { endpoint: string; json: string };
}

export type Judgement = {
  answer: Answer;
  delivery?: { endpoint: string; json: string };
  /** A publish with an id to a known endpoint: its `endpoint:id` is remembered for dedupe. */
  dedupe?: string;
} | { skip: string };

/** One string per answer, for comparing what was expected with what came as multisets. */
export function answerKey(answer: Answer): string {
  switch (answer.type) {
    case "pong":
      return "pong";
    case "receipt":
      return `receipt ${JSON.stringify(answer.id)}`;
    case "error":
      return `error ${answer.code} ${answer.id === undefined ? "-" : JSON.stringify(answer.id)}`;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RESERVED_KEYS = new Set(["__proto__", "prototype", "constructor"]);
const FRAME_KEYS: Record<string, { required: string[]; optional: string[] }> = {
  publish: { required: ["type", "endpoint", "data"], optional: ["id"] },
  subscribe: { required: ["type", "endpoint"], optional: ["params", "id"] },
  unsubscribe: { required: ["type", "endpoint"], optional: ["id"] },
  ack: { required: ["type", "endpoint", "id"], optional: [] },
  ping: { required: ["type"], optional: [] },
  // `leave` is never generated: it ends the attacker's connection (tests/conformance/leave.test.ts).
};

/** The text a runtime's WebSocket client puts on the wire: lone surrogates become U+FFFD. */
export function onTheWire(text: string): string {
  return decoder.decode(encoder.encode(text));
}

/** Deepest nesting of arrays and objects in `text`, reading strings as JSON does (valid or not). */
export function nestingDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const isName = (v: unknown) => typeof v === "string" && v.length >= 1 && v.length <= 128;
const isId = (v: unknown) => typeof v === "string" && v.length >= 1 && v.length <= 256;
const SAFE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Binding params as the gateway takes them: an object (an array counts, by its indices) of
 * strings under keys of at most 64 characters; `__proto__`, `constructor` and `prototype` keys
 * are dropped unread, so they can neither pollute nor fail anything. Undefined: not params.
 */
export function bindingParams(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  const params: Record<string, string> = {};
  for (const key of Object.keys(value)) {
    if (RESERVED_KEYS.has(key)) continue;
    const v = value[key];
    if (key.length > 64 || typeof v !== "string") return undefined;
    params[key] = v;
  }
  return params;
}

const sameParams = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.keys(a).every((k) => hasOwn(b, k) && a[k] === b[k]);

/** Whether a topic template expands with these params, as the memory endpoints check it. */
function routable(template: string, clientId: string, params: Record<string, string>): boolean {
  for (const [, name] of template.matchAll(/\{([A-Za-z0-9_]+)\}/g)) {
    const value = name === "clientId" ? clientId : hasOwn(params, name) ? params[name] : undefined;
    if (value === undefined || !SAFE_NAME.test(value)) return false;
  }
  return true;
}

/** Publish topic templates of the test config's endpoints (gateway-scenarios.ts GATEWAY_CONFIG). */
export const PUBLISH_TOPICS: Record<string, string> = {
  chat: "chat",
  rooms: "room/{room}",
  inbox: "inbox/{to}",
};

/** What the gateway must answer to `wire` on the attacker's connection. */
export function judge(wire: string | Uint8Array, ctx: AttackerContext, limits: FuzzLimits): Judgement {
  const bad = (code = "BAD_FRAME", id?: string): Judgement => ({
    answer: id === undefined ? { type: "error", code } : { type: "error", code, id },
  });
  // Past the frame limit the socket is closed with 1009, not answered: limits.test.ts covers it.
  const frameLimit = limits.maxMessageBytes + ENVELOPE_BYTES;
  if (typeof wire !== "string") return wire.length > frameLimit ? { skip: "past the frame limit" } : bad();
  const text = onTheWire(wire);
  if (encoder.encode(text).length > frameLimit) return { skip: "past the frame limit: the socket closes" };
  // The frame's own object is one level: `data` may be maxJsonDepth deep inside it.
  if (nestingDepth(text) > limits.maxJsonDepth + 1) return bad();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad();
  }
  if (!isObject(value) || Array.isArray(value)) return bad();
  // An invalid frame's error still names the frame's id when that id is itself valid.
  const echo = isId(value.id) ? value.id as string : undefined;
  const invalid = () => bad("BAD_FRAME", echo);
  const type = value.type;
  if (typeof type !== "string" || !hasOwn(FRAME_KEYS, type)) return invalid();
  const shape = FRAME_KEYS[type];
  for (const key of Object.keys(value)) {
    if (!shape.required.includes(key) && !shape.optional.includes(key)) return invalid();
  }
  for (const key of shape.required) if (!hasOwn(value, key)) return invalid();
  if (type === "ping") return { answer: { type: "pong" } };
  if (!isName(value.endpoint)) return invalid();
  if (hasOwn(value, "id") && !isId(value.id)) return invalid();
  let params: Record<string, string> = {};
  if (hasOwn(value, "params")) {
    const p = bindingParams(value.params);
    if (!p) return invalid();
    params = p;
  }
  // Valid from here: failures carry the frame's id.
  const endpoint = value.endpoint as string;
  const id = value.id as string | undefined;
  const known = ctx.endpoints.includes(endpoint);
  if (!known) return bad("UNKNOWN_ENDPOINT", id);
  const done = (): Judgement =>
    id === undefined ? { skip: "succeeds without an id: not answered" } : {
      answer: { type: "receipt", id },
    };
  switch (type) {
    case "publish": {
      const dedupe = id === undefined ? undefined : `${endpoint}:${id}`;
      const withDedupe = (j: Judgement): Judgement => "skip" in j || !dedupe ? j : { ...j, dedupe };
      const json = JSON.stringify(value.data);
      if (encoder.encode(json).length > limits.maxMessageBytes) return withDedupe(bad("TOO_LARGE", id));
      const bound = ctx.bound[endpoint];
      if (!bound) return { skip: "a publish binds an unbound endpoint" };
      if (!routable(PUBLISH_TOPICS[endpoint], ctx.clientId, bound)) return withDedupe(bad("BAD_FRAME", id));
      const judged = done();
      return "skip" in judged ? judged : withDedupe({ ...judged, delivery: { endpoint, json } });
    }
    case "subscribe": {
      const bound = ctx.bound[endpoint];
      if (!bound) return { skip: "a subscribe binds an unbound endpoint" };
      return sameParams(bound, params) ? done() : bad("BAD_FRAME", id);
    }
    case "unsubscribe":
      return { skip: "an unsubscribe of a known endpoint changes what later frames get" };
    case "ack":
      if (!ctx.acks) return bad("BAD_FRAME", id);
      // A real delivery id is `<epoch>.<sequence>`, the epoch a millisecond clock reading.
      if (/^\d{13,}\./.test(id!)) return { skip: "an ack that could name a real delivery" };
      return bad("BAD_FRAME", id);
  }
  return bad();
}
