/**
 * How a session is laid out in its Redis hash: a field per attribute (`epoch`, `state`, `node`,
 * `connectedAt`, `disconnectedAt`, `lease`, `deadline`) and one `sub:{endpoint}` field per
 * subscription, holding the JSON of its params and bind time. Reading checks every field, so a
 * record another version (or anything else) wrote is reported, never half-understood.
 */
import type { Session } from "../core/session.ts";

/** The field prefix of a subscription. */
export const SUB = "sub:";

/** A session as the hash's field/value pairs. */
export function encode(session: Session): string[] {
  const pairs = [
    "epoch",
    String(session.epoch),
    "state",
    session.state,
    "connectedAt",
    String(session.connectedAt),
  ];
  if (session.nodeId !== undefined) pairs.push("node", session.nodeId);
  if (session.subject !== undefined) pairs.push("subject", session.subject);
  if (session.disconnectedAt !== undefined) pairs.push("disconnectedAt", String(session.disconnectedAt));
  if (session.leaseUntil !== undefined) pairs.push("lease", String(session.leaseUntil));
  if (session.reconnectionDeadline !== undefined) {
    pairs.push("deadline", String(session.reconnectionDeadline));
  }
  for (const s of session.subscriptions) {
    pairs.push(SUB + s.endpoint, JSON.stringify({ params: s.params, boundAt: s.boundAt }));
  }
  return pairs;
}

/** What makes a record unreadable; an empty one is a key of another type than hash. */
export function problemOf(clientId: string, fields: string[]): string {
  if (fields.length === 0) return "not a session hash";
  const parsed = parseFields(clientId, fields);
  return typeof parsed === "string" ? parsed : "unreadable";
}

/** A session from the hash's field/value pairs, or what is wrong with them. */
export function parseFields(clientId: string, fields: string[]): Session | string {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
  const epoch = integer(f.get("epoch"));
  if (epoch === undefined) return `epoch ${JSON.stringify(f.get("epoch") ?? null)} is not a number`;
  const state = f.get("state");
  if (state !== "connected" && state !== "disconnected") return `state ${JSON.stringify(state ?? null)}`;
  const connectedAt = integer(f.get("connectedAt"));
  if (connectedAt === undefined) return "connectedAt missing or not a number";
  const session: Session = { clientId, state, epoch, connectedAt, subscriptions: [] };
  const node = f.get("node");
  if (node !== undefined) session.nodeId = node;
  const subject = f.get("subject");
  if (subject !== undefined) session.subject = subject;
  for (
    const [field, key] of [["disconnectedAt", "disconnectedAt"], ["lease", "leaseUntil"], [
      "deadline",
      "reconnectionDeadline",
    ]] as const
  ) {
    const raw = f.get(field);
    if (raw === undefined) continue;
    const value = integer(raw);
    if (value === undefined) return `${field} ${JSON.stringify(raw)} is not a number`;
    session[key] = value;
  }
  for (const [field, raw] of f) {
    if (!field.startsWith(SUB)) continue;
    let sub: unknown;
    try {
      sub = JSON.parse(raw);
    } catch (error) {
      return `${field} is not JSON (${(error as Error).message})`;
    }
    const s = sub as { params?: unknown; boundAt?: unknown };
    if (
      !s || typeof s.boundAt !== "number" || !s.params || typeof s.params !== "object" ||
      !Object.values(s.params).every((p) => typeof p === "string")
    ) {
      return `${field} is not a subscription`;
    }
    session.subscriptions.push({
      endpoint: field.slice(SUB.length),
      params: s.params as Record<string, string>,
      boundAt: s.boundAt,
    });
  }
  session.subscriptions.sort((a, b) => a.boundAt - b.boundAt || (a.endpoint < b.endpoint ? -1 : 1));
  return session;
}

function integer(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+$/.test(value)) return undefined;
  return Number(value);
}
