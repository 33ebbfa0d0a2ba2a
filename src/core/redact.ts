/**
 * Secrets out of text: the one helper every log line and every error message goes through (the
 * engine's logger and GatewayError apply it; code that formats a broker address applies
 * `redactUrl`). Three rules:
 *
 * - credentials in a URL (`mqtt://bob:pw@host`) become `***` (`mqtt://***@host`): the user name
 *   too, since an account name is half of a credential;
 * - anything shaped like a JWT (`eyJ...` `.` ... `.` ...) becomes `***`: a token a client sent is
 *   never echoed, whatever quoted it;
 * - secret values the config holds (passwords, tokens, user names, API keys, the JWT secret;
 *   `rememberSecrets`, called by the engine with `configSecrets(config)`) become `***` wherever
 *   they appear, e.g. quoted back inside a client library's error.
 *
 * The secrets are kept per process, not per engine: text from any engine reaches the same output,
 * and GatewayError has no engine to ask.
 */
import type { Logger } from "./logger.ts";

/** What a secret is replaced with. */
export const REDACTED = "***";

/**
 * Secret values shorter than this are not searched for in free text (replacing every "ab" would
 * garble every line); inside a URL they are redacted whatever their length.
 */
export const MIN_SECRET_LENGTH = 4;

/** `scheme://userinfo@`: the userinfo ends at the last `@` before the host's end. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>\\]+@/gi;

/** A JWS compact serialization: a base64url JSON header (`{"` is `eyJ`), payload and signature. */
const JWT = /\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g;

/** Config keys whose string values are secrets wherever they are in the config. */
const SECRET_KEY =
  /^(user(name)?|pass(word|wd)?|sentinel_?password|tokens?|secret|key|api_?key|client_secret|credentials?|auth)$/i;

/** Longest first, so a secret that contains another is replaced whole. */
let secrets: string[] = [];

/**
 * Text with URL credentials and remembered secrets replaced by `***`.
 *
 * @example
 * redact("MQTT broker mqtt://bob:s3cret@127.0.0.1:1883 is unreachable");
 * // "MQTT broker mqtt://***@127.0.0.1:1883 is unreachable"
 */
export function redact(text: string): string {
  let out = text.includes("@") ? text.replace(USERINFO, `$1${REDACTED}@`) : text;
  if (out.includes("eyJ")) out = out.replace(JWT, REDACTED);
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.replaceAll(secret, REDACTED);
  }
  return out;
}

/**
 * A broker address (or a list of them) for a message: its credentials redacted, also in the
 * scheme-less `user:pass@host:port` form NATS takes.
 */
export function redactUrl(url: string | readonly string[]): string {
  return typeof url === "string" ? redactAddress(url) : url.map(redactAddress).join(", ");
}

function redactAddress(address: string): string {
  if (!address.includes("://") && address.includes("@")) {
    return redact(`${REDACTED}${address.slice(address.lastIndexOf("@"))}`);
  }
  return redact(address);
}

/** Adds secret values to those `redact` replaces (empty and short ones are skipped). */
export function rememberSecrets(values: Iterable<string>): void {
  const all = new Set(secrets);
  for (const value of values) {
    if (value.length >= MIN_SECRET_LENGTH && value !== REDACTED) all.add(value);
  }
  secrets = [...all].sort((a, b) => b.length - a.length);
}

/**
 * The secret values of a config: the strings under a secret-looking key (username, password,
 * token, secret, key, ...) at any depth (not the file path of a `tls:` mapping's `key`), and the user name and password of every URL in it, each
 * as written and percent-decoded.
 */
export function configSecrets(config: unknown): Set<string> {
  const found = new Set<string>();
  const add = (value: string) => {
    found.add(value);
    try {
      found.add(decodeURIComponent(value));
    } catch {
      // Not percent-encoded text: as written only.
    }
  };
  const walk = (value: unknown, key: string | undefined) => {
    if (typeof value === "string") {
      if (key !== undefined && SECRET_KEY.test(key)) add(value);
      // A scheme-less address (`user:pass@host:port`, as NATS takes it) parses as a URL with one.
      const address = value.includes("://") ? value : `x://${value}`;
      if (value.includes("@") && URL.canParse(address)) {
        const url = new URL(address);
        if (url.username) add(url.username);
        if (url.password) add(url.password);
      }
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item, key);
    } else if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        // A listener's `tls: { cert, key }` names files: the key's path is no secret, and its
        // messages ("server.tls.key: /etc/gw/tls.key: no such file") must show it. PEM text is.
        const path = key === "tls" && k === "key" && typeof v === "string" && !v.includes("-----BEGIN");
        walk(v, path ? undefined : k);
      }
    }
  };
  walk(config, undefined);
  return found;
}

/** An error for a log line: a copy with its message, stack and causes redacted (the same error when nothing needed it). */
export function redactError(error: unknown): unknown {
  if (typeof error === "string") return redact(error);
  if (!(error instanceof Error)) return error;
  const message = redact(error.message);
  const stack = error.stack === undefined ? undefined : redact(error.stack);
  const cause = error.cause === undefined ? undefined : redactError(error.cause);
  if (message === error.message && stack === error.stack && cause === error.cause) return error;
  // Same class and own fields (code, temporary), so a logger that reads them still can.
  const copy = Object.assign(Object.create(Object.getPrototypeOf(error)), error) as Error;
  Object.defineProperty(copy, "message", { value: message, writable: true, configurable: true });
  Object.defineProperty(copy, "stack", { value: stack, writable: true, configurable: true });
  if (cause !== undefined) {
    Object.defineProperty(copy, "cause", { value: cause, writable: true, configurable: true });
  }
  return copy;
}

const LEVELS = ["debug", "info", "warn", "error"] as const;

/**
 * A logger whose every line is redacted before `logger` sees it: the engine wraps whatever logger
 * it was given, so a line that slipped past the places that redact on purpose is still safe. Every
 * argument of the four level methods is redacted (messages, errors, the string values of a fields
 * object); any other member of `logger` is reached through the prototype, unchanged.
 */
export function redactingLogger<L extends Logger>(logger: L): L {
  const wrapped = Object.create(logger) as L;
  for (const level of LEVELS) {
    const log = (logger[level] as (...args: unknown[]) => void).bind(logger);
    Object.defineProperty(wrapped, level, {
      value: (...args: unknown[]) => log(...args.map(redactArgument)),
    });
  }
  return wrapped;
}

function redactArgument(value: unknown): unknown {
  if (typeof value === "string" || value instanceof Error) return redactError(value);
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    return value;
  }
  return Object.fromEntries(
    Object.entries(value).map((
      [k, v],
    ) => [k, typeof v === "string" || v instanceof Error ? redactError(v) : v]),
  );
}
