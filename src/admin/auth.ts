/**
 * The admin API's credentials (`admin.tokens`): bearer tokens compared in constant time, each
 * known by a name for the log (its own, or `#1`, `#2`... by its place), never by its value.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export type AdminTokenConfig = string | { name: string; token: string };

export interface AdminTokens {
  /** The name of the token `presented` is, or undefined when it is none of them. */
  who(presented: string | undefined): string | undefined;
}

/** SHA-256 first: equal lengths for timingSafeEqual, and a token's length is not given away. */
const digest = (text: string) => createHash("sha256").update(text).digest();

export function adminTokens(tokens: readonly AdminTokenConfig[]): AdminTokens {
  const known = tokens.map((t, i) =>
    typeof t === "string" ? { name: `#${i + 1}`, hash: digest(t) } : { name: t.name, hash: digest(t.token) }
  );
  return {
    who(presented) {
      if (presented === undefined || presented === "") return undefined;
      const hash = digest(presented);
      let found: string | undefined;
      // Every token is compared, so the time taken does not tell which one matched.
      for (const { name, hash: h } of known) {
        if (timingSafeEqual(hash, h) && found === undefined) found = name;
      }
      return found;
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearer(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}
