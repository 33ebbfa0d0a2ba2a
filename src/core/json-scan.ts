/**
 * A linear, allocation-free JSON validator with a nesting bound.
 *
 * The gateway splices a broker payload that is JSON into its message frames as it is, instead of
 * parsing and re-serializing it per client: parsing builds objects nobody needs, and
 * `JSON.stringify` recurses, so a payload nested a few thousand deep overflows the stack (and on
 * JavaScriptCore one nested 28,000 deep blocks the event loop for half a second). This scan
 * decides, in one pass and constant stack, whether a text is exactly what `JSON.parse` accepts and
 * nested no deeper than a bound.
 */

/** What a text is: JSON within the bound, nested deeper than it (valid or not), or not JSON. */
export type JsonShape = "json" | "deep" | "invalid";

const ARRAY = 1;
const OBJECT = 2;

/**
 * Scans `text` as JSON with at most `maxDepth` nested arrays and objects.
 *
 * @example
 * scanJson('{"a":[1,2]}', 64) // "json"
 * scanJson("[".repeat(100) + "]".repeat(100), 64) // "deep"
 * scanJson("{a:1}", 64) // "invalid"
 */
export function scanJson(text: string, maxDepth: number): JsonShape {
  const n = text.length;
  // Container kinds by depth; fixed size, so the scan never grows memory with the input.
  const stack = new Uint8Array(maxDepth + 1);
  let depth = 0;
  let i = skipSpace(text, 0);
  // Each turn reads one value, then what may follow it in its container.
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      // Past the bound the text is refused or passed on as text, JSON or not: no need to read on.
      if (depth === maxDepth) return "deep";
      stack[++depth] = c === 0x7b ? OBJECT : ARRAY;
      i = skipSpace(text, i + 1);
      const close = text.charCodeAt(i);
      if (c === 0x7b) {
        if (close === 0x7d /* } */) {
          depth--;
          i++;
        } else {
          i = member(text, i);
          if (i < 0) return "invalid";
          continue;
        }
      } else if (close === 0x5d /* ] */) {
        depth--;
        i++;
      } else continue;
    } else {
      i = scalar(text, i);
      if (i < 0) return "invalid";
    }
    // After a value: close containers, or go on to the next element.
    for (;;) {
      i = skipSpace(text, i);
      if (depth === 0) return i === n ? "json" : "invalid";
      const c2 = text.charCodeAt(i);
      if (c2 === 0x2c /* , */) {
        i = skipSpace(text, i + 1);
        if (stack[depth] === OBJECT) {
          i = member(text, i);
          if (i < 0) return "invalid";
        }
        break;
      }
      if ((c2 === 0x5d && stack[depth] === ARRAY) || (c2 === 0x7d && stack[depth] === OBJECT)) {
        depth--;
        i++;
        continue;
      }
      return "invalid";
    }
  }
}

/** An object member `"key": ` at `i`; returns where its value starts, or -1. */
function member(text: string, i: number): number {
  if (text.charCodeAt(i) !== 0x22) return -1;
  i = string(text, i);
  if (i < 0) return -1;
  i = skipSpace(text, i);
  if (text.charCodeAt(i) !== 0x3a /* : */) return -1;
  return skipSpace(text, i + 1);
}

/** A string, number or literal at `i`; returns the index after it, or -1. */
function scalar(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return string(text, i);
  if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return number(text, i);
  if (c === 0x74) return text.startsWith("true", i) ? i + 4 : -1;
  if (c === 0x66) return text.startsWith("false", i) ? i + 5 : -1;
  if (c === 0x6e) return text.startsWith("null", i) ? i + 4 : -1;
  return -1;
}

function string(text: string, i: number): number {
  const n = text.length;
  for (i++; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c /* \ */) {
      const e = text.charCodeAt(++i);
      if (e === 0x75 /* u */) {
        for (let k = 1; k <= 4; k++) if (!isHex(text.charCodeAt(i + k))) return -1;
        i += 4;
      } else if (
        e !== 0x22 && e !== 0x5c && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 &&
        e !== 0x74
      ) return -1;
    }
  }
  return -1;
}

function number(text: string, i: number): number {
  if (text.charCodeAt(i) === 0x2d) i++;
  const first = text.charCodeAt(i);
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) i = digits(text, i);
  else return -1;
  if (text.charCodeAt(i) === 0x2e /* . */) {
    const end = digits(text, i + 1);
    if (end === i + 1) return -1;
    i = end;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    const end = digits(text, i);
    if (end === i) return -1;
    i = end;
  }
  return i;
}

function digits(text: string, i: number): number {
  let c = text.charCodeAt(i);
  while (c >= 0x30 && c <= 0x39) c = text.charCodeAt(++i);
  return i;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function skipSpace(text: string, i: number): number {
  let c = text.charCodeAt(i);
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
  return i;
}
