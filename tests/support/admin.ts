/** The admin listener of a gateway started by gateway-process.ts, and calls to its API. */
import type { Gateway } from "./gateway-process.ts";

/** The admin listener's base URL, from the gateway's "[Admin] Listening on" line. */
export async function adminUrl(gw: Gateway, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = gw.output().match(/\[Admin\] Listening on (https?:\/\/[^\s"]+)/)?.[1];
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no admin listener:\n${gw.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface AdminAnswer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** One admin API call with `token` as the bearer token (none when undefined). */
export async function adminCall(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<AdminAnswer> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (the page): the text.
  }
  return { status: response.status, body: parsed };
}
