/**
 * Client identity (DESIGN.md section 6).
 *
 * Client IDs flow into MQTT client IDs, Kafka group IDs and Redis keys, so anything outside
 * 1-128 characters of `[A-Za-z0-9._:-]` is refused before a connection is accepted.
 */
import { GatewayError } from "./errors.ts";

/** The request header that names the client (the seed's). */
export const CLIENT_ID_HEADER = "X-WSO2-Client-ID";
/** The query parameter fallback, for browsers that cannot set WebSocket headers. */
export const CLIENT_ID_QUERY = "clientId";

/**
 * 1-128 characters of `[A-Za-z0-9._:-]`: the one pattern for client IDs and for every value that
 * flows into a broker name (topic template values, binding params): no wildcards, separators or
 * spaces.
 */
const SAFE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/** Whether `value` is safe to splice into broker topics, group IDs and keys (see SAFE_NAME). */
export function isSafeName(value: unknown): value is string {
  return typeof value === "string" && SAFE_NAME.test(value);
}

export interface Identity {
  clientId: string;
  /** True when the client named none and the gateway made one up. */
  generated: boolean;
}

/**
 * Picks the client ID: header, else query parameter, else a fresh UUID.
 * Throws GatewayError("BAD_CLIENT_ID") for an ID that is present but invalid.
 *
 * @example
 * resolveIdentity(req.header("X-WSO2-Client-ID"), url.searchParams.get("clientId"))
 */
export function resolveIdentity(
  header: string | null | undefined,
  query: string | null | undefined,
): Identity {
  const given = header ?? query;
  if (given === null || given === undefined) {
    return { clientId: crypto.randomUUID(), generated: true };
  }
  if (!SAFE_NAME.test(given)) {
    const shown = given.length > 40 ? `${given.slice(0, 40)}... (${given.length} chars)` : given;
    throw new GatewayError(
      "BAD_CLIENT_ID",
      `invalid client ID ${JSON.stringify(shown)}: expected 1-128 characters of A-Z a-z 0-9 . _ : -`,
    );
  }
  return { clientId: given, generated: false };
}
