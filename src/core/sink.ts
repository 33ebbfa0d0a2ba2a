/**
 * The delivery sink port: how the hub writes to one live client connection. Each entrypoint
 * (multiplexed WS, raw WS, SSE) implements it with its own framing.
 */
import type { PreparedPayload } from "./payload.ts";

export interface Delivery {
  endpoint: string;
  /** Per session and endpoint, strictly increasing: `<epoch>.<sequence>`. */
  id: string;
  payload: Uint8Array;
  /** The payload made ready once for every client it goes to (see `preparePayload`). */
  prepared: PreparedPayload;
  meta?: Record<string, string | number>;
  /** The client may have had this message before (see InboundMessage.redelivered). */
  redelivered?: boolean;
}

export interface DeliverySink {
  /**
   * Writes one delivery to the connection. Returns false, writing nothing, when the connection
   * is closed or its send buffer is past `server.max_buffered_bytes`; the broker then keeps the
   * message. May throw only when the socket itself fails; the hub treats that as not written.
   */
  deliver(delivery: Delivery): boolean;
  /** Whether the connection is open and its send buffer is below the limit. */
  writable(): boolean;
  /** Closes the connection with a close code from `CloseCode`. */
  close(code: number, reason: string): void;
  /**
   * Resolves once every delivery the sink took is acknowledged by it (an SSE stream: kept in
   * the replay log). A newer connection of the same session waits for it before the consumers
   * restart, so what the older one kept is not sent again. Sinks whose client acks leave it out.
   */
  settled?(): Promise<void>;
}
