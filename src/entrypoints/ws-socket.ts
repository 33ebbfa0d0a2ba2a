/**
 * The WebSocket plumbing both protocols share (multiplexed and raw): the delivery sink, the
 * inbox of frames handled in order, the one write path with its back-pressure rules, close.
 *
 * Limits (docs/configuration.md "Limits"): a frame longer than `maxFrameBytes` closes the socket with 1009
 * (Bun refuses it before buffering it; Deno has no such option and hands it over whole). Every
 * frame the gateway writes goes through one path that watches the socket's send buffer: past
 * `server.max_buffered_bytes` deliveries wait (the broker keeps them) and replies still go, but a
 * client whose replies alone add that much again, or whose buffer stays past it for
 * `server.slow_client_timeout`, is closed with 1008 "too slow" instead of buffered without bound.
 * Frames are handled a slice at a time so one client cannot make the others wait behind all it
 * sent; one whose unhandled frames pass `max_buffered_bytes`, or that ignores RATE_LIMITED more
 * than `policy.publishes_per_second` times a second, is closed with 1008.
 *
 * About 300 lines, one class: the inbox, the write path and close share the socket's buffer
 * accounting, which the limits above are about.
 */
import { setImmediate } from "node:timers";
import type { WSContext, WSEvents } from "hono/ws";
import type { Connection } from "../core/connection.ts";
import { CloseCode } from "../core/errors.ts";
import type { GatewayError } from "../core/errors.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import type { Engine } from "../engine.ts";
import { exceeds, maxFrameBytes, sizeOf } from "./frame-size.ts";
import { SlowClientClock } from "./slow-client.ts";

const OPEN = 1;
/**
 * Frames of one socket handled in a row before the socket yields to the event loop. The
 * runtimes hand over a socket's frames in batches as large as one read; handled in one go, a
 * client that floods would make everyone else wait behind its batch.
 */
const SLICE = 8;

/**
 * The session store cannot serve this client until an operator acts (its record is unreadable):
 * a WebSocket cannot read the HTTP status of a refused handshake (browsers report 1006, which
 * clients retry), so the socket is opened to say so, and closed with 4500 (do not reconnect).
 */
export function isPermanentStoreError(e: GatewayError): boolean {
  return e.code === "STORE_UNAVAILABLE" && !e.temporary;
}

/**
 * Common socket plumbing: the delivery sink, ordered frame handling, the one write path with
 * its back-pressure rules, close.
 */
export abstract class Socket {
  protected ws?: WSContext;
  /** Frames are handled in arrival order, after the connection opened. */
  protected ready: Promise<unknown> = new Promise(() => {});
  /** Set once the gateway closed the socket itself: frames still arriving are not handled. */
  #closing = false;
  /**
   * Cleared once the client left (`leave`) or its Close arrived: from then on the sink writes
   * nothing, so the hub counts nothing more as delivered and the brokers keep it. A client may drop
   * what arrives after it closed (browsers and Bun do, as the WebSocket standard says).
   */
  #delivering = true;
  /** Bytes of replies written since the send buffer was last within max_buffered_bytes. */
  #overflow = 0;
  /** Runs while the send buffer is past max_buffered_bytes; closes the socket when it fires. */
  #slowClock: SlowClientClock;
  /** Frames received and not handled yet, in order, from `#inboxHead` on. */
  #inbox: unknown[] = [];
  #inboxHead = 0;
  #inboxBytes = 0;
  /** Whether `#handleInbox` runs (or is queued behind the open). */
  #handling = false;
  /** The open was logged, and whether the close was too: one line each per connection. */
  #logged: "no" | "opened" | "closed" = "no";
  /** The client's address (EntrypointContext.clientAddress), on the open and close lines. */
  address?: string;

  protected engine: Engine;
  protected conn: Connection;
  private bufferedAmount: (raw: unknown) => number;
  constructor(
    engine: Engine,
    conn: Connection,
    bufferedAmount: (raw: unknown) => number,
  ) {
    this.engine = engine;
    this.conn = conn;
    this.bufferedAmount = bufferedAmount;
    const { server } = engine.config;
    this.#slowClock = new SlowClientClock(
      engine.scheduler,
      server.slow_client_timeout,
      () => {
        const ws = this.ws;
        return !!ws && !this.#closing && this.#open(ws) &&
          this.bufferedAmount(ws.raw) > server.max_buffered_bytes;
      },
      () => this.#tooSlow(this.ws!, "its send buffer stayed full"),
    );
  }

  events(): WSEvents {
    return {
      onOpen: (_evt, ws) => {
        this.ws = ws;
        this.#logged = "opened";
        this.engine.logger.info("[WS] Connection opened", {
          client: this.conn.clientId,
          transport: this.conn.transport,
          ...this.#address(),
          resumed: this.conn.resumed,
        });
        this.ready = this.opened(this.sink(ws)).catch((error) => {
          this.engine.logger.error(`[WS] Opening ${this.conn.clientId} failed`, error);
          ws.close(CloseCode.INTERNAL_ERROR, "internal error");
        });
      },
      onMessage: (evt) => {
        const data = evt.data;
        if (this.#closing || this.#tooLarge(data)) return;
        this.#inbox.push(data);
        this.#inboxBytes += sizeOf(data);
        if (this.#inboxBytes > this.#inboxLimit()) return this.#flooding();
        if (this.#handling) return;
        this.#handling = true;
        this.ready = this.ready.then(() => this.#handleInbox());
      },
      onClose: (evt) => {
        this.#logClosed(evt?.code ?? 1005, evt?.reason || "closed by the client", "client");
        this.#closed();
      },
      onError: () => {
        this.#logClosed(1006, "socket error", "client");
        this.#closed();
      },
    };
  }

  /**
   * Handles the frames received, in order, `SLICE` at a time: between slices the socket yields
   * (a macrotask, after the I/O the runtime has ready), so other clients' frames are handled
   * while one client sends faster than it is answered.
   */
  async #handleInbox(): Promise<void> {
    let inRow = 0;
    while (this.#inboxHead < this.#inbox.length && !this.#closing) {
      if (++inRow > SLICE) {
        await new Promise((resolve) => setImmediate(resolve));
        inRow = 1;
        if (this.#closing) break;
      }
      const data = this.#inbox[this.#inboxHead];
      this.#inbox[this.#inboxHead++] = undefined;
      this.#inboxBytes -= sizeOf(data);
      try {
        const handled = this.received(data);
        if (handled) await handled;
      } catch (error) {
        this.failed(error);
      }
    }
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#handling = false;
  }

  /** Bytes of frames that may wait to be handled: a frame's worth past max_buffered_bytes. */
  #inboxLimit(): number {
    return this.engine.config.server.max_buffered_bytes + maxFrameBytes(this.engine.config);
  }

  /** Frames pile up faster than they are handled: the client is closed, not buffered. */
  #flooding(): void {
    this.engine.logger.debug(
      `[WS] ${this.conn.clientId} sends faster than it is answered (${this.#inboxBytes} bytes waiting); closing`,
    );
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#inboxBytes = 0;
    this.end(CloseCode.POLICY, "too many frames waiting");
  }

  /** Runs once the socket is open: greet, attach the sink, resume consumers. */
  protected abstract opened(sink: DeliverySink): Promise<void>;
  /** Handles one client frame. */
  protected abstract received(data: unknown): void | Promise<void>;
  /** The frame a delivery is written as. */
  protected abstract format(delivery: Delivery): string | Uint8Array<ArrayBuffer>;
  /** A client frame could not be handled: tell the client. */
  protected abstract failed(error: unknown): void;

  /**
   * Writes a reply (welcome, receipt, error, pong). Replies are owed to the client, so they go
   * out past max_buffered_bytes too, but a client that keeps asking while reading nothing is
   * closed once its replies alone add that much again. Returns whether the frame was written.
   */
  protected reply(text: string): boolean {
    const ws = this.ws;
    if (!ws || this.#closing || !this.#open(ws)) return false;
    if (!this.#writable(ws)) {
      this.#overflow += text.length;
      if (this.#overflow > this.engine.config.server.max_buffered_bytes) {
        this.#tooSlow(ws, "its replies piled up unread");
        return false;
      }
    }
    return this.#send(ws, text);
  }

  /** Closes the socket for good; frames still arriving are not handled. */
  protected close(code: number, reason: string): void {
    this.#logClosed(code, reason, "gateway");
    this.#closing = true;
    this.#slowClock.stop();
    try {
      this.ws?.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  #open(ws: WSContext): boolean {
    // The native socket's state is live; a WSContext's may be a snapshot of when it was made.
    const raw = ws.raw as { readyState?: number } | undefined;
    return (raw?.readyState ?? ws.readyState) === OPEN;
  }

  /** Open, and the send buffer within max_buffered_bytes; past it, the slow-client clock runs. */
  #writable(ws: WSContext): boolean {
    if (this.#closing || !this.#open(ws)) return false;
    if (!this.#slowClock.keepsUp()) return false;
    this.#overflow = 0;
    return true;
  }

  /** One frame to the runtime. A frame the runtime did not take leaves a gap: the socket ends. */
  #send(ws: WSContext, data: string | Uint8Array<ArrayBuffer>): boolean {
    try {
      ws.send(data);
      return true;
    } catch {
      // Bun drops a frame past its back-pressure limit (the adapter turns that into a throw).
      if (this.#open(ws)) this.#tooSlow(ws, "the runtime dropped a frame");
      return false;
    }
  }

  #tooSlow(ws: WSContext, why: string): void {
    // Anyone can be slow: debug only, like other client mistakes.
    this.engine.logger.debug(
      `[WS] ${this.conn.clientId} is too slow (${why}, ${this.bufferedAmount(ws.raw)} bytes unsent); closing`,
    );
    this.end(CloseCode.POLICY, "too slow");
  }

  /** A frame past maxFrameBytes (a runtime without a limit of its own handed it over): 1009. */
  #tooLarge(data: unknown): boolean {
    const limit = maxFrameBytes(this.engine.config);
    if (!exceeds(data, limit)) return false;
    this.engine.logger.debug(`[WS] ${this.conn.clientId}: a frame exceeds ${limit} bytes; closing`);
    this.end(CloseCode.MESSAGE_TOO_BIG, `TOO_LARGE: frame exceeds ${limit} bytes`);
    return true;
  }

  /**
   * The gateway ends the connection: the session lets go at once. Deno completes the close only
   * once the client reads what was sent (a client that reads nothing keeps its TCP connection,
   * unread and unanswered, until it goes), so the close event may come late or not at all.
   */
  protected end(code: number, reason: string): void {
    this.close(code, reason);
    void this.conn.close();
  }

  /** The connection's one close line: who closed it first, with which code and reason. */
  #logClosed(code: number, reason: string, by: "client" | "gateway"): void {
    if (this.#logged !== "opened") return;
    this.#logged = "closed";
    this.engine.logger.info("[WS] Connection closed", {
      client: this.conn.clientId,
      transport: this.conn.transport,
      ...this.#address(),
      code,
      reason,
      by,
    });
  }

  #address(): { address?: string } {
    return this.address ? { address: this.address } : {};
  }

  /** Nothing more is written to the client as a delivery (replies still go). */
  protected stopDelivering(): void {
    this.#delivering = false;
  }

  #closed(): void {
    this.#delivering = false;
    this.#slowClock.stop();
    void this.conn.close();
  }

  private sink(ws: WSContext): DeliverySink {
    return {
      // Deliveries wait while the buffer is past the mark: the hub polls writable() and resumes.
      deliver: (delivery) => this.#delivering && this.#writable(ws) && this.#send(ws, this.format(delivery)),
      writable: () => this.#delivering && this.#writable(ws),
      close: (code, reason) => this.close(code, reason),
    };
  }
}
