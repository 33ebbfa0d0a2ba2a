// @ts-check
/**
 * The library's one error type and the gateway's close codes (its README, "Close codes"), with
 * what a client does on each.
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

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  POLICY: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  UNAUTHENTICATED: 4401,
  TAKEN_OVER: 4409,
  SESSION_EXPIRED: 4410,
  STORE_UNAVAILABLE: 4503,
  PERMANENT_ERROR: 4500,
});
