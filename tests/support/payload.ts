/** Reading a delivered payload back in tests, as a client would see it. */
import { decodeText, toBase64 } from "../../src/core/payload.ts";

export interface DecodedPayload {
  data: unknown;
  encoding?: "base64";
  /** The payload as text, when it is UTF-8. */
  text?: string;
}

/** A broker payload as a client is given it: JSON as its value, other UTF-8 as text, other bytes as base64. */
export function decodePayload(bytes: Uint8Array): DecodedPayload {
  const text = decodeText(bytes);
  if (text === undefined) return { data: toBase64(bytes), encoding: "base64" };
  try {
    return { data: JSON.parse(text), text };
  } catch {
    return { data: text, text };
  }
}
