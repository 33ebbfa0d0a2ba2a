/**
 * The one error type of the engine, and the WebSocket close codes by meaning.
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

/** Codes for which trying again later may succeed, unless the error says otherwise. */
const TEMPORARY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "UPSTREAM_UNAVAILABLE",
  "STORE_UNAVAILABLE",
  "RATE_LIMITED",
  "OUTCOME_UNKNOWN",
]);

/** Every error code, for the zero series of /metrics. */
export const ERROR_CODES = Object.keys(HTTP_STATUS) as ErrorCode[];

/** What a GatewayError says besides its code and message. */
export interface GatewayErrorOptions {
  /** Whether trying again later may succeed; the default is by code (TEMPORARY_CODES). */
  temporary?: boolean;
  /** The error this one wraps. */
  cause?: unknown;
}

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

  /** Whether trying again later may succeed (the error frame's `temporary`). */
  readonly temporary: boolean;

  readonly code: ErrorCode;
  /**
   * @example
   * new GatewayError("STORE_UNAVAILABLE", "stored session unreadable", { temporary: false });
   */
  constructor(
    code: ErrorCode,
    message: string,
    given: GatewayErrorOptions = {},
  ) {
    // Safety net: an error message reaches clients and logs, so no credential may stay in it.
    super(redact(message), "cause" in given ? { cause: given.cause } : undefined);
    this.code = code;
    this.temporary = given.temporary ?? TEMPORARY_CODES.has(code);
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
    return new GatewayError(fallback, message, { cause: error });
  }
}

/** One WebSocket close code the gateway sends: what it means and whether a client reconnects. */
export interface CloseCodeInfo {
  readonly code: number;
  /**
   * Whether a client that did not close the connection itself reconnects by itself (after
   * back-off; its session is kept unless `meaning` says otherwise), as the client library does.
   * False: retrying as it is cannot help (a credential, or an operator, must act first).
   */
  readonly reconnect: boolean;
  /** What it means, and what a client does on it, for the docs' table. */
  readonly meaning: string;
}

/**
 * The WebSocket close codes, by name: the only table of them. The client library keeps a copy
 * (client/src/errors.js, which runs in browsers without these modules;
 * tests/unit/client-tables.test.ts holds the two equal) and the docs' table is this one.
 * 1xxx are the standard's; 4xxx are ours and mirror HTTP statuses. As centrifuge documents its
 * disconnect codes, each says whether a client reconnects.
 */
export const CLOSE_CODES = {
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
} as const satisfies Record<string, CloseCodeInfo>;

/** The close codes by name (`CloseCode.TAKEN_OVER` is 4409), from CLOSE_CODES. */
export const CloseCode = Object.fromEntries(
  Object.entries(CLOSE_CODES).map(([name, { code }]) => [name, code]),
) as { readonly [N in keyof typeof CLOSE_CODES]: typeof CLOSE_CODES[N]["code"] };
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];
