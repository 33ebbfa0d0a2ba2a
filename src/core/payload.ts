/**
 * Payload mapping between wire frames and broker bytes (DESIGN.md section 7).
 *
 * Publishing `data` sends `JSON.stringify(data)`. A broker payload that is JSON (nested no deeper
 * than the bound) is delivered as that value, other UTF-8 (deeper JSON included) as a string,
 * other bytes as base64.
 */
import { scanJson } from "./json-scan.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** The broker payload for a publish frame's `data`. */
export function encodeData(data: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(data));
}

/** UTF-8 bytes of a string (raw WebSocket text frames, HTTP bodies). */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The payload as text if it is UTF-8, else undefined (raw sockets and SSE need no JSON parse). */
export function decodeText(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * A broker payload made ready for every client it goes to, once: the JSON text of a frame's
 * `data` and the payload as text where it is UTF-8.
 */
export interface PreparedPayload {
  /** The `data` value as JSON text: the payload itself when it is JSON, else a JSON string. */
  readonly json: string;
  /** Set when `json` is the base64 of a payload that is not UTF-8. */
  readonly encoding?: "base64";
  /** The payload as text, when it is UTF-8 (what raw sockets and SSE send as is). */
  readonly text?: string;
}

/**
 * Prepares a payload for delivery in linear time and constant stack, whatever it holds: JSON
 * within `maxDepth` is spliced into frames as it is (never re-serialized), deeper JSON and other
 * UTF-8 go as a JSON string of the text, other bytes as base64. Never throws.
 */
export function preparePayload(bytes: Uint8Array, maxDepth: number): PreparedPayload {
  const text = decodeText(bytes);
  if (text === undefined) return { json: `"${toBase64(bytes)}"`, encoding: "base64" };
  return { json: scanJson(text, maxDepth) === "json" ? text : JSON.stringify(text), text };
}

/**
 * `preparePayload` memoized by the payload's bytes: one payload fanned out to many clients is
 * prepared once (the cache holds it no longer than the bytes live).
 */
export function preparedOnce(maxDepth: number): (bytes: Uint8Array) => PreparedPayload {
  const prepared = new WeakMap<Uint8Array, PreparedPayload>();
  return (bytes) => {
    let ready = prepared.get(bytes);
    if (!ready) {
      ready = preparePayload(bytes, maxDepth);
      prepared.set(bytes, ready);
    }
    return ready;
  };
}

/** Standard base64 without relying on Buffer (not in every runtime's globals). */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}
