/**
 * Hostile frames for the multiplexed WebSocket (`/ws`), made by a seeded generator (fuzz-rng.ts)
 * so a failing run can be replayed from its seed, each with the answer the oracle (fuzz-oracle.ts)
 * says the gateway must send; the generator's building blocks are in fuzz-blocks.ts.
 */
import { createRng } from "./fuzz-rng.ts";
import type { Rng } from "./fuzz-rng.ts";
import { ENVELOPE_BYTES, judge } from "./fuzz-oracle.ts";
import type { AttackerContext, FuzzFrame, FuzzLimits } from "./fuzz-oracle.ts";
import {
  NONSENSE_ACK_IDS,
  obj,
  ODD_KEYS,
  ODD_NUMBERS,
  ODD_STRINGS,
  str,
  UNKNOWN_ENDPOINTS,
  UNKNOWN_TYPES,
  WRONG_VALUES,
} from "./fuzz-blocks.ts";
import type { Pairs } from "./fuzz-blocks.ts";

const encoder = new TextEncoder();

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
      case 2: // the example, to a room of its own
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
