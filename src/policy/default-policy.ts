/**
 * The default policy engine: a size limit, a nesting limit, well-formed frames. (Which endpoints
 * exist is the hub's to say: `EndpointSet.get`.)
 */
import { GatewayError } from "../core/errors.ts";
import type { Policy } from "../core/policy.ts";
import { scanJson } from "../core/json-scan.ts";
import type { Principal } from "../core/auth.ts";
import type { ClientFrame } from "../core/protocol.ts";
import { validateFrame } from "./frames.ts";

/** One endpoint's access rules (config `endpoints[].acl`). */
export interface Acl {
  publish?: string[];
  subscribe?: string[];
  params?: Record<string, string>;
}

export interface DefaultPolicyOptions {
  /** Largest publish payload, in bytes; a whole frame may be 1 KiB more for its envelope. */
  maxMessageBytes: number;
  /** Access rules by endpoint name; an endpoint without is open to every admitted client. */
  acls?: Record<string, Acl | undefined>;
  /** Deepest nesting of a frame's `data`; the frame itself adds one level. */
  maxJsonDepth: number;
}

/** Room for a frame's envelope (`type`, `endpoint`, `id`) around a full-size payload. */
export const ENVELOPE_BYTES = 1024;
const encoder = new TextEncoder();

export class DefaultPolicy implements Policy {
  #maxMessageBytes: number;
  #maxJsonDepth: number;
  #acls: Record<string, Acl | undefined>;

  constructor(options: DefaultPolicyOptions) {
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#maxJsonDepth = options.maxJsonDepth;
    this.#acls = options.acls ?? {};
  }

  parseFrame(text: string): ClientFrame {
    const limit = this.#maxMessageBytes + ENVELOPE_BYTES;
    // A UTF-16 unit is at most 3 UTF-8 bytes: only encode when the cheap bound is inconclusive.
    if (text.length > limit || (text.length * 3 > limit && encoder.encode(text).length > limit)) {
      throw new GatewayError("TOO_LARGE", `frame exceeds ${limit} bytes`);
    }
    // Scanned before parsing: a deeply nested frame is refused in linear time and constant
    // stack, before anything recursive (parse, validation, JSON.stringify of `data`) sees it.
    const shape = scanJson(text, this.#maxJsonDepth + 1);
    if (shape === "invalid") throw new GatewayError("BAD_FRAME", "frame is not valid JSON");
    if (shape === "deep") {
      throw new GatewayError("BAD_FRAME", `frame data is nested deeper than ${this.#maxJsonDepth} levels`);
    }
    const value: unknown = JSON.parse(text);
    const result = validateFrame(value);
    if ("problem" in result) {
      const error = new GatewayError("BAD_FRAME", `invalid frame: ${result.problem}`);
      error.frameId = result.id;
      throw error;
    }
    return result.frame;
  }

  checkPublish(
    _clientId: string,
    endpoint: string,
    bytes: number,
    params: Record<string, string>,
    principal?: Principal,
  ): void {
    const acl = this.#acls[endpoint];
    if (acl?.publish && !acl.publish.some((rule) => matches(rule, principal))) {
      throw new GatewayError("FORBIDDEN", `not allowed to publish to "${endpoint}"`);
    }
    if (acl) checkParams(acl, params, principal);
    if (bytes > this.#maxMessageBytes) {
      throw new GatewayError("TOO_LARGE", `message of ${bytes} bytes exceeds ${this.#maxMessageBytes}`);
    }
  }

  checkSubscribe(
    _clientId: string,
    endpoint: string,
    params: Record<string, string>,
    principal?: Principal,
  ): void {
    const acl = this.#acls[endpoint];
    if (!acl) return;
    if (acl.subscribe && !acl.subscribe.some((rule) => matches(rule, principal))) {
      throw new GatewayError("FORBIDDEN", `not allowed to subscribe to "${endpoint}"`);
    }
    checkParams(acl, params, principal);
  }
}

/** Binding params the acl ties to a claim must be among that claim's values. */
function checkParams(acl: Acl, params: Record<string, string>, principal: Principal | undefined): void {
  for (const [param, claim] of Object.entries(acl.params ?? {})) {
    const value = params[param];
    if (value === undefined) continue;
    const granted = principal?.claims[claim];
    const values = Array.isArray(granted) ? granted : [granted];
    if (!values.includes(value)) {
      throw new GatewayError("FORBIDDEN", `${param} "${value}" is not one of the token's ${claim}`);
    }
  }
}

/** Whether `principal` passes `rule` (see the config's acl). */
function matches(rule: string, principal: Principal | undefined): boolean {
  if (rule === "*") return true;
  if (!principal) return false;
  const colon = rule.indexOf(":");
  const kind = rule.slice(0, colon);
  const value = rule.slice(colon + 1);
  if (kind === "subject") return principal.subject === value;
  if (kind === "role") {
    const roles = principal.claims.roles;
    return Array.isArray(roles) ? roles.includes(value) : roles === value;
  }
  const eq = value.indexOf("=");
  const claim = principal.claims[value.slice(0, eq)];
  const expected = value.slice(eq + 1);
  return Array.isArray(claim) ? claim.includes(expected) : String(claim) === expected;
}
