/**
 * Wire protocol frame types (DESIGN.md section 7). Parsing and validation live in the policy
 * engine; these are the shapes the rest of the engine works with. The client library declares the
 * same (client/mod.d.ts ClientFrame, ServerFrame; tests/unit/client-tables.test.ts holds them
 * equal).
 */
import type { ErrorCode } from "./errors.ts";

export type ClientFrame =
  | { type: "publish"; endpoint: string; data: unknown; id?: string }
  | { type: "subscribe"; endpoint: string; params?: Record<string, string>; id?: string }
  | { type: "unsubscribe"; endpoint: string; id?: string }
  | { type: "ack"; endpoint: string; id: string }
  | { type: "ping" }
  /** The client is about to close: stop delivering, answer what is under way, then `left`. */
  | { type: "leave" };

export type ServerFrame =
  | {
    type: "welcome";
    clientId: string;
    resumed: boolean;
    recovered: boolean;
    /** Why not recovered, and what was lost per endpoint (see Recovery). */
    reason?: string;
    lost?: Record<string, number>;
    ack: boolean;
    endpoints: string[];
  }
  | {
    type: "message";
    endpoint: string;
    id: string;
    data: unknown;
    encoding?: "base64";
    meta?: Record<string, string | number>;
    /** The client may have had this message before (InboundMessage.redelivered); absent: new to it. */
    redelivered?: true;
  }
  | { type: "receipt"; id: string; meta?: Record<string, string | number> }
  | {
    type: "error";
    code: ErrorCode;
    message: string;
    /** Whether trying again later may succeed (GatewayError.temporary); false: do not retry. */
    temporary: boolean;
    id?: string;
    endpoint?: string;
    retry_after_ms?: number;
  }
  | { type: "pong" }
  /** The answer to `leave`: nothing was written after it; the gateway closes with 1000 next. */
  | { type: "left" };
