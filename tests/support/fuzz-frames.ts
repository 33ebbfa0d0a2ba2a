/**
 * Hostile frames for the multiplexed WebSocket (`/ws`), made by a seeded generator so a failing
 * run can be replayed from its seed, and an oracle that says, from the wire protocol alone
 * (README "Wire protocol", DESIGN.md section 7), what the gateway must answer to each.
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

/** The envelope a frame may add to a full-size payload (README: "a WebSocket frame may be 1 KiB more"). */
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

// ---------------------------------------------------------------------------------------------
// PRNG

export interface Rng {
  /** In [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** sfc32 seeded from one 32-bit number (deterministic on every runtime). */
export function createRng(seed: number): Rng {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0, b >>>= 0, c >>>= 0, d >>>= 0;
    const t = (a + b | 0) + d | 0;
    d = d + 1 | 0;
    a = b ^ b >>> 9;
    b = c + (c << 3) | 0;
    c = c << 21 | c >>> 11;
    c = c + t | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)],
    chance: (p) => next() < p,
  };
  return rng;
}

/** A seed for attacker `index` from the run's seed. */
export function deriveSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ h >>> 16, 0x7feb352d);
  h = Math.imul(h ^ h >>> 15, 0x846ca68b);
  return (h ^ h >>> 16) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// The oracle

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

// ---------------------------------------------------------------------------------------------
// Building blocks

type Pairs = Array<[string, string]>;
/** A JSON object's text from key/value-text pairs, kept as written (duplicates, `__proto__`). */
const obj = (pairs: Pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
const str = (s: string) => JSON.stringify(s);

/** Numbers JSON allows that JavaScript reads oddly (Infinity, -0, rounding, underflow). */
const ODD_NUMBERS = [
  "1e400",
  "-1e400",
  "1e-400",
  "-0",
  "-0.0",
  "0e0",
  "9007199254740993",
  "-9007199254740993",
  "18446744073709551616",
  "123456789012345678901234567890.123456789",
  "1E+308",
  "2.2250738585072014e-308",
  "5e-324",
  "0.1",
  "1.7976931348623157e308",
  "1" + "0".repeat(400),
  "-" + "9".repeat(500),
  "0." + "0".repeat(400) + "1",
];
/** Strings as JSON text with escapes a client may send: lone surrogates, NUL, separators, BOM. */
const ODD_STRINGS = [
  '"\\ud800"',
  '"\\udfff"',
  '"\\udc00\\ud800"',
  '"a\\ud800b"',
  '"\\ud83d"',
  '"\\u0000"',
  '"a\\u0000b\\u0000"',
  '"\\u2028\\u2029"',
  '"\\ufeff"',
  '"\\uffff\\ufffe"',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
  '"\\u0022\\u005c"',
  '""',
  '"</script><script>alert(1)</script>"',
  '"${jndi:ldap://x}"',
  '"%s%n%x"',
  str("é😀\u0301\u200b"),
  str("x".repeat(1000)),
];
const ODD_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "",
  " ",
  "\u0000",
  "\ud800",
  "a",
  "type",
  "id",
  "n",
];
/** Values of the wrong type for every field, as JSON text. */
const WRONG_VALUES = [
  "null",
  "true",
  "false",
  "0",
  "-1",
  "1.5",
  "1e400",
  "-0",
  "9007199254740993",
  '""',
  '" "',
  '"\\u0000"',
  '"\\ud800"',
  "[]",
  '["chat"]',
  '[{"room":"x"}]',
  "{}",
  '{"a":1}',
  '{"__proto__":{"room":"x"}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"room":1}',
  '{"room":null}',
  '{"room":["x"]}',
  '"' + "x".repeat(129) + '"',
  '"' + "x".repeat(257) + '"',
];
const UNKNOWN_TYPES = [
  "Publish",
  "PING",
  "pong",
  "welcome",
  "message",
  "receipt",
  "error",
  "",
  " ping",
  "ping ",
  "ping\u0000",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "publish\ud800",
  "subscribe/",
  "ack ",
  "unsubscribe\n",
];
const UNKNOWN_ENDPOINTS = [
  "nope",
  "CHAT",
  "chat ",
  " chat",
  "rooms/x",
  "room/x",
  "inbox/victim",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "\u0000",
  "ch\u0000at",
  "\ud800",
  "*",
  "#",
  "+",
  "..",
  "chat,rooms",
  "x".repeat(128),
];
/** Ack ids that name nothing this connection was sent. */
const NONSENSE_ACK_IDS = [
  "1.1",
  "0.0",
  "0",
  "1",
  ".",
  "1.",
  ".1",
  "-1.-1",
  "NaN.NaN",
  "Infinity.1",
  "1e400.1",
  "abc",
  "1.1.1",
  "9".repeat(256),
  "1.0x1",
  " 1. 1",
  "\u0000.\u0000",
  "\ud800.1",
  "__proto__",
  "constructor.1",
];

// ---------------------------------------------------------------------------------------------
// The generator

interface Gen {
  rng: Rng;
  ctx: AttackerContext;
  limits: FuzzLimits;
  serial: number;
  /** `endpoint:id` of every publish so far: never again (a retry is deduplicated). */
  usedIds: Set<string>;
}

/** A valid id of an odd shape that this connection has not used. */
function freshId(g: Gen): string {
  const n = g.serial++;
  const shape = g.rng.int(0, 12);
  switch (shape) {
    case 0:
      return `m${n}`;
    case 1:
      return `${n}`;
    case 2:
      return `__proto__${n}`;
    case 3:
      return `constructor.${n}`;
    case 4:
      return ` ${n} `;
    case 5:
      return `\u0000${n}`;
    case 6:
      return `\ud800${n}\udfff`;
    case 7:
      return `é😀${n}`;
    case 8:
      return `"\\${n}'`;
    case 9:
      return `${n}`.padEnd(256, "x"); // the longest id
    case 10:
      return `1764180000000.${n}`;
    case 11:
      return `\u2028${n}<\/script>`;
    default:
      return `id-${n}-${g.ctx.clientId}`;
  }
}

/** A random JSON value (as text), shallow, with odd numbers, strings and keys. */
function randomData(g: Gen, depth = 0): string {
  const r = g.rng;
  const roll = r.int(0, depth >= 3 ? 5 : 8);
  switch (roll) {
    case 0:
      return r.pick(ODD_NUMBERS);
    case 1:
      return r.pick(ODD_STRINGS);
    case 2:
      return r.pick(["null", "true", "false", "0", "1", "-1", "3.14"]);
    case 3:
      return str(`n${r.int(0, 1e6)}`);
    case 4:
      return String(r.int(-1e9, 1e9));
    case 5:
      return '"plain"';
    case 6:
    case 7:
      return obj(
        Array.from(
          { length: r.int(0, 4) },
          () => [r.pick(ODD_KEYS), randomData(g, depth + 1)] as [string, string],
        ),
      );
    default:
      return `[${Array.from({ length: r.int(0, 4) }, () => randomData(g, depth + 1)).join(",")}]`;
  }
}

function paramsText(params: Record<string, string>): string {
  return obj(Object.entries(params).map(([k, v]) => [k, str(v)]));
}

/** A well-formed frame that gets a receipt or a pong. */
function goodPairs(g: Gen): Pairs {
  const r = g.rng;
  const roll = r.int(0, 9);
  if (roll <= 2) return [["type", '"ping"']];
  if (roll <= 7) {
    // Publishes go to the attacker's own room (back to itself only); now and then to chat (all).
    const endpoint = roll === 7 && r.chance(0.5) ? "chat" : "rooms";
    return [["type", '"publish"'], ["endpoint", str(endpoint)], ["data", randomData(g)], [
      "id",
      str(freshId(g)),
    ]];
  }
  const endpoint = r.pick(Object.keys(g.ctx.bound));
  const pairs: Pairs = [["type", '"subscribe"'], ["endpoint", str(endpoint)]];
  const params = g.ctx.bound[endpoint];
  if (Object.keys(params).length > 0 || r.chance(0.5)) pairs.push(["params", paramsText(params)]);
  pairs.push(["id", str(freshId(g))]);
  return pairs;
}

/** Any frame shape, valid before mutation: a good one or an ack/unsubscribe/unknown one. */
function templatePairs(g: Gen): Pairs {
  const r = g.rng;
  switch (r.int(0, 5)) {
    case 0:
      return [["type", '"ack"'], ["endpoint", str(r.pick(g.ctx.endpoints))], [
        "id",
        str(r.pick(NONSENSE_ACK_IDS)),
      ]];
    case 1:
      return [["type", '"unsubscribe"'], ["endpoint", str(r.pick(UNKNOWN_ENDPOINTS))], [
        "id",
        str(freshId(g)),
      ]];
    default:
      return goodPairs(g);
  }
}

function setField(pairs: Pairs, key: string, value: string): Pairs {
  const out = pairs.filter(([k]) => k !== key);
  out.push([key, value]);
  return out;
}

/** `text` inside `depth` arrays. */
const wrap = (depth: number, text: string) => "[".repeat(depth) + text + "]".repeat(depth);

const FIELDS = ["type", "endpoint", "data", "id", "params"];

/** `depth` nested containers in one of several styles, some never closed. */
function deepText(r: Rng, depth: number): string {
  switch (r.int(0, 5)) {
    case 0:
      return "[".repeat(depth) + "]".repeat(depth);
    case 1:
      return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    case 2:
      return "[".repeat(depth);
    case 3:
      return '{"a":'.repeat(depth);
    case 4:
      return '[{"a":'.repeat(depth >> 1) + "[]" + "}]".repeat(depth >> 1);
    default:
      return '{"__proto__":'.repeat(depth) + "{}" + "}".repeat(depth);
  }
}

/** Depth from 10 to 100,000, spread evenly over the orders of magnitude, with the bound's edges. */
function deepDepth(g: Gen): number {
  const edge = g.limits.maxJsonDepth;
  if (g.rng.chance(0.25)) return g.rng.pick([edge - 1, edge, edge + 1, edge + 2]);
  return Math.round(10 ** (1 + g.rng.next() * 4));
}

type Maker = (g: Gen) => string | Uint8Array;

const MAKERS: Array<[string, number, Maker]> = [
  ["good", 20, (g) => obj(goodPairs(g))],
  ["wrong-type", 12, (g) => {
    const field = g.rng.pick(FIELDS);
    const pairs = templatePairs(g);
    // Any JSON is a valid `data`: its wrong shapes are missing, or on a frame that takes none.
    if (field === "data" && g.rng.chance(0.5)) return obj(pairs.filter(([k]) => k !== "data"));
    return obj(setField(pairs, field, g.rng.pick(WRONG_VALUES)));
  }],
  ["unknown-type", 3, (g) => {
    const pairs = templatePairs(g);
    return obj(setField(pairs, "type", str(g.rng.pick(UNKNOWN_TYPES))));
  }],
  ["extra-keys", 5, (g) => {
    const pairs = templatePairs(g);
    const roll = g.rng.int(0, 2);
    if (roll === 0) {
      pairs.push([g.rng.pick([...ODD_KEYS, "extra", "meta", "code", "clientId"]), randomData(g)]);
    } else if (roll === 1) {
      // A duplicate key: the last one counts.
      pairs.push(["type", str(g.rng.pick(["ping", "publish", "subscribe", "ack"]))]);
    } else {
      // A field twice, the first of the wrong type.
      pairs.unshift([g.rng.pick(FIELDS), g.rng.pick(WRONG_VALUES)]);
    }
    return obj(pairs);
  }],
  ["proto-keys", 7, (g) => {
    const r = g.rng;
    const key = r.pick(["__proto__", "constructor", "prototype"]);
    const room = g.ctx.bound.rooms?.room ?? "x";
    const inner = r.pick([
      "{}",
      '{"room":"x"}',
      obj([["room", str(room)]]),
      '{"polluted":true}',
      '{"prototype":{"polluted":true}}',
      "null",
      '"x"',
    ]);
    switch (r.int(0, 5)) {
      case 0: // top level: an extra key
        return obj([...templatePairs(g), [key, inner]]);
      case 1: // in params, alone or beside the right ones
        return obj([
          ["type", '"subscribe"'],
          ["endpoint", str(r.pick(Object.keys(g.ctx.bound)))],
          ["params", obj(r.chance(0.5) ? [[key, inner]] : [["room", str(room)], [key, inner]])],
          ["id", str(freshId(g))],
        ]);
      case 2: // the issue's example, to a room of its own
        return obj([
          ["type", '"subscribe"'],
          ["endpoint", '"rooms"'],
          ["params", obj([[key, obj([["room", str(room)]])]])],
          ...(r.chance(0.5) ? [["id", str(freshId(g))] as [string, string]] : []),
        ]);
      case 3: // in data, at some depth
        return obj([
          ["type", '"publish"'],
          ["endpoint", '"rooms"'],
          ["data", wrap(r.int(0, 3), obj([[key, inner], ["n", "1"]]))],
          ["id", str(freshId(g))],
        ]);
      case 4:
        return obj([
          ["type", '"publish"'],
          ["endpoint", '"rooms"'],
          ["data", obj([[key, obj([[key, obj([[key, inner]])]])]])],
          ["id", str(freshId(g))],
        ]);
      default: // as the whole frame, or wrapping it
        return r.chance(0.5)
          ? obj([[key, obj(goodPairs(g))]])
          : obj([[key, '{"type":"ping"}'], ["type", '"ping"']]);
    }
  }],
  ["numbers", 5, (g) => {
    const field = g.rng.pick(["data", "data", "id", "endpoint", "type", "params"]);
    const n = g.rng.pick(ODD_NUMBERS);
    const pairs = goodPairs(g);
    if (field === "data" && pairs.some(([k]) => k === "data")) return obj(setField(pairs, "data", n));
    if (field === "params") return obj(setField(pairs, "params", obj([["room", n]])));
    return obj(setField(pairs, field, n));
  }],
  ["ids", 5, (g) => {
    const r = g.rng;
    const pairs = r.chance(0.2) ? [["type", '"ping"']] as Pairs : goodPairs(g);
    const shape = r.int(0, 2);
    const id = shape === 0 ? str(freshId(g)) : shape === 1 ? r.pick(WRONG_VALUES) : r.pick([
      '""',
      str("x".repeat(257)),
      str("é".repeat(257)),
      str("😀".repeat(129)), // 258 UTF-16 units
      str("😀".repeat(128)), // exactly 256 units: valid
    ]);
    return obj(setField(pairs, "id", id));
  }],
  ["ack", 5, (g) => {
    const r = g.rng;
    const endpoint = r.chance(0.7) ? r.pick(g.ctx.endpoints) : r.pick(UNKNOWN_ENDPOINTS);
    const id = r.chance(0.8) ? str(r.pick(NONSENSE_ACK_IDS)) : r.pick(WRONG_VALUES);
    const pairs: Pairs = [["type", '"ack"'], ["endpoint", str(endpoint)], ["id", id]];
    return obj(r.chance(0.1) ? pairs.filter(([k]) => k !== "id") : pairs);
  }],
  ["unknown-endpoint", 7, (g) => {
    const r = g.rng;
    const type = r.pick(["publish", "subscribe", "unsubscribe", "ack"]);
    const pairs: Pairs = [["type", str(type)], ["endpoint", str(r.pick(UNKNOWN_ENDPOINTS))]];
    if (type === "publish") pairs.push(["data", randomData(g)]);
    if (type === "subscribe" && r.chance(0.5)) pairs.push(["params", '{"room":"x"}']);
    if (type === "ack" || r.chance(0.7)) pairs.push(["id", str(freshId(g))]);
    return obj(pairs);
  }],
  ["bad-params", 4, (g) => {
    const r = g.rng;
    const endpoint = r.pick(Object.keys(g.ctx.bound));
    const value = r.pick(["#", "+", "a/b", "../x", "", " ", "\u0000", "x".repeat(129), "other", "\ud800"]);
    const params = r.pick([
      obj([["room", str(value)]]),
      obj([["to", str(value)]]),
      obj([["room", str(g.ctx.bound.rooms?.room ?? "x")], ["extra", '"1"']]),
      obj([["k".repeat(64), '"v"']]),
      obj([["k".repeat(65), '"v"']]),
      "[]",
      '["x"]',
    ]);
    const pairs: Pairs = [["type", '"subscribe"'], ["endpoint", str(endpoint)], ["params", params]];
    if (r.chance(0.8)) pairs.push(["id", str(freshId(g))]);
    return obj(pairs);
  }],
  ["odd-data", 5, (g) => {
    const r = g.rng;
    const data = r.pick([
      r.pick(ODD_STRINGS),
      obj([["s", r.pick(ODD_STRINGS)], ["n", r.pick(ODD_NUMBERS)]]),
      `[${r.pick(ODD_STRINGS)},${r.pick(ODD_NUMBERS)},null]`,
      str("\u0000".repeat(r.int(1, 100))),
      '"' + "\\ud800".repeat(r.int(1, 100)) + '"',
    ]);
    return obj([["type", '"publish"'], ["endpoint", '"rooms"'], ["data", data], ["id", str(freshId(g))]]);
  }],
  ["truncated", 7, (g) => {
    const text = g.rng.chance(0.7) ? obj(goodPairs(g)) : obj(templatePairs(g));
    return text.slice(0, g.rng.int(0, text.length - 1));
  }],
  ["text-garbage", 5, (g) => {
    const r = g.rng;
    const n = r.int(0, r.chance(0.1) ? 20_000 : 300);
    const alphabet = r.chance(0.5) ? '{}[]":,tfn0-e.\\ u1' : "";
    let out = "";
    for (let i = 0; i < n; i++) {
      out += alphabet ? alphabet[r.int(0, alphabet.length - 1)] : String.fromCharCode(r.int(0, 0xffff));
    }
    // Raw lone surrogates: the client API sends U+FFFD for them (it cannot send invalid UTF-8 as text).
    return r.chance(0.3) ? `{"type":"ping"${String.fromCharCode(r.int(0xd800, 0xdfff))}}` : out;
  }],
  ["binary", 6, (g) => {
    const r = g.rng;
    switch (r.int(0, 4)) {
      case 0: // random bytes
        return Uint8Array.from({ length: r.int(0, 2048) }, () => r.int(0, 255));
      case 1: { // invalid UTF-8 (not sendable as text through the client API), inside a frame
        const invalid = r.pick([
          [0xc3, 0x28],
          [0xa0, 0xa1],
          [0xe2, 0x28, 0xa1],
          [0xf0, 0x28, 0x8c, 0x28],
          [0xed, 0xa0, 0x80],
          [0xc0, 0xaf],
          [0xf8, 0x88, 0x80, 0x80, 0x80],
          [0xff, 0xfe],
          [0xe2, 0x82],
        ]);
        const head = encoder.encode('{"type":"publish","endpoint":"rooms","data":"');
        const tail = encoder.encode(`","id":"${freshId(g)}"}`);
        return Uint8Array.from([...head, ...invalid, ...tail]);
      }
      case 2: // a well-formed frame, as binary
        return encoder.encode(obj(goodPairs(g)));
      case 3:
        return new Uint8Array(0);
      default: // up to the frame limit (past it the socket is closed with 1009: limits.test.ts)
        return new Uint8Array(g.limits.maxMessageBytes + ENVELOPE_BYTES - r.int(0, 2048)).fill(0x7b);
    }
  }],
  ["deep", 5, (g) => {
    const r = g.rng;
    const deep = deepText(r, deepDepth(g));
    switch (r.int(0, 5)) {
      case 0:
        return deep;
      case 1:
      case 2:
        return obj([["type", '"publish"'], ["endpoint", '"rooms"'], ["data", deep], ["id", str(freshId(g))]]);
      default:
        return obj(setField(goodPairs(g), r.pick(["params", "id", "type", "endpoint"]), deep));
    }
  }],
  ["long", 3, (g) => {
    const r = g.rng;
    const limit = g.limits.maxMessageBytes;
    const frameLimit = limit + ENVELOPE_BYTES;
    if (r.chance(0.15)) {
      // Long text that is not JSON, just under or at the frame limit (past it: limits.test.ts).
      return "x".repeat(frameLimit + r.int(-1, 0));
    }
    const id = str(freshId(g).slice(0, 40));
    const envelope =
      encoder.encode(obj([["type", '"publish"'], ["endpoint", '"rooms"'], ["data", ""], ["id", id]]))
        .length;
    // A string `data` whose payload (JSON, quotes included) or whose whole frame lands on either
    // side of its limit, in characters of 1 to 4 UTF-8 bytes.
    const fillBytes = r.chance(0.5)
      ? r.pick([limit - 1, limit, limit + 1]) - 2
      : r.pick([frameLimit - 1, frameLimit]) - envelope - 2;
    const unit = r.pick(["x", "x", "é", "€", "😀"]);
    const bytes = encoder.encode(unit).length;
    const fill = unit.repeat(Math.floor(fillBytes / bytes)) + "x".repeat(fillBytes % bytes);
    return obj([["type", '"publish"'], ["endpoint", '"rooms"'], ["data", str(fill)], ["id", id]]);
  }],
];

const TOTAL_WEIGHT = MAKERS.reduce((sum, [, w]) => sum + w, 0);

/** Every kind the generator makes. */
export const FRAME_KINDS = MAKERS.map(([kind]) => kind);

/**
 * `count` frames for one attacker, from `seed`: each judged by the oracle, those whose answer
 * cannot be known in advance made again.
 */
export function generateFrames(
  seed: number,
  ctx: AttackerContext,
  count: number,
  limits: FuzzLimits,
): FuzzFrame[] {
  const g: Gen = { rng: createRng(seed), ctx, limits, serial: 0, usedIds: new Set() };
  const frames: FuzzFrame[] = [];
  while (frames.length < count) {
    let roll = g.rng.next() * TOTAL_WEIGHT;
    const [kind, , make] = MAKERS.find(([, w]) => (roll -= w) < 0) ?? MAKERS[0];
    for (let attempt = 0; attempt < 20; attempt++) {
      const wire = make(g);
      const judged = judge(wire, ctx, limits);
      if ("skip" in judged) continue;
      // A publish id used twice would be deduplicated (or OUTCOME_UNKNOWN while the first is under way).
      const { dedupe, ...expected } = judged;
      if (dedupe !== undefined) {
        if (g.usedIds.has(dedupe)) continue;
        g.usedIds.add(dedupe);
      }
      frames.push({ kind, wire, ...expected });
      break;
    }
  }
  return frames;
}

/** A short, printable description of a frame, for reports. */
export function describeFrame(wire: string | Uint8Array, max = 160): string {
  if (typeof wire !== "string") {
    const head = Array.from(wire.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `binary(${wire.length}) ${head}${wire.length > 24 ? " ..." : ""}`;
  }
  const shown = JSON.stringify(wire.length > max ? wire.slice(0, max) : wire);
  return wire.length > max ? `text(${wire.length}) ${shown}...` : `text(${wire.length}) ${shown}`;
}
