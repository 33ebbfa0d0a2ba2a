/**
 * Valibot schemas of the multiplexed WebSocket protocol's client frames (DESIGN.md section 7).
 */
import * as v from "valibot";
import type { ClientFrame } from "../core/protocol.ts";

const name = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const id = v.pipe(v.string(), v.minLength(1), v.maxLength(256));

export const ClientFrameSchema = v.variant("type", [
  v.strictObject({ type: v.literal("publish"), endpoint: name, data: v.unknown(), id: v.optional(id) }),
  v.strictObject({
    type: v.literal("subscribe"),
    endpoint: name,
    params: v.optional(v.record(v.pipe(v.string(), v.maxLength(64)), v.string())),
    id: v.optional(id),
  }),
  v.strictObject({ type: v.literal("unsubscribe"), endpoint: name, id: v.optional(id) }),
  v.strictObject({ type: v.literal("ack"), endpoint: name, id }),
  v.strictObject({ type: v.literal("ping") }),
  v.strictObject({ type: v.literal("leave") }),
]);

/** Validates a parsed JSON value as a client frame; returns the frame or one readable problem. */
export function validateFrame(value: unknown): { frame: ClientFrame } | { problem: string } {
  const result = v.safeParse(ClientFrameSchema, value);
  if (result.success) return { frame: result.output as ClientFrame };
  const issue = result.issues[0];
  const path = v.getDotPath(issue);
  return { problem: path ? `${path}: ${issue.message}` : issue.message };
}
