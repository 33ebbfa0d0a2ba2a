// @ts-check
/**
 * The library's one error type and the gateway's close codes (docs/codes.md "Close codes"), with
 * whether the client reconnects on each.
 */
/** @import { ErrorCode } from "../mod.d.ts" */

/** Codes that may succeed later, for a gateway that does not say (`temporary` in its errors). */
const TEMPORARY = new Set([
  "UPSTREAM_UNAVAILABLE",
  "STORE_UNAVAILABLE",
  "RATE_LIMITED",
  "OUTCOME_UNKNOWN",
]);

/** A gateway error frame, a close, or the client's own refusal, with a stable code. */
export class ClientError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   * @param {{ cause?: unknown, retryAfterMs?: number, temporary?: boolean }} [options]
   *   `temporary`: the gateway's own word (its error's `temporary` field), which wins over the code
   */
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.code = code;
    this.temporary = typeof options.temporary === "boolean" ? options.temporary : TEMPORARY.has(code);
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * The gateway's close codes by name, each with whether the client reconnects on it and what it
 * means: a copy of the gateway's table (src/core/errors.ts CLOSE_CODES; this library runs in
 * browsers without the gateway's modules), held equal by tests/unit/client-tables.test.ts, plus
 * ABNORMAL, which the platform reports and no gateway sends.
 * @type {typeof import("../mod.d.ts").CLOSE_CODES}
 */
export const CLOSE_CODES = deepFreeze({
  NORMAL: {
    code: 1000,
    reconnect: true,
    meaning:
      "normal closure: the gateway sends it only as the answer to the client's `leave` (reason `left`), " +
      "after which the client closes; a client that did not leave reconnects",
  },
  GOING_AWAY: {
    code: 1001,
    reconnect: true,
    meaning: "the gateway is shutting down; the session is kept: reconnect (to another node)",
  },
  ABNORMAL: {
    code: 1006,
    reconnect: true,
    meaning:
      "not a code on the wire: the connection ended without a close frame (network, refused handshake, " +
      "no pong): reconnect with back-off",
  },
  POLICY: {
    code: 1008,
    reconnect: true,
    meaning:
      "policy violation (raw sockets: a refused frame; `too slow`: the client did not read); the session " +
      "is kept: fix the input, or read faster",
  },
  MESSAGE_TOO_BIG: {
    code: 1009,
    reconnect: true,
    meaning: "a message past `policy.max_message_bytes` + 1 KiB: send smaller messages",
  },
  INTERNAL_ERROR: { code: 1011, reconnect: true, meaning: "internal error: reconnect with back-off" },
  TRY_AGAIN_LATER: {
    code: 1013,
    reconnect: true,
    meaning: "a broker is unavailable; the session is kept: reconnect after a delay",
  },
  DISCONNECTED: {
    code: 4000,
    reconnect: true,
    meaning: "disconnected by an operator (the admin API); the session is kept: reconnect and resume it",
  },
  UNAUTHENTICATED: {
    code: 4401,
    reconnect: false,
    meaning: "not authenticated (a missing, invalid or expired credential): reconnect only with a new one",
  },
  SESSION_ENDED: {
    code: 4404,
    reconnect: false,
    meaning: "the session was ended by an operator (the admin API): its subscriptions are gone; do not " +
      "reconnect automatically",
  },
  TAKEN_OVER: {
    code: 4409,
    reconnect: false,
    meaning: "the session was taken over by a newer connection with the same client ID: do not reconnect " +
      "automatically",
  },
  SESSION_EXPIRED: {
    code: 4410,
    reconnect: true,
    meaning: "the session expired under the connection (its node could not renew its lease for longer than " +
      "the window): reconnect for a fresh session",
  },
  PERMANENT_ERROR: {
    code: 4500,
    reconnect: false,
    meaning: "a permanent error (e.g. the client's stored session is unreadable): the reason is " +
      '`<CODE>: <message>`, and a multiplexed socket gets the error frame (`"temporary":false`) first; do not ' +
      "reconnect automatically: an operator must act",
  },
  STORE_UNAVAILABLE: {
    code: 4503,
    reconnect: true,
    meaning: "the session store is unavailable: retry later",
  },
});

/** The close codes by name (`CloseCode.TAKEN_OVER` is 4409), from CLOSE_CODES. */
export const CloseCode = /** @type {typeof import("../mod.d.ts").CloseCode} */ (Object.freeze(
  Object.fromEntries(Object.entries(CLOSE_CODES).map(([name, { code }]) => [name, code])),
));

/** @template {Record<string, object>} T @param {T} table @returns {T} */
function deepFreeze(table) {
  for (const entry of Object.values(table)) Object.freeze(entry);
  return Object.freeze(table);
}
