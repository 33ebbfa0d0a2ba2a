/**
 * The Policy port: what a client may send, checked before anything reaches a broker.
 * Implementations throw GatewayError with the code the client should see.
 */
import type { Principal } from "./auth.ts";
import type { ClientFrame } from "./protocol.ts";

export interface Policy {
  /**
   * Parses and validates one multiplexed WebSocket text frame.
   * Throws TOO_LARGE past the size limit, BAD_FRAME for anything malformed or nested too deep.
   */
  parseFrame(text: string): ClientFrame;
  /**
   * Checks a publish of `bytes` payload bytes to a configured endpoint by `principal` (undefined
   * with auth off): TOO_LARGE, FORBIDDEN.
   */
  checkPublish(
    clientId: string,
    endpoint: string,
    bytes: number,
    params: Record<string, string>,
    principal?: Principal,
  ): void;
  /**
   * Checks a subscription (a bind, and again every resume) to a configured endpoint: FORBIDDEN,
   * also for a binding param the acl ties to a claim whose values do not include it.
   */
  checkSubscribe(
    clientId: string,
    endpoint: string,
    params: Record<string, string>,
    principal?: Principal,
  ): void;
}
