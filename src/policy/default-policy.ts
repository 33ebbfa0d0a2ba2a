/**
 * The default policy engine: a size limit, a nesting limit, well-formed frames. (Which endpoints
 * exist is the hub's to say: `Hub.endpoint`.)
 */
import { GatewayError } from "../core/errors.ts";
import type { Policy } from "../core/policy.ts";
import { scanJson } from "../core/json-scan.ts";
import type { ClientFrame } from "../core/protocol.ts";
import { validateFrame } from "./frames.ts";

export interface DefaultPolicyOptions {
  /** Largest publish payload, in bytes; a whole frame may be 1 KiB more for its envelope. */
  maxMessageBytes: number;
  /** Deepest nesting of a frame's `data`; the frame itself adds one level. */
  maxJsonDepth: number;
}

/** Room for a frame's envelope (`type`, `endpoint`, `id`) around a full-size payload. */
const ENVELOPE_BYTES = 1024;
const encoder = new TextEncoder();

export class DefaultPolicy implements Policy {
  #maxMessageBytes: number;
  #maxJsonDepth: number;

  constructor(options: DefaultPolicyOptions) {
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#maxJsonDepth = options.maxJsonDepth;
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
    if ("problem" in result) throw new GatewayError("BAD_FRAME", `invalid frame: ${result.problem}`);
    return result.frame;
  }

  checkPublish(_clientId: string, _endpoint: string, bytes: number): void {
    if (bytes > this.#maxMessageBytes) {
      throw new GatewayError("TOO_LARGE", `message of ${bytes} bytes exceeds ${this.#maxMessageBytes}`);
    }
  }

  checkSubscribe(_clientId: string, _endpoint: string, _params: Record<string, string>): void {}
}
