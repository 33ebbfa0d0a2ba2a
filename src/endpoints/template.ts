/**
 * Topic templates: `{clientId}` and binding params expand into broker topic strings.
 *
 * Values are checked before they are spliced in: a param of `#` or `a/b` would otherwise
 * subscribe a client to other clients' topics.
 */
import { GatewayError } from "../core/errors.ts";
import { isSafeName } from "../core/identity.ts";

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g;

/**
 * Expands `template` with `clientId` and `params`.
 * Throws BAD_FRAME for a missing param or a value outside `[A-Za-z0-9._:-]{1,128}`.
 *
 * @example
 * expandTopic("rooms/{room}/{clientId}", "c1", { room: "lobby" }) // "rooms/lobby/c1"
 */
export function expandTopic(
  template: string,
  clientId: string,
  params: Record<string, string>,
): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = name === "clientId" ? clientId : params[name];
    if (value === undefined) {
      throw new GatewayError("BAD_FRAME", `topic "${template}" needs the param "${name}"`);
    }
    if (!isSafeName(value)) {
      throw new GatewayError(
        "BAD_FRAME",
        `param "${name}" must be 1-128 characters of A-Z a-z 0-9 . _ : - (no wildcards or separators)`,
      );
    }
    return value;
  });
}
