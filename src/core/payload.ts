/**
 * Payload mapping between wire frames and broker bytes (DESIGN.md section 7).
 *
 * Publishing `data` sends `JSON.stringify(data)`. A broker payload that parses as JSON is
 * delivered as that value, other UTF-8 as a string, other bytes as base64.
 */

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

export interface DecodedPayload {
  data: unknown;
  encoding?: "base64";
  /** The payload as text, when it is UTF-8 (what raw sockets and SSE send as is). */
  text?: string;
}

/** The payload as text if it is UTF-8, else undefined (raw sockets and SSE need no JSON parse). */
export function decodeText(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** How a broker payload is presented to a client. */
export function decodePayload(bytes: Uint8Array): DecodedPayload {
  const text = decodeText(bytes);
  if (text === undefined) return { data: toBase64(bytes), encoding: "base64" };
  try {
    return { data: JSON.parse(text), text };
  } catch {
    return { data: text, text };
  }
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
