/**
 * The default policy engine: known endpoints only, a size limit, well-formed frames.
 */
import { GatewayError } from "../core/errors.ts";
import type { Policy } from "../core/policy.ts";
import type { ClientFrame } from "../core/protocol.ts";
import { validateFrame } from "./frames.ts";

export interface DefaultPolicyOptions {
  /** Names of the configured endpoints. */
  endpoints: Iterable<string>;
  /** Largest publish payload, in bytes; a whole frame may be 1 KiB more for its envelope. */
  maxMessageBytes: number;
}

/** Room for a frame's envelope (`type`, `endpoint`, `id`) around a full-size payload. */
const ENVELOPE_BYTES = 1024;
const encoder = new TextEncoder();

export class DefaultPolicy implements Policy {
  #endpoints: Set<string>;
  #maxMessageBytes: number;

  constructor(options: DefaultPolicyOptions) {
    this.#endpoints = new Set(options.endpoints);
    this.#maxMessageBytes = options.maxMessageBytes;
  }

  parseFrame(text: string): ClientFrame {
    const limit = this.#maxMessageBytes + ENVELOPE_BYTES;
    // A UTF-16 unit is at most 3 UTF-8 bytes: only encode when the cheap bound is inconclusive.
    if (text.length > limit || (text.length * 3 > limit && encoder.encode(text).length > limit)) {
      throw new GatewayError("TOO_LARGE", `frame exceeds ${limit} bytes`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new GatewayError("BAD_FRAME", "frame is not valid JSON");
    }
    const result = validateFrame(value);
    if ("problem" in result) throw new GatewayError("BAD_FRAME", `invalid frame: ${result.problem}`);
    return result.frame;
  }

  checkPublish(_clientId: string, endpoint: string, bytes: number): void {
    this.#checkEndpoint(endpoint);
    if (bytes > this.#maxMessageBytes) {
      throw new GatewayError("TOO_LARGE", `message of ${bytes} bytes exceeds ${this.#maxMessageBytes}`);
    }
  }

  checkSubscribe(_clientId: string, endpoint: string, _params: Record<string, string>): void {
    this.#checkEndpoint(endpoint);
  }

  #checkEndpoint(endpoint: string): void {
    if (!this.#endpoints.has(endpoint)) {
      throw new GatewayError("UNKNOWN_ENDPOINT", `no endpoint named "${endpoint}"`);
    }
  }
}
