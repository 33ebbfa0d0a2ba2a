/**
 * NATS names: subject templates (a template value is one subject token, so it may not hold the
 * token separator `.`), the subjects a created stream captures, and consumer names (durable
 * names allow no `.`, `*`, `>`, whitespace or path separators).
 */
import { expandTopic, GatewayError } from "../../plugin.ts";

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g;

/**
 * Expands a subject template like expandTopic, and refuses a value with `.`: it would span
 * tokens, so `{clientId}` = `a.b` could reach the subject of client `a` with param `b`.
 *
 * @example
 * expandSubject("orders.{clientId}.out", "c1", {}) // "orders.c1.out"
 */
export function expandSubject(template: string, clientId: string, params: Record<string, string>): string {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    const value = name === "clientId" ? clientId : params[name];
    if (value?.includes(".")) {
      throw new GatewayError(
        "BAD_FRAME",
        `${
          name === "clientId" ? "the client ID" : `param "${name}"`
        } is a NATS subject token: it may not contain "."`,
      );
    }
  }
  return expandTopic(template, clientId, params);
}

/** The subjects a template's expansions fall under: each token with a placeholder becomes `*`. */
export function templateWildcard(template: string): string {
  return template.split(".").map((token) => (token.includes("{") ? "*" : token)).join(".");
}

/** Whether every subject `pattern` matches is matched by `wider` too. */
export function covers(wider: string, pattern: string): boolean {
  const w = wider.split(".");
  const p = pattern.split(".");
  for (let i = 0; i < w.length; i++) {
    if (w[i] === ">") return p.length > i;
    if (i >= p.length) return false;
    if (w[i] !== "*" && w[i] !== p[i]) return false;
    if (w[i] === "*" && p[i] === ">") return false;
  }
  return w.length === p.length;
}

/** The stream subjects for these templates: one wildcard each, none covered by another. */
export function streamSubjects(templates: string[]): string[] {
  const all = [...new Set(templates.map(templateWildcard))];
  return all.filter((s) => !all.some((other) => other !== s && covers(other, s)));
}

/**
 * A client ID as a consumer-name part: `A-Z a-z 0-9 -` as they are, every other character
 * (`.`, `:`, and `_` itself) as `_` and two hex digits per UTF-8 byte. One ID gives one name, and two IDs
 * never the same one (`_` always starts an escape).
 *
 * @example
 * consumerNamePart("dev.1:a_b") // "dev_2E1_3Aa_5Fb"
 */
export function consumerNamePart(clientId: string): string {
  // By UTF-8 byte: any character has one spelling, and no two spellings run into each other.
  return clientId.replace(
    /[^A-Za-z0-9-]/gu,
    (c) =>
      [...new TextEncoder().encode(c)].map((b) => `_${b.toString(16).toUpperCase().padStart(2, "0")}`).join(
        "",
      ),
  );
}
