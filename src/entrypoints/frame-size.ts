/**
 * Frame sizing: the longest WebSocket message a client may send, whether a frame is past it,
 * and about how much memory a frame waiting to be handled holds. Adapters import
 * `maxFrameBytes` to hand the limit to a runtime that can refuse longer frames unread.
 */
import type { Config } from "../config/schema.ts";
import { ENVELOPE_BYTES } from "../policy/default-policy.ts";

const encoder = new TextEncoder();

/**
 * The longest WebSocket message a client may send: `policy.max_message_bytes` plus room for
 * the envelope. Adapters hand it to the runtime where it can refuse longer ones unread.
 *
 * @example
 * ```ts
 * Bun.serve({ websocket: { maxPayloadLength: maxFrameBytes(engine.config), ...handler } });
 * ```
 */
export function maxFrameBytes(config: Config): number {
  return config.policy.max_message_bytes + ENVELOPE_BYTES;
}

/**
 * Whether a frame is longer than `limit` bytes. A UTF-16 unit is 1 to 3 UTF-8 bytes, so text is
 * encoded only when its length leaves the answer open.
 */
export function exceeds(data: unknown, limit: number): boolean {
  if (typeof data === "string") {
    return data.length > limit || (data.length * 3 > limit && encoder.encode(data).length > limit);
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength > limit;
  if (data instanceof Blob) return data.size > limit;
  return false;
}

/** About how much memory a frame's data holds (a string's length in UTF-16 units). */
export function sizeOf(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}
