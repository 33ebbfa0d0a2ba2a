/**
 * The one error type of the engine, and the WebSocket close codes.
 *
 * Error codes are the wire protocol's error-frame codes (DESIGN.md section 7), so an error raised
 * anywhere in the engine can be put on the wire as it is.
 */
import { redact } from "./redact.ts";

/** Codes carried by error frames and HTTP error bodies. */
export type ErrorCode =
  | "BAD_FRAME"
  | "BAD_REQUEST"
  | "BAD_CLIENT_ID"
  | "UNAUTHENTICATED"
  | "UNKNOWN_ENDPOINT"
  | "FORBIDDEN"
  | "TOO_LARGE"
  | "RATE_LIMITED"
  | "UPSTREAM_UNAVAILABLE"
  | "OUTCOME_UNKNOWN"
  | "TAKEN_OVER"
  | "STORE_UNAVAILABLE"
  | "INTERNAL";

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_FRAME: 400,
  BAD_REQUEST: 400,
  BAD_CLIENT_ID: 400,
  UNAUTHENTICATED: 401,
  UNKNOWN_ENDPOINT: 404,
  FORBIDDEN: 403,
  TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UPSTREAM_UNAVAILABLE: 503,
  OUTCOME_UNKNOWN: 504,
  TAKEN_OVER: 409,
  STORE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** Every error code, for the zero series of /metrics. */
export const ERROR_CODES = Object.keys(HTTP_STATUS) as ErrorCode[];

/**
 * An error with a stable code and whether retrying later may succeed.
 *
 * @example
 * throw new GatewayError("UNKNOWN_ENDPOINT", `no endpoint named "${name}"`);
 */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  /** For RATE_LIMITED: how long to wait before trying again, in ms. */
  retryAfterMs?: number;
  /** For BAD_FRAME: the `id` of the refused frame, when it had one, so the error frame names it. */
  frameId?: string;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly temporary = code === "UPSTREAM_UNAVAILABLE" || code === "STORE_UNAVAILABLE" ||
      code === "RATE_LIMITED" || code === "OUTCOME_UNKNOWN",
    options?: { cause?: unknown },
  ) {
    // Safety net: an error message reaches clients and logs, so no credential may stay in it.
    super(redact(message), options);
  }

  /** RATE_LIMITED, with the wait in the message and in `retryAfterMs`. */
  static rateLimited(what: string, retryAfterMs: number): GatewayError {
    const e = new GatewayError("RATE_LIMITED", `${what}; retry in ${retryAfterMs} ms`);
    e.retryAfterMs = retryAfterMs;
    return e;
  }

  /** The HTTP status this error answers with on HTTP routes and before a WebSocket upgrade. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }

  /** Wraps anything thrown into a GatewayError; unknown errors become INTERNAL. */
  static from(error: unknown, fallback: ErrorCode = "INTERNAL"): GatewayError {
    if (error instanceof GatewayError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new GatewayError(fallback, message, undefined, { cause: error });
  }
}

/**
 * WebSocket close codes, the only table of them (documented in README.md).
 * 1xxx are the standard's; 4xxx are ours and mirror HTTP statuses.
 */
export const CloseCode = {
  /** Normal closure: the client or the gateway ended the connection on purpose. */
  NORMAL: 1000,
  /** The server is shutting down: reconnect (to another node); the session is kept. */
  GOING_AWAY: 1001,
  /** Policy violation (raw sockets: a frame was refused; "too slow": a client that does not read). */
  POLICY: 1008,
  /** A message past the size limit (policy.max_message_bytes + 1 KiB). */
  MESSAGE_TOO_BIG: 1009,
  /** Internal error. */
  INTERNAL_ERROR: 1011,
  /** A broker is unavailable: reconnect after a delay; the session is kept. */
  TRY_AGAIN_LATER: 1013,
  /** Not authenticated. */
  UNAUTHENTICATED: 4401,
  /** Session taken over by a newer connection with the same client ID: do not reconnect automatically. */
  TAKEN_OVER: 4409,
  /**
   * The session expired under a live connection (this node could not renew its lease for longer
   * than the window, and the cleanup worker ended it): reconnect for a fresh session.
   */
  SESSION_EXPIRED: 4410,
  /** Session store unavailable: retry later. */
  STORE_UNAVAILABLE: 4503,
  /**
   * A permanent error: retrying cannot help until an operator acts (the client's stored session
   * is unreadable). Do not reconnect automatically. The reason is `<CODE>: <message>`, and a
   * multiplexed socket gets the error frame (`"temporary":false`) first.
   */
  PERMANENT_ERROR: 4500,
} as const;
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];
