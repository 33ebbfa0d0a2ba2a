/**
 * The WebSocket opening handshake's checks (RFC 6455 section 4.2.1), made before a session is
 * taken: a request the runtime would refuse must be refused here, with a status the client can
 * read, before it closes the session's current owner with 4409.
 */

/** Why a request is not a WebSocket handshake the runtimes accept. */
export interface RefusedHandshake {
  status: 400 | 426;
  message: string;
}

/** Sixteen bytes in base64: 22 characters and `==`. */
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * Checks the handshake headers. Header names and the `websocket` and `upgrade` tokens are
 * case-insensitive (`Upgrade: WebSocket` is legal).
 *
 * @example
 * const refused = checkHandshake(request.headers);
 * if (refused) return c.json({ code: "BAD_REQUEST", message: refused.message }, refused.status);
 */
export function checkHandshake(headers: Headers): RefusedHandshake | undefined {
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    return { status: 426, message: "expected a WebSocket upgrade (Upgrade: websocket)" };
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return { status: 400, message: "a WebSocket handshake needs Connection: Upgrade" };
  }
  const key = headers.get("sec-websocket-key");
  if (key === null || !KEY.test(key.trim())) {
    return { status: 400, message: "a WebSocket handshake needs Sec-WebSocket-Key: 16 bytes in base64" };
  }
  if (headers.get("sec-websocket-version")?.trim() !== "13") {
    return { status: 426, message: "unsupported WebSocket version: expected Sec-WebSocket-Version: 13" };
  }
  return undefined;
}

function hasToken(value: string | null, token: string): boolean {
  return value !== null && value.split(",").some((t) => t.trim().toLowerCase() === token);
}
